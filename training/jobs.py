"""The job state machine: submit, claim, heartbeat, finish, cancel, retry.

    queued ──claim──▶ running ──▶ succeeded | failed | cancelled
       ▲                 │ (clean hand-back on shutdown, or a crash with attempts left)
       └─────────────────┘
    failed | cancelled ──retry──▶ queued

Every status change is one conditional UPDATE (`WHERE status = … AND attempt = …`), so two workers, a worker
and a cancel, or a worker that lost its lease can race without corrupting a job: the loser's update matches no
row. Lease times come from the database's clock (DbNow()), so workers and web servers with skewed clocks agree
on when a lease has run out.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Now

from feedback.models import Project

from .configs import config_dict, config_from
from .models import Job, JobLog

S = Job.Status


class DbNow(Now):
    """The database's clock. SQLite stores datetimes as text with six fraction digits but its clock has three,
    so "12:00:00.926" would sort before a time written earlier in that very millisecond ("12:00:00.926412"):
    padding with 999 reads the clock as the end of its millisecond, and a job queued just now is claimable now."""

    def as_sqlite(self, compiler, connection, **extra_context):
        template = "STRFTIME('%%%%Y-%%%%m-%%%%d %%%%H:%%%%M:%%%%f999', 'NOW')"
        return self.as_sql(compiler, connection, template=template, **extra_context)


class JobStateError(Exception):
    """The job is not in a state that allows this (e.g. retrying a job that succeeded)."""


def job_dir(job: Job) -> Path:
    """Where a job's inputs, checkpoints and outputs live; the same on every worker sharing the data dir.

    The creation time is part of the name: a database recreated next to an old data directory starts its ids
    at 1 again, and job #1 must not resume from the files of a different job #1."""
    return Path(settings.JUROR_DATA_DIR) / "jobs" / f"{job.pk}-{job.created_at:%Y%m%d%H%M%S%f}"


def job_submit(
    *, kind: str, project: Project, config: dict[str, Any] | None = None, user: AbstractBaseUser | None = None
) -> Job:
    """Validates the config against the kind's dataclass (ConfigError names the field) and queues the job."""
    parsed = config_from(kind, config)
    return Job.objects.create(
        kind=kind,
        project=project,
        config=config_dict(parsed),
        created_by=user if user is not None and user.is_authenticated else None,
        max_attempts=settings.JUROR_JOB_MAX_ATTEMPTS,
    )


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _lease_end():
    return DbNow() + timedelta(seconds=settings.JUROR_JOB_LEASE_SECONDS)


def job_claim(*, worker: str) -> Job | None:
    """Takes the oldest runnable job: a queued one, or a running one whose holder stopped heartbeating.

    A job whose holder vanished and that has used up its attempts is failed with the reason on the way, so it
    never stays "running" forever.
    """
    while True:
        with transaction.atomic():
            job = (
                # skip_locked: two workers must never claim the same job; each skips rows another is claiming.
                Job.objects.select_for_update(skip_locked=True)
                .filter(Q(status=S.QUEUED, run_after__lte=DbNow()) | Q(status=S.RUNNING, lease_expires_at__lt=DbNow()))
                .order_by("run_after", "id")
                .first()
            )
            if job is None:
                return None
            if job.cancel_requested:  # asked to stop while it was being handed back or retried
                _finish_row(
                    job, S.CANCELLED, error="" if job.status == S.QUEUED else "cancelled while its worker was gone"
                )
                continue
            if job.status == S.RUNNING:
                lost = f"worker {job.worker} stopped heartbeating (last at {_iso(job.heartbeat_at)})"
                _log(job, f"attempt {job.attempt}: {lost}")
                if job.failed_attempts >= job.max_attempts:
                    _finish_row(job, S.FAILED, error=f"gave up after {job.failed_attempts} attempts: {lost}")
                    continue
            Job.objects.filter(pk=job.pk).update(
                status=S.RUNNING,
                attempt=F("attempt") + 1,
                worker=worker,
                heartbeat_at=DbNow(),
                lease_expires_at=_lease_end(),
                started_at=Coalesce(F("started_at"), DbNow()),
                error="",
            )
            job.refresh_from_db()
            _log(job, f"attempt {job.attempt} claimed by {worker}")
            return job


def _iso(value) -> str:
    return value.isoformat(timespec="seconds") if value else "never"


def _log(job: Job, line: str) -> None:
    JobLog.objects.create(job=job, attempt=job.attempt, line=f"[juror] {line}")


def _finish_row(job: Job, status: str, *, error: str = "") -> None:
    Job.objects.filter(pk=job.pk).update(
        status=status, error=error, finished_at=DbNow(), lease_expires_at=None, cancel_requested=False
    )


def _held(job: Job):
    """The job's row while the given attempt still holds it."""
    return Job.objects.filter(pk=job.pk, status=S.RUNNING, attempt=job.attempt)


