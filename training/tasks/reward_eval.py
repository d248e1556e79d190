"""The `reward_eval` kind's child: registered reward models judged on this project's exported preferences.

A model trained on one project can be checked on another (imported public preference data makes a good test
set); with two or more models, `compare` shows where they part ways (e.g. one trained on children's labels and
one on adults'). Scoring is fast and has no checkpoint: a resumed attempt scores again from the start and writes
the same evaluation.json (written whole and renamed, never half).
"""

from __future__ import annotations

import json
from pathlib import Path

from training.reward.evaluation import compare, evaluate
from training.reward.files import load_annotators, load_labels, load_pairs, text_of
from training.runner import Context, Unrecoverable, write_atomic

CHUNK = 256  # texts per call to the model between progress reports and stop checks


def as_messages(prompt) -> list[dict]:
    """A prompt as chat messages: the conversational export's list as is, a text as one user turn."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return list(prompt)


def ensure_base(ctx: Context, spec: dict | None) -> str | None:
    """The base model's folder for a reward model built on one (lora/qlora, features with encoder=lm), converted
    from its GGUF once if it is the shipped SmolLM2; None when the spec names no parent."""
    if not spec:
        return None
    if spec.get("convert") == "smollm2" and not (Path(spec["base_path"]) / "config.json").exists():
        from training.ml.smollm2 import convert_smollm2

        ctx.log(f"converting SmolLM2 from its GGUF into {spec['base_path']} (once)")
        convert_smollm2(Path(spec["base_path"]))
    return spec["base_path"]


def load_model(ctx: Context, spec: dict):
    """Loads one reward model spec: its own folder is `base_path` (reward specs), the base it sits on, if any,
    is the spec's `parent` (a model spec). Features models share the data directory's embedding cache, so texts
    a training job embedded are not embedded again."""
    from training.reward.artifact import load_reward_model

    base = ensure_base(ctx, spec.get("parent"))
    try:
        return load_reward_model(
            Path(spec["base_path"]), base_path=base, cache_dir=ctx.data_dir / "cache" / "embeddings"
        )
    except (FileNotFoundError, ValueError) as exc:  # missing files, a missing base: another attempt cannot help
        raise Unrecoverable(f"reward model {spec['name']!r}: {exc}") from None


def score_texts(
    ctx: Context,
    model,
    prompts: list[list[dict]],
    texts: list[str],
    *,
    batch_size: int,
    done: int,
    total: int,
    label: str,
) -> list[float]:
    """Scores (prompt, text) pairs a chunk at a time, reporting progress; each distinct pair is scored once (the
    same answer appears in several comparisons)."""
    keys = [json.dumps([p, t], sort_keys=True) for p, t in zip(prompts, texts, strict=True)]
    unique: dict[str, int] = {}
    for i, key in enumerate(keys):
        unique.setdefault(key, i)
    order = list(unique.values())
    scores: dict[str, float] = {}
    for start in range(0, len(order), CHUNK):
        chunk = order[start : start + CHUNK]
        values = model.score([prompts[i] for i in chunk], [texts[i] for i in chunk], batch_size=batch_size)
        scores.update((keys[i], float(v)) for i, v in zip(chunk, values, strict=True))
        share = (start + len(chunk)) / len(order)  # of the texts asked for, counting duplicates once
        ctx.progress(done + round(share * len(keys)), total, f"{label}: {start + len(chunk)} of {len(order)} texts")
        ctx.stop_if_asked()
    return [scores[key] for key in keys]


def split_rows(data_dir: Path, split: str) -> list[dict]:
    return (
        load_pairs(data_dir, "test")
        if split == "test"
        else load_pairs(data_dir, "train") + load_pairs(data_dir, "test")
    )


def run(ctx: Context) -> dict:
    cfg = ctx.config
    data_dir = Path(ctx.inputs["data"])
    rows = split_rows(data_dir, cfg.split)
    if not rows:
        raise Unrecoverable(f"no preference pairs to evaluate on (split={cfg.split}); check the data filters")
    specs = ctx.inputs.get("models") or []
    if not specs:
        raise Unrecoverable("no reward models to evaluate")
    labels = load_labels(data_dir)
    annotators = load_annotators(data_dir)
    prompts = [as_messages(row["prompt"]) for row in rows]
    chosen_texts = [text_of(row["chosen"]) for row in rows]
    rejected_texts = [text_of(row["rejected"]) for row in rows]
    total = 2 * len(rows) * len(specs)
    ctx.progress(0, total, "starting")
    evaluations: dict[str, dict] = {}
    scores: dict[str, tuple[list[float], list[float]]] = {}
    for m, spec in enumerate(specs):
        name = spec["name"]
        ctx.log(f"{name}: scoring {len(rows)} pairs")
        model = load_model(ctx, spec)
        done = 2 * len(rows) * m
        # Chosen and rejected in one call: an answer that is chosen in one pair and rejected in another (or both
        # sides of a tie) is scored once.
        both = score_texts(
            ctx,
            model,
            prompts + prompts,
            chosen_texts + rejected_texts,
            batch_size=16,
            done=done,
            total=total,
            label=name,
        )
        chosen, rejected = both[: len(rows)], both[len(rows) :]
        del model  # free it before the next one loads
        scores[name] = (chosen, rejected)
        evaluations[name] = evaluate(
            rows,
            chosen,
            rejected,
            labels=labels,
            annotators=annotators,
            config=cfg.eval,
            segment_key=cfg.data.breakdown_key,
        )
        ctx.progress(done + 2 * len(rows), total, f"{name} evaluated")
    report = {
        "split": cfg.split,
        "models": evaluations,
        "comparison": compare(rows, scores) if len(specs) > 1 else None,
    }
    path = ctx.workdir / "evaluation.json"
    write_atomic(path, json.dumps(report))
    ctx.artifact("evaluation", path, "evaluation")
    return {
        name: {"accuracy": e["accuracy"], "accuracy_ci": e["accuracy_ci"], "ece": e["ece"], "n": e["n"]}
        for name, e in evaluations.items()
    }
