"""The preference dataset of a training job, written into its folder by prepare() (the child reads only files).

    workdir/data/pairs/         export_preferences(kind="pairs"): train.jsonl, test.jsonl, README.md, manifest.json
    workdir/data/labels/        the same filters, kind="labels": one row per label (per-annotator, per-source figures)
    workdir/data/annotators.json  {pseudonym: membership attributes} (per-segment figures)
    workdir/data/demonstrations/  sft only: export kind="demonstrations" (conversational `messages`: the prompt's
                                  turns + the demonstration as the last assistant message), same split rule

The files come from the one preference-dataset definition (feedback.exports), so a model trained here is trained
on exactly what an export with the same options downloads, and the pairs' manifest hash is its provenance.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Literal

from annotators.models import Membership
from feedback.exports.dataset import aggregated_units, filtered_labels, pseudonym
from feedback.exports.options import ExportOptions
from feedback.exports.service import export_preferences
from feedback.models import Demonstration, Label, Project
from training.models import Job
from training.reward.files import ANNOTATORS, LABELS, PAIRS
from training.runner import write_atomic
from training.train_configs import DataConfig, SftDataConfig

from .base import JobError

Need = Literal["train", "test", "any"]
DEMONSTRATIONS = "demonstrations"


def dataset_prepare(job: Job, workdir: Path, data: DataConfig, *, need: Need = "train") -> dict:
    """Writes the job's dataset files (reusing complete ones from an earlier try) and returns
    {"data": absolute folder, "dataset_sha256": sha256 of pairs/manifest.json, "rows": {...}}.

    `need` is the split that must have pairs: "train" for training, "test" or "any" for an evaluation. When it
    has none, JobError says how many labels the project has and which filter removed them, so the person who
    queued the job can loosen the right setting instead of guessing."""
    folder = Path(workdir).resolve() / "data"
    folder.mkdir(parents=True, exist_ok=True)
    pairs_options = data.export_options(kind="pairs")
    pair_rows = _export(job.project, pairs_options, folder / PAIRS)
    usable = pair_rows.get("train", 0) + pair_rows.get("test", 0) if need == "any" else pair_rows.get(need, 0)
    if not usable:
        raise JobError(no_pairs_reason(job.project, pairs_options, pair_rows, need))
    label_rows = _export(job.project, data.export_options(kind="labels"), folder / LABELS)
    annotators = {
        pseudonym(user_id, ""): attributes or {}
        for user_id, attributes in Membership.objects.filter(project=job.project)
        .order_by("id")
        .values_list("user_id", "attributes")
    }
    write_atomic(folder / ANNOTATORS, json.dumps(annotators, indent=1, sort_keys=True))
    return {
        "data": str(folder),
        "dataset_sha256": _sha256(folder / PAIRS / "manifest.json"),
        "rows": {"pairs": pair_rows, "labels": label_rows, "annotators": len(annotators)},
    }


def demonstrations_prepare(job: Job, workdir: Path, data: SftDataConfig) -> dict:
    """Writes an SFT job's examples: the project's demonstrations and, with data.include_chosen, the preference
    pairs (whose chosen answers the child also imitates), both split by prompt with the same test_fraction and
    seed, so a prompt's demonstration and its pairs are never on both sides. Returns {"data", "dataset_sha256",
    "rows": {"demonstrations": {...}, "pairs": {...}}}.

    dataset_sha256 is the demonstrations' manifest hash; with pairs too, the hash of both manifests' hashes. When
    the training split would be empty, JobError says what the project has and which setting removed it."""
    folder = Path(workdir).resolve() / "data"
    folder.mkdir(parents=True, exist_ok=True)
    options = ExportOptions(
        kind=DEMONSTRATIONS,
        format="jsonl",
        style="conversational",
        segment=data.segment,
        test_fraction=data.test_fraction,
        seed=data.seed,
    )
    rows = {DEMONSTRATIONS: _export(job.project, options, folder / DEMONSTRATIONS)}
    manifests = [folder / DEMONSTRATIONS / "manifest.json"]
    if data.include_chosen:
        pairs = DataConfig(segment=data.segment, test_fraction=data.test_fraction, seed=data.seed)
        rows[PAIRS] = _export(job.project, pairs.export_options(kind="pairs"), folder / PAIRS)
        manifests.append(folder / PAIRS / "manifest.json")
    if not sum(split.get("train", 0) for split in rows.values()):
        raise JobError(no_examples_reason(job.project, data, rows))
    if len(manifests) == 1:
        digest = _sha256(manifests[0])
    else:
        joined = "".join(f"{path.parent.name}:{_sha256(path)}\n" for path in manifests)
        digest = hashlib.sha256(joined.encode("utf-8")).hexdigest()
    return {"data": str(folder), "dataset_sha256": digest, "rows": rows}


def no_examples_reason(project: Project, data: SftDataConfig, rows: dict[str, dict[str, int]]) -> str:
    """Why an SFT job has nothing to train on, in figures, naming the setting that would change it."""
    total = Demonstration.objects.filter(prompt__project=project).count()
    found = sum(rows[DEMONSTRATIONS].values())
    if not total:
        what = f"project {project.slug} has no demonstrations"
    elif not found:
        what = f"none of the project's {_count(total, 'demonstration')} passes data.segment={data.segment}"
    else:
        what = (
            f"the project's {_count(found, 'demonstration')} all fell in the test split "
            f"(data.test_fraction={data.test_fraction:g}, data.seed={data.seed})"
        )
    if not data.include_chosen:
        return (
            f'nothing to train on: {what} and data.include_chosen is off; write demonstrations ("write a better '
            'answer" while annotating) or set data.include_chosen=true to imitate the answers people chose'
        )
    pairs = sum(rows.get(PAIRS, {}).values())
    return (
        f"nothing to train on: {what}, and the preference pairs give "
        f"{_count(pairs, 'usable pair') if pairs else 'no usable pair'} in the training split"
    )


def _export(project: Project, options: ExportOptions, out: Path) -> dict[str, int]:
    """One export folder: kept when an earlier try completed it with these options (its manifest is written
    last), written again when it is half-done or was made with other options."""
    manifest = out / "manifest.json"
    if manifest.exists():
        written = json.loads(manifest.read_text(encoding="utf-8"))
        if written.get("options") == options.as_dict() and written.get("project") == project.slug:
            return written["rows"]
    if out.exists():
        shutil.rmtree(out)
    return export_preferences(project=project, options=options, out=out).rows


def no_pairs_reason(project: Project, options: ExportOptions, rows: dict[str, int], need: Need) -> str:
    """Why the dataset has no pair to train (or test) on, in figures: the labels, then each filter's toll."""
    total = Label.objects.filter(comparison__project=project).count()
    if not total:
        return f"project {project.slug} has no labels yet: annotate or import some preferences first"
    kept = filtered_labels(project, options).count()
    if not kept:
        filters = [f"sources={','.join(options.sources)}"] if options.sources else []
        filters += [f"segment={options.segment}"] if options.segment else []
        filters += ["annotators excluded from exports"]
        return f"none of the project's {total} labels passes the label filters ({'; '.join(filters)})"
    relaxed = replace(options, min_labels=1, min_agreement=0.0, include_ties=True, include_both_bad=True)
    tolls: Counter = Counter()
    units = 0
    for unit, outcome, agreement in aggregated_units(project, relaxed):
        units += 1
        if len(unit.votes) < options.min_labels:
            tolls[f"fewer than min_labels={options.min_labels} labels"] += 1
        elif agreement < options.min_agreement:
            tolls[f"agreement below min_agreement={options.min_agreement:g}"] += 1
        elif outcome == "tie" and not options.include_ties:
            tolls["ties (ties=exclude)"] += 1
        elif outcome == "both_bad":
            tolls["both bad (never a preference)"] += 1
    removed = ", ".join(f"{n} {why}" for why, n in tolls.most_common()) or "none by the pair filters"
    where = {"train": "the training split", "test": "the test split", "any": "the dataset"}[need]
    split = ""
    if need != "any" and sum(rows.values()):
        split = (
            f"; {_count(sum(rows.values()), 'usable pair')} all fell in the other split "
            f"(data.test_fraction={options.test_fraction:g}, data.seed={options.seed})"
        )
    return (
        f"no usable pairs in {where}: {kept} of the project's {_count(total, 'label')} pass the label filters "
        f"and make {_count(units, 'pair')}; removed: {removed}{split}"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
