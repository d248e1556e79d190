"""One TrainerCallback for every transformers/TRL trainer a job runs (reward models now; SFT, DPO, PPO later).

It reports the trainer's logs as the job's metrics and progress, marks each checkpoint complete once the trainer
has finished writing it, and turns the worker's SIGTERM into "save a checkpoint now, then stop". A checkpoint
folder without the marker was cut short (the process died while writing it) and is never resumed from.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

MARKER = "juror-complete"
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")

DEFAULT_METRICS: Mapping[str, str] = {
    # trainer log key -> job metric name; the first key found for a name wins
    "loss": "loss",
    "accuracy": "accuracy",  # RewardTrainer
    "rewards/accuracies": "accuracy",  # DPO
    "margin": "margin",  # RewardTrainer
    "rewards/margins": "margin",  # DPO
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
}


class JobContext(Protocol):
    """The part of training.runner.Context the callback uses (kept structural: this module must not import it)."""

    @property
    def stopping(self) -> bool: ...

    def progress(self, current: int, total: int, message: str = "") -> None: ...

    def metric(self, step: int, **values: float) -> None: ...

    def log(self, message: str) -> None: ...


class JobCallback(TrainerCallback):
    """Streams a Trainer's logs to the job and saves-then-stops when the worker asks.

    Use with the Trainer's output_dir = ctx.checkpoint_dir and save_total_limit=None: this callback removes older
    checkpoints itself, only after the new one is marked complete, so a crash never leaves none."""

    def __init__(self, ctx: JobContext, *, metrics: Mapping[str, str] = DEFAULT_METRICS) -> None:
        self.ctx = ctx
        self.metrics = metrics
        self.stopped_at: int | None = None

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self.ctx.progress(state.global_step, state.max_steps, f"step {state.global_step}/{state.max_steps}")
        if self.ctx.stopping:
            # The trainer saves right after on_step_end when should_save is set, then leaves its loop; the task
            # then calls ctx.stop_if_asked() and exits with "stopped".
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step
        return control

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return control
        values: dict[str, float] = {}
        for key, name in self.metrics.items():
            value = logs.get(key)
            if name in values or not isinstance(value, int | float):
                continue
            if math.isfinite(float(value)):
                values[name] = float(value)
        if values:
            self.ctx.metric(state.global_step, **values)
        return control

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if not state.is_world_process_zero:
            return control
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            mark_complete(folder, step=state.global_step)
            for other in _checkpoints(Path(args.output_dir)):
                if other != folder:
                    shutil.rmtree(other, ignore_errors=True)
        return control


def mark_complete(folder: Path, *, step: int) -> None:
    """Writes the marker under a temporary name and renames it: the marker exists whole or not at all."""
    tmp = folder / f".{MARKER}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"step": step}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / MARKER)


def _checkpoints(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found)]


def last_complete_checkpoint(folder: Path, *, discard_incomplete: bool = True) -> Path | None:
    """The newest checkpoint-N folder our callback marked complete, or None; with discard_incomplete, unmarked
    ones (half-written when the process died) are deleted so the trainer never reads or rotates them."""
    complete = None
    for path in _checkpoints(Path(folder)):
        if (path / MARKER).is_file():
            complete = path
        elif discard_incomplete:
            shutil.rmtree(path, ignore_errors=True)
    return complete
