"""The `export` kind on the database side; its child is training.tasks.export."""

from __future__ import annotations

from pathlib import Path

from training.models import Job


def prepare_export(job: Job, workdir: Path) -> dict:
    return {"project": job.project.slug}
