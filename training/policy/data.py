"""The job folder's rows → policy examples, tokenized and cut to fit.

SFT reads `data/demonstrations/{split}.jsonl` (conversational `messages`: the prompt's turns, then the
demonstration as the last assistant message) and, with data.include_chosen, the chosen answers of
`data/pairs/{split}.jsonl`; DPO reads the pairs. Only pairs with a real preference count: a tie or a "both bad"
says nothing about which answer to prefer.

We tokenize ourselves with the model's chat template and hand TRL processed rows: TRL 1.16 truncates whole
sequences (keep_start: cutting the answer; DPO's collator cuts each sequence separately) and SmolLM2's template has
no `{% generation %}` markers for assistant_only_loss. We keep the END of the prompt (the last turns) and the whole
answer; only an answer that leaves less than a quarter of max_length for the prompt is itself cut (its end goes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from training.reward.data import prompt_messages
from training.reward.files import load_pairs, text_of

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

DEMONSTRATIONS = "demonstrations"
NO_PREFERENCE = ("tie", "both_bad")
"""Pair outcomes that name no better answer (the export's others say "chosen")."""


@dataclass(frozen=True)
class Example:
    """One demonstration: the conversation so far and the answer to imitate."""

    prompt: list[dict]
    answer: str
    source: str = "demonstration"
    """demonstration, or chosen (a preference pair's chosen answer, with data.include_chosen)."""


@dataclass(frozen=True)
class Preference:
    """One DPO pair: the conversation so far, the preferred and the other answer."""

    prompt: list[dict]
    chosen: str
    rejected: str
    comparison_id: int | None = None


@dataclass
class DataCounts:
    """What became of the job folder's rows; reported in the job's result."""

    rows: int = 0
    examples: int = 0
    skipped: int = 0
    """Rows without a usable answer (no final assistant turn, or a pair without a preference: tie, both bad)."""
    truncated: int = 0
    """Examples cut to fit max_length (the prompt's start, and only when unavoidable the answer's end)."""
    by_source: dict[str, int] = field(default_factory=dict)


def load_demonstrations(data_dir: Path, split: str) -> list[dict]:
    """The exported demonstration rows of one split ("train" or "test"); none when the split has no file."""
    path = Path(data_dir) / DEMONSTRATIONS / f"{split}.jsonl"
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _demonstration(row: dict) -> Example | None:
    messages = row.get("messages") or []
    if not messages or messages[-1].get("role") != "assistant" or not messages[-1].get("content"):
        return None
    return Example(prompt_messages(messages[:-1]), messages[-1]["content"])


def sft_examples(
    data_dir: Path, split: str, *, include_chosen: bool, max_examples: int = 0
) -> tuple[list[Example], DataCounts]:
    """The SFT examples of one split: every demonstration, then (include_chosen) each pair's chosen answer, in the
    export's order; max_examples keeps the first ones (0: all)."""
    counts = DataCounts()
    examples: list[Example] = []
    for row in load_demonstrations(data_dir, split):
        counts.rows += 1
        example = _demonstration(row)
        if example is None:
            counts.skipped += 1
        else:
            examples.append(example)
    if include_chosen:
        for row in load_pairs(data_dir, split):
            counts.rows += 1
            if row.get("outcome") in NO_PREFERENCE or not text_of(row.get("chosen")):
                counts.skipped += 1
                continue
            examples.append(Example(prompt_messages(row["prompt"]), text_of(row["chosen"]), source="chosen"))
    if max_examples:
        examples = examples[:max_examples]
    counts.examples = len(examples)
    for example in examples:
        counts.by_source[example.source] = counts.by_source.get(example.source, 0) + 1
    return examples, counts


def preferences(data_dir: Path, split: str, *, max_pairs: int = 0) -> tuple[list[Preference], DataCounts]:
    """The DPO pairs of one split, in the export's order; max_pairs keeps the first ones (0: all)."""
    counts = DataCounts()
    pairs: list[Preference] = []
    for row in load_pairs(data_dir, split):
        counts.rows += 1
        chosen, rejected = text_of(row.get("chosen")), text_of(row.get("rejected"))
        if row.get("outcome") in NO_PREFERENCE or not chosen or not rejected:
            counts.skipped += 1
            continue
        pairs.append(Preference(prompt_messages(row["prompt"]), chosen, rejected, row.get("comparison_id")))
    if max_pairs:
        pairs = pairs[:max_pairs]
    counts.examples = len(pairs)
    return pairs, counts


# ---- tokens ---------------------------------------------------------------------------------------------------


def prompt_and_answer_ids(tokenizer: PreTrainedTokenizerBase, prompt: list[dict], answer: str) -> tuple[list, list]:
    """(prompt ids, answer ids) as the chat template renders the conversation: the prompt with the assistant's
    header (what the model sees at inference), the answer with its end-of-turn token (so the model learns to
    stop). Split where the two renderings diverge, like TRL does."""
    prompt_ids = tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True, return_dict=True)[
        "input_ids"
    ]
    full_ids = tokenizer.apply_chat_template(
        prompt + [{"role": "assistant", "content": answer}], tokenize=True, return_dict=True
    )["input_ids"]
    common = 0
    for a, b in zip(prompt_ids, full_ids, strict=False):
        if a != b:
            break
        common += 1
    return list(full_ids[:common]), list(full_ids[common:])


