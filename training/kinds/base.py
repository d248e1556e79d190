"""What the worker needs from each job kind, on the Django side of the child process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from training.models import Job


class JobError(Exception):
    """A job that cannot run as configured (no prompts match, an unknown model): it fails at once, with this
    message, instead of being retried."""


@dataclass(frozen=True)
class Kind:
    prepare: Callable[[Job, Path], dict]
    """Reads what the child needs from the database (prompts, model paths) into plain JSON, once per job."""
    finish: Callable[[Job, Path, dict], dict]
    """Writes what the child made into the database, in the transaction that marks the job succeeded."""
    distributed: bool = False
    """Starts through `accelerate launch` when the worker has several GPUs."""


def nothing_to_prepare(job: Job, workdir: Path) -> dict:
    return {}


def result_as_is(job: Job, workdir: Path, result: dict) -> dict:
    return result
