"""What every job kind shares on the Django side of the child process (the kinds themselves: training.catalog)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.configs import config_from
from training.models import Job


class JobError(Exception):
    """A job that cannot run as configured (no prompts match, an unknown model): it fails at once, with this
    message, instead of being retried."""


def nothing_to_prepare(job: Job, workdir: Path) -> dict:
    """The default `prepare`: the child needs nothing from the database but its config."""
    return {}


def result_as_is(job: Job, workdir: Path, result: dict) -> dict:
    """The default `finish`: the child's result is the job's result; nothing goes into the database."""
    return result


def job_config(job: Job) -> Any:
    """The job's validated config dataclass (the stored dict was validated when the job was submitted)."""
    return config_from(job.kind, job.config)
