"""The `score` kind's child: a reward model's scores for a project's responses, for texts sent to the scoring
API, and (active learning) how uncertain the model is about each unlabelled pair.

Outputs, each written whole and renamed so the database side never reads half a file:
- `scores.jsonl`: {"response_id", "score"} per response in inputs["responses"];
- `priorities.jsonl` (prioritise=gap/ensemble): {"comparison_id", "uncertainty"} per inputs["comparisons"],
  1 for a pair the model cannot call and 0 for one it is sure about;
- the result: {"items": [...]} for config.items, in their order.
Scoring is fast, so there is no checkpoint: a resumed attempt scores again and writes the same files.
"""

from __future__ import annotations

import json

import numpy as np
from scipy.special import expit

from training.runner import Context, Unrecoverable, write_atomic
from training.tasks.reward_eval import as_messages, load_model, score_texts


def gap_uncertainty(score_a: np.ndarray, score_b: np.ndarray) -> np.ndarray:
    """1 − |2·P(a beats b) − 1|: 1 when the scores are equal (a coin flip), towards 0 as one answer wins out."""
    return 1.0 - np.abs(2.0 * expit(np.asarray(score_a) - np.asarray(score_b)) - 1.0)


def ensemble_uncertainty(members_a: np.ndarray, members_b: np.ndarray) -> np.ndarray:
    """Spread of the members' P(a beats b), doubled so it shares the gap's 0–1 scale (a standard deviation of
    probabilities is at most 0.5; priorities are 1000 × uncertainty): bootstrap classifiers that disagree mark a
    pair whose label would teach the model most. Arrays are [members, pairs]."""
    return 2.0 * np.std(expit(np.asarray(members_a) - np.asarray(members_b)), axis=0)


def _ensemble_scores(model, name: str, prompts: list[list[dict]], texts: list[str], batch_size: int) -> np.ndarray:
    method = getattr(model, "score_ensemble", None)
    advice = (
        f"reward model {name!r} has no bootstrap ensemble: "
        "train it with mode=features and ensemble > 0, or use prioritise=gap"
    )
    if method is None:
        raise Unrecoverable(advice)
    try:
        members = method(prompts, texts, batch_size=batch_size)
    except (ValueError, NotImplementedError) as exc:
        raise Unrecoverable(f"{advice} ({exc})") from None
    members = None if members is None else np.asarray(members, dtype=float)
    if members is None or members.ndim != 2 or members.shape[0] < 2:
        raise Unrecoverable(advice)
    return members


def _item(prompt, item: dict) -> tuple[list[list[dict]], list[str]]:
    messages = as_messages(prompt)
    if "response" in item:
        return [messages], [item["response"]]
    return [messages, messages], [item["a"], item["b"]]


def run(ctx: Context) -> dict:
    cfg = ctx.config
    specs = ctx.inputs.get("models") or []
    if len(specs) != 1:
        raise Unrecoverable(f"score needs one reward model; the job's inputs name {len(specs)}")
    spec = specs[0]
    responses = ctx.inputs.get("responses") or []
    comparisons = (ctx.inputs.get("comparisons") or []) if cfg.prioritise != "off" else []
    texts_by_id = {r["id"]: r for r in responses}
    for comparison in comparisons:
        for side in ("a", "b"):
            if comparison[side] not in texts_by_id:
                raise Unrecoverable(
                    f"comparison {comparison['id']}: response {comparison[side]} is not among the responses to score"
                )
    item_prompts, item_texts, spans = [], [], []
    for item in cfg.items:
        prompts, texts = _item(item["prompt"], item)
        spans.append((len(item_texts), len(texts)))
        item_prompts += prompts
        item_texts += texts
    total = len(responses) + len(item_texts)
    ctx.progress(0, total, "starting")
    model = load_model(ctx, spec)
    prompts = [as_messages(r["prompt"]) for r in responses]
    texts = [r["text"] for r in responses]
    scores = score_texts(ctx, model, prompts, texts, batch_size=cfg.batch_size, done=0, total=total, label="responses")
    scores_path = ctx.workdir / "scores.jsonl"
    write_atomic(
        scores_path,
        "".join(
            json.dumps({"response_id": r["id"], "score": s}) + "\n" for r, s in zip(responses, scores, strict=True)
        ),
    )
    ctx.artifact("scores", scores_path, "scores")
    result: dict = {"model": spec["name"], "responses": len(responses)}

    if cfg.items:
        item_scores = score_texts(
            ctx,
            model,
            item_prompts,
            item_texts,
            batch_size=cfg.batch_size,
            done=len(responses),
            total=total,
            label="items",
        )
        out = []
        for start, size in spans:
            if size == 1:
                out.append({"score": item_scores[start]})
            else:
                a, b = item_scores[start], item_scores[start + 1]
                out.append({"score_a": a, "score_b": b, "p_a": float(expit(a - b))})
        result["items"] = out

    if cfg.prioritise != "off":
        index = {r["id"]: i for i, r in enumerate(responses)}
        a = np.array([index[c["a"]] for c in comparisons], dtype=int)
        b = np.array([index[c["b"]] for c in comparisons], dtype=int)
        if cfg.prioritise == "gap":
            values = np.asarray(scores, dtype=float)
            uncertainty = gap_uncertainty(values[a], values[b])
        else:
            # Only the responses that are in a pair: the members score each of them once.
            used = sorted(set(a.tolist()) | set(b.tolist()))
            members = _ensemble_scores(
                model, spec["name"], [prompts[i] for i in used], [texts[i] for i in used], cfg.batch_size
            )
            column = {i: c for c, i in enumerate(used)}
            uncertainty = ensemble_uncertainty(members[:, [column[i] for i in a]], members[:, [column[i] for i in b]])
        priorities_path = ctx.workdir / "priorities.jsonl"
        write_atomic(
            priorities_path,
            "".join(
                json.dumps({"comparison_id": c["id"], "uncertainty": float(u)}) + "\n"
                for c, u in zip(comparisons, uncertainty, strict=True)
            ),
        )
        ctx.artifact("priorities", priorities_path, "priorities")
        result["prioritised"] = len(comparisons)
        result["mean_uncertainty"] = float(uncertainty.mean()) if len(comparisons) else None
    ctx.progress(total, total, "done")
    return result
