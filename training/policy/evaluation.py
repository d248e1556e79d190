"""Held-out figures of a trained policy against its parent (the base, or the adapter it started from), computed on
the folder the registry keeps, not on the in-memory model.

- Perplexity of the held-out demonstrated / chosen answers, answer tokens only (the prompt is context): before
  (the parent) and after. A rise measures forgetting; for SFT a fall is the point.
- DPO: the implicit reward r = beta · (log π(y|x) − log π_ref(y|x)) of each held-out pair's answers: the share of
  pairs whose chosen answer gets the higher reward (accuracy) and the mean margin r_chosen − r_rejected.
Log-probabilities are summed over answer tokens with masks built from lengths (pad == EOS cannot hide a token).
"""

from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.policy.trainer import PolicyInputs

Sequence_ = tuple[list[int], list[int]]
"""(token ids, answer mask): 1 on the answer's tokens."""


@dataclass(frozen=True)
class Scored:
    """Sum of the answer's token log-probabilities, and how many tokens it has."""

    logp: float
    tokens: int


def sft_sequences(rows: list[dict]) -> list[Sequence_]:
    """Sequences from training.policy.data.tokenize_sft rows."""
    return [(r["input_ids"], r["completion_mask"]) for r in rows]


def preference_sequences(rows: list[dict]) -> tuple[list[Sequence_], list[Sequence_]]:
    """(chosen, rejected) sequences from training.policy.data.tokenize_preferences rows."""

    def seq(prompt, answer):
        return prompt + answer, [0] * len(prompt) + [1] * len(answer)

    return (
        [seq(r["prompt_ids"], r["chosen_ids"]) for r in rows],
        [seq(r["prompt_ids"], r["rejected_ids"]) for r in rows],
    )


def answer_logps(model, sequences: list[Sequence_], *, batch_size: int = 8, pad_id: int = 0) -> list[Scored]:
    """Each sequence's answer log-probability under `model` (no gradients; right padding, masks from lengths)."""
    import torch

    device = next(model.parameters()).device
    out: list[Scored] = []
    for start in range(0, len(sequences), batch_size):
        batch = sequences[start : start + batch_size]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        answer = torch.zeros((len(batch), width), dtype=torch.bool)
        for i, (seq, mask) in enumerate(batch):
            ids[i, : len(seq)] = torch.tensor(seq)
            attention[i, : len(seq)] = 1
            answer[i, : len(seq)] = torch.tensor(mask, dtype=torch.bool)
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=attention.to(device), use_cache=False).logits
        logps = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        targets = ids[:, 1:].to(device)
        token_logps = logps.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        scored = answer[:, 1:].to(device)
        sums = (token_logps * scored).sum(dim=1)
        counts = scored.sum(dim=1)
        out.extend(Scored(float(s), int(c)) for s, c in zip(sums.tolist(), counts.tolist(), strict=True))
        del logits, logps
    return out


def perplexity(scored: list[Scored]) -> float | None:
    """exp(mean negative log-likelihood per answer token) over all the answers; None without any."""
    tokens = sum(s.tokens for s in scored)
    if not tokens:
        return None
    return math.exp(-sum(s.logp for s in scored) / tokens)


def implicit_rewards(
    policy_chosen: list[Scored],
    policy_rejected: list[Scored],
    ref_chosen: list[Scored],
    ref_rejected: list[Scored],
    *,
    beta: float,
) -> dict:
    """DPO's implicit reward figures on held-out pairs: accuracy (share of pairs whose chosen answer's reward is the
    higher) and the mean margin; None figures without pairs."""
    margins = [
        beta * ((pc.logp - rc.logp) - (pr.logp - rr.logp))
        for pc, pr, rc, rr in zip(policy_chosen, policy_rejected, ref_chosen, ref_rejected, strict=True)
    ]
    if not margins:
        return {"pairs": 0, "accuracy": None, "margin": None}
    return {
        "pairs": len(margins),
        "accuracy": sum(m > 0 for m in margins) / len(margins),
        "margin": sum(margins) / len(margins),
    }


@contextlib.contextmanager
def parent_and_policy(
    folder: Path, inputs: PolicyInputs, *, method: str, precision: str
) -> Iterator[tuple[Callable, Callable]]:
    """Yields (with_parent, with_policy): each runs a function of a model under the parent or the trained policy.

    LoRA loads the base once: the trained adapter on it, the parent being the adapter switched off (or the
    start_from adapter loaded beside it). Full fine-tuning loads the base, then the trained model, one at a time."""
    from training.ml.loading import load_causal_lm
    from training.policy.model import load_saved_policy

    if method == "lora":
        model = load_saved_policy(folder, base_path=inputs.base_path, precision=precision)
        if inputs.start_from_path is not None:
            model.load_adapter(str(inputs.start_from_path), adapter_name="parent")

        def with_parent(fn):
            if inputs.start_from_path is None:
                with model.disable_adapter():
                    return fn(model)
            model.set_adapter("parent")
            try:
                return fn(model)
            finally:
                model.set_adapter("default")

        try:
            yield with_parent, lambda fn: fn(model)
        finally:
            del model
            gc.collect()
        return

    def load_once(load):
        def run(fn):
            model = load()
            try:
                return fn(model)
            finally:
                del model
                gc.collect()

        return run

    yield (
        load_once(lambda: load_causal_lm(inputs.base_path, precision=precision)),
        load_once(lambda: load_saved_policy(folder, precision=precision)),
    )
