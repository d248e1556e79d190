"""The `import` kind's child: imports an upload too large for a web request (feedback.imports.uploads stored it
and queued the job).

Unlike the other kinds it sets Django up, because it writes straight into the database; the import happens here,
after setup, which is why this module imports nothing of Django at the top. The import is one transaction: a
cancel (the worker kills this process), a crash or a bad file leaves the database as it was, and a shutdown
stops it between chunks (it starts again from the top on the next attempt).
"""

from __future__ import annotations

import time

from training.configs import ImportConfig
from training.runner import Context, Stopped, Unrecoverable

ERRORS_SHOWN = 100
"""Bad rows listed in the job's result and log; the count covers them all."""


def run(ctx: Context) -> dict:
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from feedback.imports.errors import ImportFailed
    from feedback.imports.service import ImportStopped
    from feedback.imports.uploads import stored_upload_import, stored_upload_path
    from feedback.models import Project

    settings.JUROR_DATA_DIR = ctx.data_dir
    options: ImportConfig = ctx.config
    project = Project.objects.get(pk=ctx.inputs["project"])
    name = options.name or options.upload.rsplit("/", 1)[-1]
    try:
        path = stored_upload_path(project.pk, options.upload)
    except ImportFailed as exc:
        raise Unrecoverable(exc.message) from None
    if not path.is_file():
        raise Unrecoverable("the uploaded file is no longer stored; upload it again")
    meter = Meter(ctx, keep_lease=connection.vendor == "sqlite")
    ctx.log(f"importing {name} into {project.slug}")
    try:
        summary = stored_upload_import(
            project=project,
            path=path,
            name=name,
            fmt=None if options.format == "auto" else options.format,
            skip_invalid=options.skip_invalid,
            source=options.source or None,
            progress=meter,
            should_stop=lambda: ctx.stopping,
        )
    except ImportFailed as exc:
        for error in exc.errors[:ERRORS_SHOWN]:
            ctx.log(f"error: {error}")
        raise Unrecoverable(exc.message) from None
    except ImportStopped:
        raise Stopped from None
    seconds = max(time.monotonic() - meter.started, 1e-9)
    for error in summary.skipped[:ERRORS_SHOWN]:
        ctx.log(f"skipped {error}")
    ctx.log(str(summary).splitlines()[0])
    ctx.log(f"{summary.rows / seconds:,.0f} rows/s; peak RSS {_peak_rss_mb():.1f} MB")
    result = summary.as_dict()
    result["skipped_rows"] = [str(error) for error in summary.skipped[:ERRORS_SHOWN]]
    result["rows_per_s"] = round(summary.rows / seconds)
    result["seconds"] = round(seconds, 1)
    return result


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


class Meter:
    """Turns the import's progress calls into the job's progress bar, a rows/s metric and, on SQLite, a lease
    that stays current while the import's transaction keeps the worker's own heartbeats waiting."""

    def __init__(self, ctx: Context, *, keep_lease: bool, every: float = 1.0) -> None:
        self.ctx = ctx
        self.keep_lease = keep_lease
        self.every = every
        self.started = time.monotonic()
        self.stage = ""
        self.base = 0
        self.written = 0
        self.rows = 0  # rows read so far, over both passes: the x axis of the rows/s chart
        self.mark = (self.started, 0)  # (time, rows) at the last metric
        self.shown = 0.0
        self.leased = self.started

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if stage != self.stage:
            self.stage, self.base, self.shown = stage, self.rows, 0.0
        if stage in ("checking", "writing"):
            self.rows = self.base + done
        finished = total is not None and done >= total
        if now - self.shown >= self.every or finished:
            self.shown = now
            self._show(stage, done, total, now)
        if self.keep_lease and stage != "checking" and now - self.leased >= self._heartbeat():
            self.leased = now
            self._extend_lease()

    def _show(self, stage: str, done: int, total: int | None, now: float) -> None:
        if stage == "checking":  # the first pass: the number of rows is not known until its end
            self.ctx.progress(done, 0, f"checking rows: {done:,} read")
        elif stage == "writing":
            self.written = total or 0
            self.ctx.progress(done, self.written, f"writing rows: {done:,} of {self.written:,}")
        else:
            self.ctx.progress(self.written, self.written, f"making comparisons: {done:,} of {total or 0:,} prompts")
        then, rows_then = self.mark
        if stage != "comparing" and now > then and self.rows > rows_then:
            self.ctx.metric(self.rows, rows_per_s=(self.rows - rows_then) / (now - then))
            self.mark = (now, self.rows)

    def _heartbeat(self) -> float:
        from django.conf import settings

        return settings.JUROR_JOB_HEARTBEAT_SECONDS

    def _extend_lease(self) -> None:
        """Inside the import's transaction: at its commit the job's lease is fresh, so no other worker takes the job
        over in the moment before the worker's own heartbeat gets through again."""
        from datetime import timedelta

        from django.conf import settings

        from training.jobs import DbNow
        from training.models import Job

        Job.objects.filter(pk=self.ctx.job_id, attempt=self.ctx.attempt, status=Job.Status.RUNNING).update(
            heartbeat_at=DbNow(), lease_expires_at=DbNow() + timedelta(seconds=settings.JUROR_JOB_LEASE_SECONDS)
        )
