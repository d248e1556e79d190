"""Exported pair rows → training pairs: ties, weights and margins from the data config, texts cut to fit.

TRL 1.16's RewardTrainer drops every pair longer than `max_length` without a word (on dialogue data at 256
tokens it dropped about a quarter of the pairs here). We truncate instead, keeping the END of each conversation —
the answer and the last turns, which carry the preference — and count how many pairs were cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from training.reward.files import text_of

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from training.train_configs import DataConfig


@dataclass(frozen=True)
class Pair:
    """One training pair: the conversation so far, the preferred and the other answer, how much it counts."""

    prompt: list[dict]
    chosen: str
    rejected: str
    weight: float = 1.0
    """Scales the pair's loss: the outcome's agreement with weighting=agreement, and half for each side of a tie."""
    margin: float = 0.0
    """The chosen score must clear the rejected one by this much (the labels' strength with data.margin)."""
    comparison_id: int | None = None
    tie: bool = False


@dataclass
class PairCounts:
    """What became of the exported rows, reported with the job's result."""

    rows: int = 0
    pairs: int = 0
    ties_excluded: int = 0
    ties_as_equal: int = 0
    truncated: int = 0
    """Pairs whose chosen or rejected text was cut at the start to fit max_length (none are dropped)."""


def prompt_messages(value) -> list[dict]:
    """The prompt of a row as chat messages (a standard-style row's prompt is a plain user turn)."""
    if isinstance(value, list):
        return [{"role": m.get("role", "user"), "content": m.get("content", "")} for m in value]
    return [{"role": "user", "content": value or ""}]


def pairs_from_rows(rows: list[dict], data: DataConfig) -> tuple[list[Pair], PairCounts]:
    """Training pairs from exported pair rows, in the export's order.

    data.max_pairs keeps the first rows; ties follow data.ties (exclude: left out; equal: the pair both ways at half
    weight each, so the loss is smallest when both answers score the same — a target of P=0.5); data.weighting
    and data.margin set each pair's weight and margin (a missing agreement counts 1, a missing strength 0)."""
    counts = PairCounts()
    if data.max_pairs:
        rows = rows[: data.max_pairs]
    pairs: list[Pair] = []
    for row in rows:
        counts.rows += 1
        weight = 1.0
        if data.weighting == "agreement" and row.get("agreement") is not None:
            weight = float(row["agreement"])
        prompt = prompt_messages(row["prompt"])
        chosen, rejected = text_of(row["chosen"]), text_of(row["rejected"])
        cid = row.get("comparison_id")
        if row.get("outcome") == "tie":
            if data.ties != "equal":
                counts.ties_excluded += 1
                continue
            counts.ties_as_equal += 1
            pairs.append(Pair(prompt, chosen, rejected, weight / 2, 0.0, cid, tie=True))
            pairs.append(Pair(prompt, rejected, chosen, weight / 2, 0.0, cid, tie=True))
            continue
        margin = float(row.get("strength") or 0.0) if data.margin else 0.0
        pairs.append(Pair(prompt, chosen, rejected, weight, margin, cid))
    counts.pairs = len(pairs)
    return pairs, counts


def chat_text(tokenizer: PreTrainedTokenizerBase, prompt: list[dict], answer: str) -> str:
    """The conversation with its answer, rendered by the model's own chat template (what the model will see)."""
    messages = prompt_messages(prompt) + [{"role": "assistant", "content": answer}]
    return tokenizer.apply_chat_template(messages, tokenize=False)


def chat_ids(tokenizer: PreTrainedTokenizerBase, prompt: list[dict], answer: str, max_length: int) -> tuple[list, bool]:
    """Token ids of the templated conversation, keeping the last `max_length` (the answer and the last turns);
    the flag says whether anything was cut. The template already holds any special tokens it wants."""
    ids = tokenizer(chat_text(tokenizer, prompt, answer), add_special_tokens=False)["input_ids"]
    if len(ids) > max_length:
        return ids[-max_length:], True
    return ids, False


def plain_text(prompt: list[dict], answer: str) -> str:
    """prompt + answer as plain text for a sentence encoder: the turns' texts, a blank line, the answer."""
    turns = "\n\n".join(m["content"] for m in prompt_messages(prompt) if m.get("content"))
    return f"{turns}\n\n{answer}" if turns else answer


def tokenize_pairs(
    pairs: list[Pair], tokenizer: PreTrainedTokenizerBase, max_length: int, *, margins: bool
) -> tuple[list[dict], int]:
    """Rows for TRL's RewardTrainer as a processed dataset (chosen_ids, rejected_ids, weight, and margin when
    `margins`), each side cut to its last `max_length` tokens; returns them with the number of pairs cut."""
    out = []
    truncated = 0
    for pair in pairs:
        chosen, cut_c = chat_ids(tokenizer, pair.prompt, pair.chosen, max_length)
        rejected, cut_r = chat_ids(tokenizer, pair.prompt, pair.rejected, max_length)
        truncated += cut_c or cut_r
        row = {"chosen_ids": chosen, "rejected_ids": rejected, "weight": pair.weight}
        if margins:
            row["margin"] = pair.margin
        out.append(row)
    return out, truncated
