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
    ended: Callable[[Job], None] | None = None
    """Called once the job has ended on a worker (succeeded, failed or cancelled), e.g. to remove its inputs."""
    long_transaction: bool = False
    """The child writes in one long transaction. On SQLite that holds the only write lock, so the worker's
    heartbeats wait for its own child: the worker keeps it running (no other worker can claim the job meanwhile,
    and the child extends its lease in that transaction) instead of giving up on it. Only for idempotent kinds."""


def nothing_to_prepare(job: Job, workdir: Path) -> dict:
    return {}


def result_as_is(job: Job, workdir: Path, result: dict) -> dict:
    return result
