"""Job folders for the reward task, built by hand: exported pair rows (the contracts' layout), a tiny base model,
and a Context whose config is a RewardConfig."""

from __future__ import annotations

import json
import random
from pathlib import Path

from training.configs import config_build
from training.runner import Context
from training.train_configs import RewardConfig

POLITE = ["Sure, happy to help: {a}. Thank you for asking!", "Of course! {a}. I hope this helps, kind regards."]
RUDE = ["{a}. Whatever.", "Obviously {a}. Stop asking."]
TOPICS = [
    ("What colour is the sky?", "it is blue"),
    ("What is two plus two?", "it is four"),
    ("Where is Paris?", "it is in France"),
    ("How many legs has a cat?", "a cat has four legs"),
    ("What is water made of?", "hydrogen and oxygen"),
    ("Who wrote Hamlet?", "Shakespeare wrote it"),
    ("What is the capital of Italy?", "Rome is"),
    ("How hot is boiling water?", "about 100 degrees Celsius"),
]


def pair_row(cid: int, prompt: str, chosen: str, rejected: str, **extra) -> dict:
    row = {
        "prompt": [{"role": "user", "content": prompt}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        "comparison_id": cid,
        "prompt_id": 1000 + cid,
        "chosen_model": "m1",
        "rejected_model": "m2",
        "num_labels": 1,
        "agreement": 1.0,
        "strength": None,
        "outcome": "a",
    }
    row.update(extra)
    return row


def polite_rows(n: int, *, seed: int = 0, start: int = 0) -> list[dict]:
    """A preference with a known rule: the polite answer beats the rude one (the facts are the same)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        prompt, answer = rng.choice(TOPICS)
        prompt = f"{prompt} (question {start + i})"
        chosen = rng.choice(POLITE).format(a=answer)
        rejected = rng.choice(RUDE).format(a=answer)
        rows.append(pair_row(start + i, prompt, chosen, rejected, outcome=rng.choice(["a", "b"])))
    return rows


def write_data(folder: Path, train: list[dict], test: list[dict]) -> Path:
    pairs = folder / "pairs"
    pairs.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", train), ("test", test)):
        (pairs / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (pairs / "manifest.json").write_text("{}")
    return folder


def make_context(tmp: Path, config: RewardConfig | dict, *, data: Path, base: Path | None = None) -> Context:
    workdir = tmp / "job"
    workdir.mkdir(parents=True, exist_ok=True)
    spec_base = None
    if base is not None:
        spec_base = {"name": "tiny", "kind": "base", "base_path": str(base), "adapter_path": None, "convert": ""}
    inputs = {"data": str(data), "dataset_sha256": "0" * 64, "base": spec_base, "project": "p"}
    (workdir / "inputs.json").write_text(json.dumps(inputs))
    spec = {"job_id": 1, "attempt": 1, "kind": "noop", "config": {}, "inputs": str(workdir / "inputs.json"),
            "workdir": str(workdir), "data_dir": str(tmp / "data")}  # fmt: skip
    events: list[dict] = []
    ctx = Context(spec, events.append)
    # In-process tests hand the task a config object directly (the runner builds it from the spec).
    ctx.config = config if isinstance(config, RewardConfig) else config_build(RewardConfig, config)
    ctx.events = events
    return ctx


TEXTS = [p + " " + a for p, a in TOPICS] + [s.format(a="it is blue") for s in POLITE + RUDE]


def tiny_base(folder: Path, *, pad_is_eos: bool = False, seed: int = 0) -> Path:
    """A random tiny Llama and its chat tokenizer on disk. hidden_size 64: bitsandbytes on CPU repacks 4-bit
    weights in blocks of 64 inputs and fails on narrower layers. pad_is_eos: the tokenizer pads with its EOS, as
    SmolLM2's does."""
    import torch
    from transformers import LlamaForCausalLM

    from tests.training.tiny import tiny_llama_config, tiny_tokenizer

    tokenizer = tiny_tokenizer(TEXTS * 5)
    config = tiny_llama_config(tokenizer)
    config.hidden_size, config.intermediate_size, config.head_dim = 64, 128, 32
    if pad_is_eos:
        tokenizer.pad_token = tokenizer.eos_token
        config.pad_token_id = tokenizer.eos_token_id
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
