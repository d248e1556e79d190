"""The worker loop behind `manage.py run_worker`: claim a job, run it in a child process, report back.

Threads, per job: one reads the child's log, one its events, and one ("pulse") writes both to the database and
heartbeats on its own schedule, so a child busy in a long matrix multiply never lets the lease lapse. The main
thread only waits for the child and decides what its exit means.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import quote, urlsplit, urlunsplit

from django.conf import settings
from django.db import close_old_connections, connection, transaction

from .catalog import KINDS, KindSpec, resolve
from .jobs import (
    job_claim,
    job_dir,
    job_fail,
    job_fail_now,
    job_heartbeat,
    job_mark_cancelled,
    job_progress,
    job_requeue,
    job_succeed,
    worker_name,
)
from .kinds import JobError
from .models import Artifact, Job, JobLog, JobMetric
from .runner import EXIT_STOPPED, write_atomic

logger = logging.getLogger("juror.worker")
BASE_DIR = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """The database this process uses, as a URL for the child. It is the configured DATABASE_URL (credentials
    quoted and options such as sslmode kept as they were) pointed at the database actually in use, which
    during tests is the test database."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return url_for_database(os.environ["DATABASE_URL"], str(db["NAME"]))


def url_for_database(url: str, name: str) -> str:
    """`url` with its database name replaced; everything else (quoted credentials, ?sslmode=…) as it was."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(name)))


def gpu_count() -> int:
    """GPUs this machine has, asked of nvidia-smi so the worker itself never imports torch."""
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def child_command(spec_path: Path, *, distributed: bool, gpus: int | None = None) -> list[str]:
    """Plain Python on CPU; `accelerate launch` for a distributed kind when several GPUs are there to use.

    The launcher is started through `training.runner --exec`, which ties it to the worker's life (a SIGKILLed
    worker takes its launcher with it, and each rank dies with the launcher)."""
    if uses_launcher(distributed=distributed, gpus=gpus):
        gpus = gpu_count() if gpus is None else gpus
        args = shlex.split(settings.JUROR_ACCELERATE_ARGS) or ["--multi_gpu", "--num_processes", str(max(gpus, 1))]
        launcher = [sys.executable, "-m", "accelerate.commands.launch", *args]
        return [sys.executable, "-m", "training.runner", "--exec", *launcher, "-m", "training.runner", str(spec_path)]
    return [sys.executable, "-m", "training.runner", str(spec_path)]


def uses_launcher(*, distributed: bool, gpus: int | None = None) -> bool:
    launcher = settings.JUROR_WORKER_LAUNCHER
    if not distributed or launcher == "python":
        return False
    return launcher == "accelerate" or (gpu_count() if gpus is None else gpus) > 1


@dataclass
class Attempt:
    """One attempt at one job, as the worker's threads see it."""

    job: Job
    child: subprocess.Popen | None = None
    events: queue.Queue = field(default_factory=queue.Queue)
    result: dict | None = None
    error: dict | None = None
    cancelled: bool = False
    lost: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    readers: list[threading.Thread] = field(default_factory=list)
    pulse: threading.Thread | None = None
    events_file: Path | None = None
    """Under a launcher the child's events come through this file (launchers close inherited pipes)."""