def fit(prompt_ids: list, answer_lengths: list[int], max_length: int) -> tuple[list, int, bool]:
    """Cuts prompt (from its start) and answers (from their end) so prompt + each answer fits max_length.

    Returns (prompt ids kept, tokens each answer may keep, whether anything was cut). The whole answer stays while
    it leaves at least a quarter of max_length for the prompt (or the prompt is shorter than that)."""
    longest = max(answer_lengths)
    if len(prompt_ids) + longest <= max_length:
        return prompt_ids, longest, False
    prompt_budget = max(max_length - longest, min(len(prompt_ids), max_length // 4))
    kept = prompt_ids[len(prompt_ids) - prompt_budget :] if prompt_budget else []
    return kept, max_length - len(kept), True


def tokenize_sft(
    examples: list[Example], tokenizer: PreTrainedTokenizerBase, max_length: int
) -> tuple[list[dict], int]:
    """Rows for TRL's SFTTrainer as a processed dataset: input_ids and completion_mask (1 on the answer's tokens,
    so completion_only_loss puts the loss on them alone); returns them with the number of examples cut."""
    rows, truncated = [], 0
    for example in examples:
        prompt_ids, answer_ids = prompt_and_answer_ids(tokenizer, example.prompt, example.answer)
        prompt_ids, budget, cut = fit(prompt_ids, [len(answer_ids)], max_length)
        answer_ids = answer_ids[:budget]
        truncated += cut
        rows.append(
            {"input_ids": prompt_ids + answer_ids, "completion_mask": [0] * len(prompt_ids) + [1] * len(answer_ids)}
        )
    return rows, truncated


def tokenize_preferences(
    pairs: list[Preference], tokenizer: PreTrainedTokenizerBase, max_length: int
) -> tuple[list[dict], int]:
    """Rows for TRL's DPOTrainer as a processed dataset (prompt_ids, chosen_ids, rejected_ids), the prompt shared
    and cut so that it fits with the longer answer; returns them with the number of pairs cut."""
    rows, truncated = [], 0
    for pair in pairs:
        prompt_ids, chosen_ids = prompt_and_answer_ids(tokenizer, pair.prompt, pair.chosen)
        prompt_r, rejected_ids = prompt_and_answer_ids(tokenizer, pair.prompt, pair.rejected)
        if prompt_r != prompt_ids:  # the split moved (tokens merged across the boundary): keep the shorter prompt
            shared = min(len(prompt_ids), len(prompt_r))
            chosen_ids = prompt_ids[shared:] + chosen_ids
            rejected_ids = prompt_r[shared:] + rejected_ids
            prompt_ids = prompt_ids[:shared]
        prompt_ids, budget, cut = fit(prompt_ids, [len(chosen_ids), len(rejected_ids)], max_length)
        truncated += cut
        rows.append(
            {"prompt_ids": prompt_ids, "chosen_ids": chosen_ids[:budget], "rejected_ids": rejected_ids[:budget]}
        )
    return rows, truncated
