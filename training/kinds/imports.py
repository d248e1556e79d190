"""The `import` kind on the database side; its child is training.tasks.imports. The upload it imports was stored
by feedback.imports.uploads, which queued the job."""

from __future__ import annotations

from pathlib import Path

from feedback.imports.errors import ImportFailed
from feedback.imports.uploads import stored_upload_discard, stored_upload_path
from training.models import Job

from .base import JobError


def prepare_import(job: Job, workdir: Path) -> dict:
    try:
        path = stored_upload_path(job.project_id, job.config.get("upload", ""))
    except ImportFailed as exc:
        raise JobError(exc.message) from None
    if not path.is_file():
        raise JobError(
            "the uploaded file is no longer stored (it is removed when its import job ends); upload it again"
        )
    return {"project": job.project_id}


def end_import(job: Job) -> None:
    """The stored upload goes when the job ends, whatever the outcome: a retry asks for a new upload."""
    stored_upload_discard(job.project_id, job.config.get("upload", ""))
