"""The child process a worker starts for one attempt of one job: `python -m training.runner SPEC.json`.

It never imports Django (the import kind sets Django up itself, because it writes to the database): it reads a
spec the worker wrote, builds the kind's validated config dataclass, runs the kind's entry point (named in
training.catalog), and reports back as JSON lines on the file descriptor in JUROR_EVENTS_FD; what it
prints is the job's log. Exit status: 0 done (a `result` event was sent), 75 stopped at a checkpoint after
SIGTERM, anything else a failure (an `error` event says why).
"""

from __future__ import annotations

import ctypes
import importlib
import json
import logging
import math
import os
import shutil
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.catalog import KINDS
from training.configs import ConfigError, config_from

EXIT_STOPPED = 75  # EX_TEMPFAIL: "try again later", from sysexits.h


class Stopped(Exception):
    """Raised by a task after it wrote its checkpoint because the worker asked it to stop."""


class Unrecoverable(Exception):
    """A failure that another attempt would repeat (bad input); the job fails at once."""


class Context:
    """What a task sees of its job: config, inputs, its folder, and ways to report progress.

    `config` is the kind's config dataclass, validated here once (ConfigError for a spec whose config is not
    valid); a task reads `ctx.config.max_new_tokens`, never a dict."""

    def __init__(self, spec: dict[str, Any], events: Callable[[dict], None]) -> None:
        self.job_id: int = spec["job_id"]
        self.attempt: int = spec["attempt"]
        self.kind: str = spec["kind"]
        self.config: Any = config_from(spec["kind"], spec["config"])
        self.workdir = Path(spec["workdir"])
        self.data_dir = Path(spec["data_dir"])
        self.inputs: dict[str, Any] = json.loads(Path(spec["inputs"]).read_text()) if spec.get("inputs") else {}
        self.checkpoint_dir = self.workdir / "checkpoint"
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self._emit = events
        self._stop = threading.Event()

    def progress(self, current: int, total: int, message: str = "") -> None:
        self._emit({"type": "progress", "current": int(current), "total": int(total), "message": message})

    def metric(self, step: int, **values: float) -> None:
        finite = {k: float(v) for k, v in values.items() if math.isfinite(float(v))}
        for name in values.keys() - finite.keys():
            self.log(f"metric {name} at step {step} is {values[name]}; not recorded")
        if finite:
            self._emit({"type": "metric", "step": int(step), "values": finite})

    def artifact(self, name: str, path: Path, kind: str) -> None:
        self._emit({"type": "artifact", "name": name, "path": str(path), "kind": kind})

    def log(self, message: str) -> None:
        print(message, flush=True)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop_if_asked(self) -> None:
        """Call right after a checkpoint: leaves the task if the worker is shutting down."""
        if self._stop.is_set():
            raise Stopped

    def request_stop(self) -> None:
        self._stop.set()


def write_atomic(path: Path, data: str | bytes) -> None:
    """Writes under a temporary name and renames, so a reader (or a resumed attempt) never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")  # two writers never share a temporary file
    with open(tmp, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_folder_atomic(folder: Path, write: Callable[[Path], None]) -> Path:
    """`write(tmp)` fills a temporary folder beside `folder`, which is then renamed into place: a reader (the
    registry, a resumed attempt) sees the whole folder or none of it. A retried attempt replaces what an earlier
    one left."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def _die_with_parent(*, parent_is_worker: bool) -> None:
    """If the worker is SIGKILLed, its child must not run on alone (Linux: PR_SET_PDEATHSIG). Under a launcher
    the parent is the launcher, which itself dies with the worker (see `--exec`)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except OSError:
        return
    parent = os.environ.get("JUROR_WORKER_PID")
    if parent_is_worker and parent and os.getppid() != int(parent):  # the worker died before prctl took effect
        os._exit(1)


def _entry(kind: str) -> Callable[[Context], dict]:
    """The kind's entry point. The catalog is the only code a spec can name: a worker runs these and nothing
    else."""
    module, _, name = KINDS[kind].entry.partition(":")
    return getattr(importlib.import_module(module), name)


def _events_stream():
    if os.environ.get("JUROR_EVENTS_FD"):
        return os.fdopen(int(os.environ["JUROR_EVENTS_FD"]), "w", buffering=1)
    if os.environ.get("JUROR_EVENTS_FILE"):  # under a launcher, which does not pass inherited pipes on
        return open(os.environ["JUROR_EVENTS_FILE"], "a", buffering=1, encoding="utf-8")  # noqa: SIM115
    return sys.stderr


def _quiet_libraries() -> None:
    """bitsandbytes warns on every 4-bit job that it could not download a faster CPU kernel from the Hub; jobs
    never download (no network, HF_HUB_OFFLINE), so the built-in kernel is the intended path, not news. And
    transformers 5 warns on every checkpoint that `*gradient_checkpointing` was renamed, from inside TRL and the
    Trainer, not from our calls: noise in every training job's log."""
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*gradient_checkpointing.* is deprecated", category=FutureWarning)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--exec":
        # The launcher's wrapper: bound to the worker's life, then replaced by the launcher (PDEATHSIG survives
        # exec), whose ranks run this module again.
        _die_with_parent(parent_is_worker=True)
        os.environ["JUROR_LAUNCHED"] = "1"
        os.execv(argv[1], argv[1:])  # noqa: S606 — our own interpreter and accelerate, from child_command
    _die_with_parent(parent_is_worker=not os.environ.get("JUROR_LAUNCHED"))
    spec = json.loads(Path(argv[0]).read_text())
    stream = _events_stream()
    rank0 = os.environ.get("RANK", "0") == "0"  # under `accelerate launch`, one process speaks for the job

    def emit(event: dict) -> None:
        if rank0:
            stream.write(json.dumps(event) + "\n")
            stream.flush()

    try:
        ctx = Context(spec, emit)
    except (ConfigError, KeyError) as exc:  # another attempt would read the same spec
        emit({"type": "error", "message": f"bad job spec: {exc}", "retry": False})
        return 1
    signal.signal(signal.SIGTERM, lambda *_: ctx.request_stop())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the worker, which decides for its child
    _quiet_libraries()
    try:
        result = _entry(spec["kind"])(ctx)
    except Stopped:
        ctx.log("stopped at a checkpoint; the job will resume from it")
        return EXIT_STOPPED
    except Unrecoverable as exc:
        emit({"type": "error", "message": str(exc), "retry": False})
        return 1
    except Exception as exc:  # noqa: BLE001 — any crash is reported with its traceback, then retried
        traceback.print_exc()
        emit({"type": "error", "message": f"{type(exc).__name__}: {exc}", "retry": True})
        return 1
    emit({"type": "result", "result": result or {}})
    return 0


if __name__ == "__main__":
    # Tasks import this module as training.runner: one module, so the Stopped and Unrecoverable they raise are the
    # classes main() catches (run with -m, a second import would make a second copy of each).
    sys.modules.setdefault("training.runner", sys.modules[__name__])
    sys.exit(main(sys.argv[1:]))
