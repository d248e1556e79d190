"""Job folders for the sft and dpo children, built by hand in the contracts' layout: demonstration rows, pair rows,
a tiny base on disk (tests.training.reward.helpers.tiny_base) and a Context whose config is an SftConfig or
DpoConfig."""

from __future__ import annotations

import json
from pathlib import Path

from tests.training.reward.helpers import polite_rows, tiny_base, write_data
from training.configs import config_build
from training.runner import Context
from training.train_configs import DpoConfig, SftConfig

__all__ = ["demo_rows", "make_context", "polite_rows", "tiny_base", "write_data", "write_demonstrations"]


def demo_rows(n: int, *, start: int = 0) -> list[dict]:
    """Demonstrations with the exporter's columns: the prompt's turns, then the written answer."""
    rows = []
    for row in polite_rows(n, start=start):
        messages = [*row["prompt"], {"role": "assistant", "content": row["chosen"][0]["content"]}]
        rows.append({"messages": messages, "demonstration_id": start + len(rows), "prompt_id": row["prompt_id"],
                     "based_on_response_id": None, "author": "annotator:0", "created_at": "2025-01-01T00:00:00"})  # fmt: skip
    return rows


def write_demonstrations(folder: Path, train: list[dict], test: list[dict]) -> Path:
    demos = folder / "demonstrations"
    demos.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", train), ("test", test)):
        (demos / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (demos / "manifest.json").write_text("{}")
    return folder


def make_context(
    tmp: Path, kind: str, config: dict, *, data: Path, base: Path, start_from: Path | None = None
) -> Context:
    """A Context for an in-process run of the kind's task (the runner builds config from the spec; here we hand
    the task its dataclass directly, because the catalog does not list the kind yet)."""
    workdir = tmp / "job"
    workdir.mkdir(parents=True, exist_ok=True)
    spec_base = {"name": "tiny", "kind": "base", "base_path": str(base), "adapter_path": None, "convert": ""}
    spec_start = None
    if start_from is not None:
        spec_start = {"name": "tiny-sft", "kind": "adapter", "base_path": str(base), "adapter_path": str(start_from),
                      "convert": ""}  # fmt: skip
    inputs = {
        "data": str(data),
        "dataset_sha256": "0" * 64,
        "base": spec_base,
        "start_from": spec_start,
        "project": "p",
    }
    (workdir / "inputs.json").write_text(json.dumps(inputs))
    spec = {"job_id": 1, "attempt": 1, "kind": "noop", "config": {}, "inputs": str(workdir / "inputs.json"),
            "workdir": str(workdir), "data_dir": str(tmp / "data")}  # fmt: skip
    events: list[dict] = []
    ctx = Context(spec, events.append)
    ctx.config = config_build({"sft": SftConfig, "dpo": DpoConfig}[kind], config)
    ctx.events = events
    return ctx