def job_heartbeat(job: Job) -> str:
    """Extends the lease; answers "ok", "cancel" (a cancel was asked for) or "lost" (someone else holds it)."""
    if not _held(job).update(heartbeat_at=DbNow(), lease_expires_at=_lease_end()):
        return "lost"
    return "cancel" if _held(job).filter(cancel_requested=True).exists() else "ok"


def job_progress(job: Job, *, current: int, total: int, message: str = "") -> bool:
    """Records progress; False when the attempt no longer holds the job."""
    return bool(
        _held(job).update(
            progress_current=max(0, current), progress_total=max(0, total), progress_message=message[:300]
        )
    )


def job_succeed(job: Job, *, result: dict | None = None) -> bool:
    return bool(
        _held(job).update(
            status=S.SUCCEEDED,
            result=result or {},
            finished_at=DbNow(),
            lease_expires_at=None,
            cancel_requested=False,  # it finished before the cancel reached it
            progress_current=F("progress_total"),
        )
    )


def job_requeue(job: Job, *, reason: str) -> bool:
    """Gives the job back cleanly (worker shutting down); this attempt does not count against max_attempts."""
    if _cancelled_instead(job):
        return True
    done = _held(job).update(
        status=S.QUEUED, requeues=F("requeues") + 1, lease_expires_at=None, worker="", run_after=DbNow()
    )
    if done:
        _log(job, f"attempt {job.attempt} handed back: {reason}")
    return bool(done)


def job_fail(job: Job, *, error: str) -> str:
    """A crashed attempt: queued again after a back-off while attempts remain, failed otherwise."""
    if _cancelled_instead(job):
        return "cancelled"
    fresh = Job.objects.filter(pk=job.pk).values("attempt", "requeues", "max_attempts").first()
    if fresh is None:
        return "gone"
    used = fresh["attempt"] - fresh["requeues"]
    if used < fresh["max_attempts"]:
        delay = settings.JUROR_JOB_RETRY_DELAY_SECONDS * 2 ** (used - 1)
        if _held(job).update(
            status=S.QUEUED,
            error=error,
            lease_expires_at=None,
            worker="",
            run_after=DbNow() + timedelta(seconds=delay),
        ):
            _log(
                job, f"attempt {job.attempt} failed; retrying in {delay:g} s: {error.splitlines()[-1] if error else ''}"
            )
            return "retrying"
        return "lost"
    message = f"failed after {used} attempt{'s' if used != 1 else ''}: {error}"
    if _held(job).update(status=S.FAILED, error=message, finished_at=DbNow(), lease_expires_at=None):
        return "failed"
    return "lost"


def job_fail_now(job: Job, *, error: str) -> bool:
    """A failure no retry can mend (a config that names a missing model, no prompts to use): fail at once."""
    return bool(_held(job).update(status=S.FAILED, error=error, finished_at=DbNow(), lease_expires_at=None))


def job_mark_cancelled(job: Job) -> bool:
    """The worker stopped the child after a cancel request."""
    done = _held(job).update(status=S.CANCELLED, finished_at=DbNow(), lease_expires_at=None, cancel_requested=False)
    if done:
        _log(job, "cancelled")
    return bool(done)


def _cancelled_instead(job: Job) -> bool:
    """A cancel that arrived while the attempt was ending wins over handing the job back or retrying it."""
    return _held(job).filter(cancel_requested=True).exists() and job_mark_cancelled(job)


def job_cancel(job: Job) -> Job:
    """Queued: cancelled at once. Running: the holder stops the child within a heartbeat. Finished: an error."""
    with transaction.atomic():
        if Job.objects.filter(pk=job.pk, status=S.QUEUED).update(status=S.CANCELLED, finished_at=DbNow()):
            pass
        elif Job.objects.filter(pk=job.pk, status=S.RUNNING, lease_expires_at__lt=DbNow()).update(
            status=S.CANCELLED, finished_at=DbNow(), lease_expires_at=None
        ):
            pass  # its worker is gone: nobody would act on the request
        elif not Job.objects.filter(pk=job.pk, status=S.RUNNING).update(cancel_requested=True):
            job.refresh_from_db()
            raise JobStateError(f"job #{job.pk} is {job.status}; only queued or running jobs can be cancelled")
    job.refresh_from_db()
    return job


def job_retry(job: Job) -> Job:
    """Queues a failed or cancelled job again; it resumes from its last checkpoint with a fresh set of attempts.

    The attempt number keeps counting (it is the fencing token), so max_attempts grows instead."""
    updated = Job.objects.filter(pk=job.pk, status__in=[S.FAILED, S.CANCELLED]).update(
        status=S.QUEUED,
        error="",
        finished_at=None,
        run_after=DbNow(),
        cancel_requested=False,
        max_attempts=F("attempt") - F("requeues") + settings.JUROR_JOB_MAX_ATTEMPTS,
    )
    job.refresh_from_db()
    if not updated:
        raise JobStateError(f"job #{job.pk} is {job.status}; only failed or cancelled jobs can be retried")
    _log(job, "queued again by retry")
    return job
