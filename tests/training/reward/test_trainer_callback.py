"""JobCallback: the trainer's logs become job metrics, checkpoints count once marked complete, and SIGTERM in the
middle of training leaves a complete checkpoint that the next attempt resumes from."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from transformers import TrainerControl, TrainerState, TrainingArguments

from tests.training.reward.helpers import polite_rows, tiny_base, write_data
from training.ml.trainer_callback import MARKER, JobCallback, last_complete_checkpoint
from training.runner import EXIT_STOPPED

ROOT = Path(__file__).resolve().parents[3]


class FakeContext:
    def __init__(self):
        self.metrics, self.progressed, self.stopping = [], [], False

    def metric(self, step, **values):
        self.metrics.append((step, values))

    def progress(self, current, total, message=""):
        self.progressed.append((current, total, message))

    def log(self, message):
        pass


def test_logs_become_finite_metrics_under_the_jobs_names(tmp_path):
    ctx = FakeContext()
    state = TrainerState(global_step=4, max_steps=10)
    logs = {"loss": 0.5, "accuracy": 0.75, "margin": math.nan, "learning_rate": 1e-4, "epoch": 0.3, "x": "y"}
    JobCallback(ctx).on_log(TrainingArguments(output_dir=str(tmp_path)), state, TrainerControl(), logs=logs)
    assert ctx.metrics == [(4, {"loss": 0.5, "accuracy": 0.75, "learning_rate": 1e-4})]
    dpo = {"loss": 0.6, "rewards/accuracies": 0.5, "rewards/margins": 0.2}
    JobCallback(ctx).on_log(TrainingArguments(output_dir=str(tmp_path)), state, TrainerControl(), logs=dpo)
    assert ctx.metrics[-1] == (4, {"loss": 0.6, "accuracy": 0.5, "margin": 0.2})


def test_a_stop_request_saves_then_stops_at_the_end_of_the_step(tmp_path):
    ctx = FakeContext()
    callback, control = JobCallback(ctx), TrainerControl()
    args, state = TrainingArguments(output_dir=str(tmp_path)), TrainerState(global_step=3, max_steps=10)
    callback.on_step_end(args, state, control)
    assert not control.should_save and ctx.progressed == [(3, 10, "step 3/10")]
    ctx.stopping = True
    callback.on_step_end(args, state, control)
    assert control.should_save and control.should_training_stop


def test_only_marked_checkpoints_count_and_older_ones_go_once_the_new_one_is_marked(tmp_path):
    for step in (2, 4, 6):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-2" / MARKER).write_text("{}")
    args = TrainingArguments(output_dir=str(tmp_path))
    JobCallback(FakeContext()).on_save(args, TrainerState(global_step=4), TrainerControl())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4"]  # 2 (superseded) and 6 gone
    assert json.loads((tmp_path / "checkpoint-4" / MARKER).read_text()) == {"step": 4}
    (tmp_path / "checkpoint-8").mkdir()  # half-written: the process died while the trainer wrote it
    (tmp_path / "checkpoint-8" / "model.safetensors").write_bytes(b"half")
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-4"
    assert not (tmp_path / "checkpoint-8").exists()
    assert last_complete_checkpoint(tmp_path / "none") is None


def _start(tmp_path: Path, name: str, config: dict, data: Path, base: Path) -> tuple[subprocess.Popen, Path]:
    """The reward kind's child as the worker starts it: `python -m training.runner SPEC.json`, events to a file."""
    workdir = tmp_path / "job"
    workdir.mkdir(exist_ok=True)
    spec_base = {"name": "tiny", "kind": "base", "base_path": str(base), "adapter_path": None, "convert": ""}
    inputs = workdir / "inputs.json"
    inputs.write_text(json.dumps({"data": str(data), "dataset_sha256": "0" * 64, "base": spec_base, "project": "p"}))
    spec = tmp_path / f"{name}.json"
    spec.write_text(json.dumps({"job_id": 1, "attempt": 1, "kind": "reward", "config": config, "inputs": str(inputs),
                                "workdir": str(workdir), "data_dir": str(tmp_path / "data")}))  # fmt: skip
    events = tmp_path / f"{name}.jsonl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "JUROR_EVENTS_FILE": str(events)}
    for inherited in ("JUROR_EVENTS_FD", "JUROR_WORKER_PID"):
        env.pop(inherited, None)
    proc = subprocess.Popen([sys.executable, "-m", "training.runner", str(spec)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    return proc, events


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.model
@pytest.mark.slow
def test_sigterm_mid_training_stops_at_a_complete_checkpoint_and_the_rerun_resumes_from_it(tmp_path):
    base = tiny_base(tmp_path / "base")
    data = write_data(tmp_path / "jobdata", polite_rows(32), polite_rows(8, seed=1, start=100))
    config = {"mode": "full", "trainer": {"max_steps": 150, "batch_size": 2, "save_steps": 1000},
              "eval": {"bootstrap": 20}, "model": {"max_length": 64}}  # fmt: skip
    proc, events = _start(tmp_path, "first", config, data, base)
    deadline = time.monotonic() + 120
    while not any(e["type"] == "progress" and e["current"] >= 5 for e in _events(events)):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() else "slow"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_STOPPED, out
    checkpoints = tmp_path / "job" / "checkpoint"
    stopped = last_complete_checkpoint(checkpoints, discard_incomplete=False)
    step = int(stopped.name.split("-")[1])
    assert 5 <= step < 150  # saved where it stopped, not at save_steps
    assert not (tmp_path / "job" / "model").exists()

    half = checkpoints / "checkpoint-999"  # a later checkpoint whose writing was cut short
    half.mkdir()
    (half / "trainer_state.json").write_text('{"global_step": 999}')
    proc, events = _start(tmp_path, "second", config, data, base)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    seen = _events(events)
    result = next(e["result"] for e in seen if e["type"] == "result")
    assert result["resumed_from_step"] == step and result["steps"] == 150
    metric_steps = [e["step"] for e in seen if e["type"] == "metric"]
    assert metric_steps[0] == step + 1  # global_step continued, not from 0
    assert not half.exists()
    assert (tmp_path / "job" / "model" / "juror_reward.json").exists()
