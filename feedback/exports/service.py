"""Writes one export: the rows of `dataset.py` through a streaming writer, then a dataset card (README.md) and
a manifest (rows and sha256 per file). The folder is built under a temporary name and renamed when complete,
and nothing in it depends on the clock, so the same database and options give byte-identical files."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from feedback.models import Project

from .card import dataset_card
from .dataset import ROWS
from .options import ExportOptions
from .schema import schema_for
from .writers import WRITERS

BATCH = 2000


class ExportFailed(Exception):
    pass


@dataclass
class ExportResult:
    path: Path
    rows: dict[str, int]
    files: dict[str, dict] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_preferences(*, project: Project, options: ExportOptions, out: Path) -> ExportResult:
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ExportFailed(f"{out} already exists and is not empty; choose a new folder")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        result = _write(project, options, tmp)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result.path = out
    return result


def _write(project: Project, options: ExportOptions, tmp: Path) -> ExportResult:
    schema = schema_for(options)
    staging = tmp / ".staging" if options.format == "hf" else tmp
    staging.mkdir(exist_ok=True)
    writer = WRITERS[options.format](staging, schema)
    splits = ["train", "test"] if options.test_fraction > 0 else ["train"]
    buffers: dict[str, list[dict]] = {s: [] for s in splits}
    outcomes: Counter = Counter()
    agreement_sum, agreement_n = 0.0, 0
    try:
        for split in splits:
            writer.write(split, [])  # every split exists, with its columns, even when empty
        for split, row in ROWS[options.kind](project, options):
            buffers[split].append(row)
            outcomes[row.get("outcome", row.get("choice", row.get("label", options.kind)))] += 1
            if row.get("agreement") is not None:
                agreement_sum += row["agreement"]
                agreement_n += 1
            if len(buffers[split]) >= BATCH:
                writer.write(split, buffers[split])
                buffers[split] = []
        for split, rows in buffers.items():
            if rows:
                writer.write(split, rows)
    finally:
        writer.close()
    rows = {s: writer.rows.get(s, 0) for s in splits}
    if options.format == "hf":
        _save_to_disk(staging, tmp, splits)
        shutil.rmtree(staging)
    stats = {
        "rows": rows,
        "distribution": {str(k): v for k, v in sorted(outcomes.items(), key=lambda kv: str(kv[0]))},
        "mean_agreement": round(agreement_sum / agreement_n, 4) if agreement_n else None,
    }
    (tmp / "README.md").write_text(dataset_card(project, options, stats, schema.names), encoding="utf-8")
    files = {}
    for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
        rel = path.relative_to(tmp).as_posix()
        entry = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
        split = rel.split("/")[0].split(".")[0]
        if split in rows and (rel.endswith((".jsonl", ".csv", ".parquet", ".arrow"))):
            entry["rows"] = rows[split]
        files[rel] = entry
    manifest = {"project": project.slug, "options": options.as_dict(), "rows": rows, "files": files}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return ExportResult(path=tmp, rows=rows, files=files, stats=stats)


def _save_to_disk(staging: Path, out: Path, splits: list[str]) -> None:
    import datasets

    parts = {}
    for split in splits:
        ds = datasets.Dataset.from_file(str(staging / f"{split}.arrow"))
        # The fingerprint would otherwise come from the temporary path; derive it from the content instead,
        # so a re-run writes byte-identical state files.
        ds._fingerprint = _sha256(staging / f"{split}.arrow")[:16]
        parts[split] = ds
    datasets.DatasetDict(parts).save_to_disk(str(out))
