"""Batched sampling from a chat model: conversations in, decoded answers out, one batch at a time.

Each batch is seeded on its own (settings.seed + batch index), so a run that stopped after some batches and is
resumed with `skip_batches` produces the very texts an uninterrupted run would have, on the same machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass(frozen=True)
class SamplingSettings:
    """How answers are sampled; stored with every generated answer so it can be reproduced."""

    max_new_tokens: int = 128
    """Upper bound on generated tokens per answer (the EOS included)."""
    temperature: float = 0.7
    """Softmax temperature; 0 means greedy decoding (deterministic, top_p unused)."""
    top_p: float = 0.95
    """Nucleus sampling: keep the smallest set of tokens whose probabilities add up to top_p. No top-k cut is
    applied (transformers would otherwise add top_k=50 on its own)."""
    seed: int = 0
    """Batch i is sampled after torch.manual_seed(seed + i)."""

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError("SamplingSettings.max_new_tokens must be at least 1")
        if self.temperature < 0:
            raise ValueError("SamplingSettings.temperature must be 0 (greedy) or positive")
        if not 0 < self.top_p <= 1:
            raise ValueError("SamplingSettings.top_p must be in (0, 1]")
        if self.seed < 0:
            raise ValueError("SamplingSettings.seed must not be negative")


@dataclass
class Generated:
    """One answer and how many tokens the model produced for it."""

    text: str
    """The decoded answer, special tokens removed and surrounding whitespace stripped."""
    new_tokens: int
    """Generated tokens up to and including the first EOS; padding after it is not counted."""


def generate_batches(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: list[list[dict]],
    settings: SamplingSettings,
    *,
    batch_size: int = 8,
    skip_batches: int = 0,
) -> Iterator[list[Generated]]:
    """Yields the answers to `conversations`, one list per batch and in order, so the caller can save each batch
    before the next one starts.

    `skip_batches` resumes a run: the first batches are skipped without generating, and the rest get the seeds
    they would have had (pass the same conversations, settings and batch_size). The model is used in the mode it
    is in: switching a 4-bit model that is being trained to eval() would freeze its base layers on CPU.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if skip_batches < 0:
        raise ValueError("skip_batches must not be negative")
    if tokenizer.pad_token_id is None:
        raise ValueError("The tokenizer has no pad token, so batches cannot be padded: load it with load_tokenizer")
    # Validated at the call: a generator function would only raise on its first next().
    return _batches(model, tokenizer, conversations, settings, batch_size, skip_batches)


def _batches(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: list[list[dict]],
    settings: SamplingSettings,
    batch_size: int,
    skip_batches: int,
) -> Iterator[list[Generated]]:
    import torch

    eos_ids = _eos_ids(model, tokenizer)
    config = _generation_config(model, tokenizer, settings, eos_ids)
    for index in range(skip_batches, -(-len(conversations) // batch_size)):
        batch = conversations[index * batch_size : (index + 1) * batch_size]
        texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in batch]
        # The chat template already wrote the special tokens; padding_side here leaves the tokenizer as it was.
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False, padding_side="left")
        input_ids = encoded["input_ids"].to(model.device)
        # The tokenizer's own mask: SmolLM2 pads with its EOS, which also ends every turn inside the prompt, so
        # a mask rebuilt from `input_ids != pad_token_id` would hide those real tokens.
        attention_mask = encoded["attention_mask"].to(model.device)
        torch.manual_seed(settings.seed + index)
        with torch.inference_mode():
            output = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config)
        new = output[:, input_ids.shape[1] :].cpu()
        yield [_decode(row, tokenizer, eos_ids) for row in new]


def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: list[list[dict]],
    settings: SamplingSettings,
    batch_size: int = 8,
) -> list[Generated]:
    """All answers at once, in the order of `conversations`; use generate_batches to checkpoint along the way."""
    return [
        g for batch in generate_batches(model, tokenizer, conversations, settings, batch_size=batch_size) for g in batch
    ]


def _eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Every id that ends an answer: the model's generation config may list several (e.g. <|endoftext|> too)."""
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = [configured] if isinstance(configured, int) else list(configured or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("Neither the model nor the tokenizer defines an EOS token, so answers would never end")
    return ids


def _generation_config(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, settings: SamplingSettings, eos_ids: list[int]
) -> Any:
    """An explicit GenerationConfig: the sampling controls come from `settings`, never from defaults that a
    checkpoint's generation_config.json (or transformers' top_k=50) would otherwise slip in."""
    from transformers import GenerationConfig

    sampling = settings.temperature > 0
    return GenerationConfig(
        max_new_tokens=settings.max_new_tokens,
        do_sample=sampling,
        temperature=settings.temperature if sampling else 1.0,
        top_p=settings.top_p if sampling else 1.0,
        top_k=0 if sampling else None,
        repetition_penalty=1.0,
        num_beams=1,
        eos_token_id=eos_ids,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=model.generation_config.bos_token_id,
    )


def _decode(row: torch.Tensor, tokenizer: PreTrainedTokenizerBase, eos_ids: list[int]) -> Generated:
    tokens = row.tolist()
    end = next((i + 1 for i, token in enumerate(tokens) if token in eos_ids), len(tokens))
    # Decoding stops at the EOS as well: a pad token that is not a special token would otherwise show up.
    return Generated(text=tokenizer.decode(tokens[:end], skip_special_tokens=True).strip(), new_tokens=end)