class Worker:
    def __init__(self, *, name: str | None = None, echo: IO[str] | None = None) -> None:
        self.name = name or worker_name()
        self.echo = echo
        self.stopping = threading.Event()
        self.current: Attempt | None = None

    # Signals -----------------------------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)

    def _on_stop_signal(self, signum, frame) -> None:
        self.stopping.set()
        attempt = self.current
        if attempt:
            # The child checkpoints at its next safe point and exits 75; the job is then handed back.
            self._signal(attempt, signal.SIGTERM)

    # Loop --------------------------------------------------------------------------------------------------
    def run(self, *, once: bool = False, exit_when_idle: bool = False) -> int:
        """Runs jobs until stopped; returns how many attempts it ran. Nothing but a stop ends the loop: a
        database that cannot be reached is waited for, a job that breaks the worker is failed or left to its
        lease."""
        ran = 0
        while not self.stopping.is_set():
            try:
                close_old_connections()
                job = job_claim(worker=self.name)
            except Exception as exc:  # noqa: BLE001 — e.g. the database is down or locked: wait, then try again
                logger.exception("claiming a job failed")
                self._say(f"cannot claim jobs ({type(exc).__name__}: {exc}); trying again")
                self.stopping.wait(settings.JUROR_WORKER_POLL_SECONDS)
                continue
            if job is None:
                if once or exit_when_idle:
                    break
                self.stopping.wait(settings.JUROR_WORKER_POLL_SECONDS)
                continue
            self.run_job(job)
            ran += 1
            if once:
                break
        return ran

    def run_job(self, job: Job) -> str:
        """Runs one claimed attempt to its end; answers what became of the job."""
        self._say(f"job #{job.pk} ({job.kind}) attempt {job.attempt}: started")
        attempt = Attempt(job=job)
        self.current = attempt
        # Heartbeats start with the claim: preparing a big job must not let the lease lapse.
        attempt.pulse = threading.Thread(target=self._pulse, args=(attempt,), daemon=True)
        attempt.pulse.start()
        try:
            return self._ended(job, self._run(attempt))
        except Exception as exc:  # noqa: BLE001 — a bug or a lost database must not end the worker
            logger.exception("job %s: the worker failed", job.pk)
            self._stop_pulse(attempt)
            self._kill(attempt)
            try:
                outcome = job_fail(job, error=f"the worker failed: {type(exc).__name__}: {exc}")
                return self._ended(job, self._said(job, outcome))
            except Exception:  # noqa: BLE001 — then the lease runs out and another worker takes the job
                logger.exception("job %s: could not record the failure", job.pk)
                return "lost"
        finally:
            self._stop_pulse(attempt)
            self.current = None

    def _ended(self, job: Job, outcome: str) -> str:
        """Lets the kind clean up once the job has ended (an import removes its stored upload)."""
        ended = KINDS[job.kind].ended
        if ended is not None and outcome in ("succeeded", "failed", "cancelled"):
            try:
                resolve(ended)(job)
            except Exception:  # noqa: BLE001 — the job's outcome stands whatever its clean-up does
                logger.exception("job %s: cleaning up after it failed", job.pk)
        return outcome

    def _run(self, attempt: Attempt) -> str:
        job = attempt.job
        kind = KINDS[job.kind]
        workdir = job_dir(job)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            inputs = self._inputs(job, workdir, kind)
        except JobError as exc:
            self._stop_pulse(attempt)
            job_fail_now(job, error=str(exc))
            return self._said(job, "failed", str(exc))
        if attempt.cancelled or attempt.lost:  # found out while preparing
            self._stop_pulse(attempt)
            return self._conclude(attempt, kind, workdir)
        spec = {
            "job_id": job.pk,
            "attempt": job.attempt,
            "kind": job.kind,
            "config": job.config,
            "inputs": str(inputs),
            "workdir": str(workdir),
            "data_dir": str(settings.JUROR_DATA_DIR),
        }
        spec_path = workdir / f"spec-{job.attempt}.json"
        write_atomic(spec_path, json.dumps(spec, indent=1))
        self._spawn(attempt, spec_path, distributed=kind.distributed)
        if self.stopping.is_set():
            self._signal(attempt, signal.SIGTERM)  # a stop that arrived while we were starting it
        self._wait(attempt)
        return self._conclude(attempt, kind, workdir)

    def _inputs(self, job: Job, workdir: Path, kind: KindSpec) -> Path:
        """The child's inputs are read from the database once per job, so a resumed attempt sees the same ones."""
        path = workdir / "inputs.json"
        if not path.exists():
            write_atomic(path, json.dumps(resolve(kind.prepare)(job, workdir)))
        return path

    def _spawn(self, attempt: Attempt, spec_path: Path, *, distributed: bool) -> None:
        env = {
            **os.environ,
            "JUROR_WORKER_PID": str(os.getpid()),
            "DATABASE_URL": database_url(),
            "JUROR_DATA_DIR": str(settings.JUROR_DATA_DIR),
            "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings"),
            "PYTHONUNBUFFERED": "1",
            "TQDM_DISABLE": "1",  # progress bars drawn with \r make unreadable log lines; progress has its own field
        }
        env.pop("JUROR_EVENTS_FD", None)
        env.pop("JUROR_EVENTS_FILE", None)
        read_fd = write_fd = None
        gpus = gpu_count() if distributed else 0  # asked once: the command and the events channel must agree
        if uses_launcher(distributed=distributed, gpus=gpus):
            attempt.events_file = spec_path.with_name(f"events-{attempt.job.attempt}.jsonl")
            attempt.events_file.write_text("")
            env["JUROR_EVENTS_FILE"] = str(attempt.events_file)
        else:
            read_fd, write_fd = os.pipe()
            env["JUROR_EVENTS_FD"] = str(write_fd)
        attempt.child = subprocess.Popen(  # noqa: S603 — our own interpreter and module, no shell
            child_command(spec_path, distributed=distributed, gpus=gpus),
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,) if write_fd is not None else (),
            # Its own process group: a terminal's Ctrl-C goes to the worker, which decides for its child, and
            # cancel or shutdown reach every process of the job (a launcher's ranks included).
            start_new_session=True,
        )
        if write_fd is not None:
            os.close(write_fd)
            events = threading.Thread(target=self._read_events, args=(attempt, read_fd), daemon=True)
        else:
            events = threading.Thread(target=self._tail_events, args=(attempt,), daemon=True)
        attempt.readers = [threading.Thread(target=self._read_log, args=(attempt,), daemon=True), events]
        for thread in attempt.readers:
            thread.start()

    def _read_log(self, attempt: Attempt) -> None:
        for raw in attempt.child.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            attempt.events.put({"type": "log", "line": line})
            self._say(f"job #{attempt.job.pk} | {line}")

    def _read_events(self, attempt: Attempt, fd: int) -> None:
        with os.fdopen(fd, "r", encoding="utf-8") as stream:
            for line in stream:
                self._event(attempt, line)

    def _tail_events(self, attempt: Attempt) -> None:
        """Follows the events file until the child has exited and the file is read to its end."""
        with open(attempt.events_file, encoding="utf-8") as stream:
            pending = ""
            while True:
                chunk = stream.readline()
                if chunk:
                    pending += chunk
                    if pending.endswith("\n"):
                        self._event(attempt, pending)
                        pending = ""
                    continue
                if attempt.child.poll() is not None:
                    return
                time.sleep(0.2)

    def _event(self, attempt: Attempt, line: str) -> None:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            return
        if event.get("type") == "result":
            attempt.result = event["result"]
        elif event.get("type") == "error":
            attempt.error = event
        else:
            attempt.events.put(event)

    def _pulse(self, attempt: Attempt) -> None:
        """Writes progress, metrics and log lines in batches, and heartbeats; stops the child if it must.

        If heartbeats keep failing (the database is unreachable from here), the worker stops the child itself
        before its lease can run out: by then another worker may take the job over, and two children must never
        work on one job folder."""
        job = attempt.job
        next_beat = 0.0
        last_beat = time.monotonic()
        give_up = settings.JUROR_JOB_LEASE_SECONDS - 2 * settings.JUROR_JOB_HEARTBEAT_SECONDS
        try:
            while True:
                finished = attempt.done.wait(0.5)
                try:
                    if time.monotonic() >= next_beat and not finished:
                        next_beat = time.monotonic() + settings.JUROR_JOB_HEARTBEAT_SECONDS
                        state = job_heartbeat(job)
                        last_beat = time.monotonic()
                        if state == "cancel" and not attempt.cancelled:
                            attempt.cancelled = True
                            self._say(f"job #{job.pk}: cancel requested, stopping it")
                            self._kill(attempt)
                        elif state == "lost" and not attempt.lost and not attempt.cancelled:
                            self._lose(attempt, "lease lost to another worker")
                    self._flush(attempt)
                except Exception as exc:  # noqa: BLE001 — a database blip must not kill the heartbeat thread
                    if not self._waits_for_its_child(attempt, exc):
                        logger.exception("job %s: reporting failed; will try again", job.pk)
                        if time.monotonic() - last_beat > give_up and not attempt.lost:
                            self._lose(attempt, "no heartbeat got through for too long")
                if finished:
                    return
        finally:
            connection.close()  # this thread's own connection

    def _waits_for_its_child(self, attempt: Attempt, exc: Exception) -> bool:
        """SQLite is locked while a long-transaction kind (an import) writes: the heartbeat waits for this worker's
        own child, which keeps the lease current in its transaction; no other worker can claim the job meanwhile."""
        return (
            KINDS[attempt.job.kind].long_transaction
            and connection.vendor == "sqlite"
            and "database is locked" in str(exc)
            and attempt.child is not None
            and attempt.child.poll() is None
        )

    def _lose(self, attempt: Attempt, reason: str) -> None:
        attempt.lost = True
        self._say(f"job #{attempt.job.pk}: {reason}; stopping it")
        self._kill(attempt)

    def _stop_pulse(self, attempt: Attempt) -> None:
        attempt.done.set()
        if attempt.pulse is not None and attempt.pulse is not threading.current_thread():
            attempt.pulse.join(timeout=30)

    def _flush(self, attempt: Attempt) -> None:
        job = attempt.job
        logs, metrics, artifacts, progress = [], [], [], None
        while True:
            try:
                event = attempt.events.get_nowait()
            except queue.Empty:
                break
            kind = event.get("type")
            if kind == "log":
                logs.append(JobLog(job=job, attempt=job.attempt, line=event["line"][:10000]))
            elif kind == "progress":
                progress = event
            elif kind == "metric":
                metrics += [
                    JobMetric(job=job, attempt=job.attempt, step=event["step"], name=name[:100], value=value)
                    for name, value in event["values"].items()
                    if isinstance(value, int | float) and math.isfinite(value)  # NaN: no column, chart or JSON takes it
                ]
            elif kind == "artifact":
                artifacts.append(event)
        if logs:
            JobLog.objects.bulk_create(logs)
        if metrics:
            JobMetric.objects.bulk_create(metrics)
        for event in artifacts:
            self._record_artifact(job, event)
        if progress:
            job_progress(job, current=progress["current"], total=progress["total"], message=progress["message"])

    def _record_artifact(self, job: Job, event: dict) -> None:
        path = Path(event["path"])
        size = path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        try:
            relative = path.resolve().relative_to(Path(settings.JUROR_DATA_DIR).resolve())
        except ValueError:
            relative = path
        Artifact.objects.update_or_create(
            job=job,
            name=event["name"][:200],
            defaults={"kind": event["kind"], "path": str(relative), "size_bytes": size},
        )

    def _kill(self, attempt: Attempt) -> None:
        self._signal(attempt, signal.SIGKILL)

    def _signal(self, attempt: Attempt, signum: int) -> None:
        """To the child's whole process group: under a launcher, the ranks are the ones doing the work."""
        child = attempt.child
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signum)

    def _wait(self, attempt: Attempt) -> None:
        child = attempt.child
        stop_deadline = None
        while child.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=0.5)
            if self.stopping.is_set():
                stop_deadline = stop_deadline or time.monotonic() + settings.JUROR_WORKER_STOP_GRACE_SECONDS
                if time.monotonic() > stop_deadline:
                    self._say(f"job #{attempt.job.pk}: no checkpoint within the grace period; killing it")
                    self._kill(attempt)
        child.wait()
        for thread in attempt.readers:  # they end when the child's pipes close
            thread.join(timeout=10)
        self._stop_pulse(attempt)

    def _conclude(self, attempt: Attempt, kind: KindSpec, workdir: Path) -> str:
        job = attempt.job
        child = attempt.child
        self._flush(attempt)  # whatever arrived after the reporting thread's last round
        if attempt.lost:
            return self._said(job, "lost")
        if attempt.cancelled:
            job_mark_cancelled(job)
            return self._said(job, "cancelled")
        if child is None:
            return self._said(job, "stopped before it started")
        if child.returncode == 0 and attempt.result is not None:
            try:
                with transaction.atomic():
                    # The row lock makes "write what the child made" and "mark succeeded" one step that a
                    # worker which lost the lease cannot take.
                    held = Job.objects.select_for_update().filter(pk=job.pk, attempt=job.attempt, status="running")
                    if not held.exists():
                        return self._said(job, "lost")
                    result = resolve(kind.finish)(job, workdir, attempt.result)
                    job_succeed(job, result=result)
            except JobError as exc:
                job_fail_now(job, error=str(exc))
                return self._said(job, "failed", str(exc))
            except Exception as exc:  # noqa: BLE001
                logger.exception("finishing job %s failed", job.pk)
                return self._said(job, job_fail(job, error=f"saving the results failed: {type(exc).__name__}: {exc}"))
            return self._said(job, "succeeded")
        if self.stopping.is_set() or child.returncode == EXIT_STOPPED:
            job_requeue(job, reason=f"worker {self.name} is shutting down")
            return self._said(job, "requeued")
        error = (
            (attempt.error or {}).get("message") or self._log_tail(job) or f"the child exited with {child.returncode}"
        )
        if attempt.error and attempt.error.get("retry") is False:
            job_fail_now(job, error=error)
            return self._said(job, "failed", error)
        return self._said(job, job_fail(job, error=error), error)

    def _log_tail(self, job: Job) -> str:
        lines = list(
            JobLog.objects.filter(job=job, attempt=job.attempt).order_by("-id").values_list("line", flat=True)[:5]
        )
        return "\n".join(reversed(lines))

    def _said(self, job: Job, outcome: str, detail: str = "") -> str:
        self._say(
            f"job #{job.pk} attempt {job.attempt}: {outcome}" + (f" ({detail.splitlines()[-1]})" if detail else "")
        )
        return outcome

    def _say(self, message: str) -> None:
        if self.echo is not None:
            self.echo.write(message + "\n")
            self.echo.flush()
