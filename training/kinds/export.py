"""The `export` kind on the database side: prepare() writes the dataset into the job's folder; the child
(training.tasks.export) only zips it, without Django."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from feedback.exports.options import ExportOptions
from feedback.exports.service import ExportFailed, export_preferences
from feedback.models import Project
from training.jobs import job_progress
from training.models import Job

from .base import JobError, job_config

MANIFEST = "manifest.json"


def export_write(*, project: Project, options: ExportOptions, out: Path) -> dict:
    """Writes the export into `out` unless a complete one is there already; answers its manifest.

    Idempotent, for prepare() running again after a worker died: a folder with its manifest is complete
    (export_preferences renames it into place only when done) and is reused; anything else there is redone."""
    out = Path(out)
    manifest = out / MANIFEST
    if not manifest.exists():
        shutil.rmtree(out, ignore_errors=True)
        try:
            export_preferences(project=project, options=options, out=out)
        except ExportFailed as exc:
            raise JobError(str(exc)) from None
    return json.loads(manifest.read_text(encoding="utf-8"))


def prepare_export(job: Job, workdir: Path) -> dict:
    options: ExportOptions = job_config(job)
    out = Path(workdir) / "export"
    job_progress(job, current=0, total=1, message=f"exporting {options.kind} as {options.format}")
    manifest = export_write(project=job.project, options=options, out=out)
    return {"project": job.project.slug, "rows": manifest["rows"]}
