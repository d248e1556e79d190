"""The `export` kind's child: zips the dataset that prepare() (training.kinds.export) wrote into the job's
folder and reports it, for projects too large for a download. It reads files only; no Django here.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from feedback.exports.options import ExportOptions
from training.runner import Context, Unrecoverable


def zip_folder(folder: Path, dest: Path, *, top: str) -> None:
    """Zips an export folder (data, card, manifest) under one top-level folder name, as the export page's
    download does (feedback.exports.requests.export_zip, which lives beside Django and so is not imported here)."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            archive.write(path, f"{top}/{path.relative_to(folder).as_posix()}")


def run(ctx: Context) -> dict:
    options: ExportOptions = ctx.config
    out = ctx.workdir / "export"
    manifest = out / "manifest.json"
    if not manifest.exists():  # prepare() wrote it; a folder removed since cannot come back on a retry
        raise Unrecoverable(f"the export folder {out} is missing or incomplete; submit the export again")
    rows = json.loads(manifest.read_text(encoding="utf-8"))["rows"]
    project = ctx.inputs["project"]
    ctx.artifact(f"{options.kind}-{options.format}", out, "export")
    # The zip is what people download from the job page; writing it here keeps big zips out of web requests.
    archive = ctx.workdir / f"{project}-{options.kind}-{options.format}.zip"
    if not archive.exists():
        ctx.progress(0, 1, f"zipping {sum(rows.values())} rows")
        partial = archive.with_name(archive.name + ".partial")
        zip_folder(out, partial, top=f"{project}-{options.kind}")
        partial.rename(archive)
    ctx.artifact(archive.name, archive, "export-zip")
    ctx.progress(1, 1, f"{sum(rows.values())} rows")
    return {"rows": rows, "path": str(out.relative_to(ctx.data_dir))}
