"""The worker check: counts to `steps`, one checkpoint per step, so kills and resumes can be watched."""

from __future__ import annotations

import json
import time

from training.configs import NoopConfig
from training.runner import Context, write_atomic


def run(ctx: Context) -> dict:
    config: NoopConfig = ctx.config
    steps = config.steps
    state_file = ctx.checkpoint_dir / "state.json"
    done = json.loads(state_file.read_text())["step"] if state_file.exists() else 0
    if done:
        ctx.log(f"resuming after step {done} of {steps}")
    history = ctx.checkpoint_dir / "steps.log"
    for step in range(done + 1, steps + 1):
        if config.fail:
            raise RuntimeError("this job is set to fail (noop with fail=true)")
        time.sleep(config.step_seconds)
        # The record of which attempt ran which step lets tests prove no step ran twice.
        with open(history, "a") as f:
            f.write(f"{step} {ctx.attempt}\n")
        write_atomic(state_file, json.dumps({"step": step}))
        ctx.progress(step, steps, f"step {step} of {steps}")
        ctx.metric(step, value=float(step))
        ctx.log(f"step {step} of {steps} done")
        ctx.stop_if_asked()
    return {"steps": steps, "resumed_after": done}
