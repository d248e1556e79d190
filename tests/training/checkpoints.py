"""Tiny random checkpoints on disk, as a user's local Hugging Face folder would look."""

from __future__ import annotations

from pathlib import Path

from tests.training.tiny import tiny_llama_config, tiny_tokenizer

TEXTS = ["The sky is blue because of Rayleigh scattering.", "Two plus two is four.", "Paris is in France."] * 20


def tiny_checkpoint(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer(TEXTS)
    model = LlamaForCausalLM(tiny_llama_config(tokenizer))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
