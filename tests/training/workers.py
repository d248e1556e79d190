"""Real worker processes for tests: `manage.py run_worker` against the test database, killed at the end."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from training.worker import database_url

BASE_DIR = Path(__file__).resolve().parents[2]
FAST = {
    "JUROR_JOB_HEARTBEAT_SECONDS": "0.3",
    "JUROR_JOB_LEASE_SECONDS": "3",
    "JUROR_JOB_RETRY_DELAY_SECONDS": "0",
    "JUROR_WORKER_POLL_SECONDS": "0.2",
    "JUROR_WORKER_STOP_GRACE_SECONDS": "20",
}


class Workers:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen] = []

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            **FAST,
            "DATABASE_URL": database_url(),
            "JUROR_DATA_DIR": str(settings.JUROR_DATA_DIR),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            **extra,
        }

    def start(self, *args: str, name: str = "w", **extra: str) -> subprocess.Popen:
        log = open(self.tmp_path / f"worker-{name}-{len(self.procs)}.log", "wb")  # noqa: SIM115 — closed with the process
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "manage.py", "run_worker", "--name", name, *args],
            cwd=BASE_DIR,
            env=self.env(**extra),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        proc.log_path = log.name
        self.procs.append(proc)
        return proc

    def output(self, proc: subprocess.Popen) -> str:
        return Path(proc.log_path).read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


def wait_for(predicate: Callable[[], object], *, timeout: float = 60, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
