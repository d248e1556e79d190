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


def tiny_adapter(base: Path, folder: Path) -> Path:
    """A LoRA adapter on `base` whose update is not zero, so it changes what the model says."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)  # peft starts B at zero: an untrained adapter would change nothing
    model.save_pretrained(folder)
    return folder
