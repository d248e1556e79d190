"""The policy model: loaded for its method and precision, saved as the folder the registry keeps, reloaded.

- precision nf4: the base in 4-bit NF4 through bitsandbytes (device_map="cpu" on CPU), compute in fp32 on CPU
  and bf16 on a GPU; bf16 / fp32: the whole base at that precision (training.ml.loading.load_causal_lm).
- method lora: a fresh peft LoRA adapter on every linear layer (not the LM head), or the `start_from` adapter
  loaded trainable; method full: every weight learns.
- The model stays in train() mode: bitsandbytes on CPU repacks 4-bit weights for good after a no-grad forward in
  eval() mode, and from then on no gradient reaches the adapters (shared/README.md).
- Pad tokens: TRL 1.16's SFT and DPO collators build attention and loss masks from each row's length, never from
  `ids != pad_token_id`, so SmolLM2's pad == EOS (`<|im_end|>`) is harmless there and the tokenizer stays as
  shipped (no new token, no resized embeddings); our own evaluation builds its masks the same way.

Saved folder (`save_policy`, written under a temporary name and renamed): lora → the adapter
(adapter_config.json, adapter_model.safetensors) and the tokenizer; full → save_pretrained of the whole model and
the tokenizer; both with `juror_policy.json` {"kind", "method", "precision", "base", "start_from", ...}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.ml.hf_training import fp32_trainable, on_gpu
from training.runner import write_folder_atomic

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from training.train_configs import LoraConfig, PolicyModelConfig

MANIFEST = "juror_policy.json"
FORMAT = 1


def lora_config(lora: LoraConfig):
    """peft's LoraConfig for a causal LM: every linear layer but the LM head (peft's "all-linear"; TRL's DPO reads
    lm_head.weight directly, so an adapter there would never train)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import TaskType

    return PeftLoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules="all-linear",
    )


def load_training_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """The base's tokenizer as shipped (right padding is the collators' business); the EOS stands in as pad only
    when there is none, which the length-built masks make harmless."""
    from transformers import AutoTokenizer

    from training.ml.loading import _existing_dir

    tokenizer = AutoTokenizer.from_pretrained(_existing_dir(path), trust_remote_code=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def is_quantized(model) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return bool(getattr(base, "is_loaded_in_4bit", False) or getattr(base, "is_loaded_in_8bit", False))


def load_policy(
    model_cfg: PolicyModelConfig,
    lora: LoraConfig,
    *,
    base_path: str | Path,
    start_from: str | Path | None = None,
    seed: int = 0,
) -> tuple[Any, PreTrainedTokenizerBase, Any]:
    """(model, tokenizer, peft_config): the model to train in train() mode, and for a fresh LoRA adapter the peft
    config the trainer adds it from (peft_config=... to TRL's trainers). Handing TRL the bare base matters for DPO:
    TRL takes a model that arrives with an adapter for one trained before and keeps a frozen copy of it as the
    reference, while for an adapter it adds itself the reference is the base with the adapter switched off.
    start_from (method=lora) comes back as a trainable PeftModel and peft_config None."""
    from transformers import set_seed

    from training.ml.loading import load_causal_lm

    set_seed(seed)
    if model_cfg.method == "full" and start_from:
        raise ValueError("start_from continues an adapter: it needs method=lora")
    tokenizer = load_training_tokenizer(base_path)
    model = load_causal_lm(base_path, precision=model_cfg.precision, adapter=start_from or None, trainable=True)
    peft_config = None
    if model_cfg.method == "lora":
        if start_from:
            if is_quantized(model) and not on_gpu():
                fp32_trainable(model)
        else:
            peft_config = lora_config(lora)
    else:
        for param in model.parameters():
            param.requires_grad = True
    model.config.use_cache = False  # training: no KV cache (and no warning with gradient checkpointing)
    model.train()
    return model, tokenizer, peft_config


def save_policy(folder: Path, model, tokenizer: PreTrainedTokenizerBase, meta: dict) -> Path:
    """Writes the trained policy as one complete folder (temporary name, then renamed): the LoRA adapter alone
    (only the trained "default" one: DPO from an adapter also holds a frozen "ref" copy) or the whole model, the
    tokenizer and juror_policy.json (meta plus the format)."""

    def write(tmp: Path) -> None:
        if hasattr(model, "peft_config"):
            model.save_pretrained(str(tmp), selected_adapters=["default"], safe_serialization=True)
        else:
            model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / MANIFEST).write_text(json.dumps({"format": FORMAT, **meta}, indent=2, sort_keys=True))

    return write_folder_atomic(folder, write)


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a policy folder (no {MANIFEST})")
    return json.loads(path.read_text(encoding="utf-8"))


def load_saved_policy(folder: Path, *, base_path: str | Path | None = None, precision: str | None = None):
    """A saved policy for inference (eval() mode): the adapter on its base (base_path) or the whole model, at the
    precision it was trained in unless told otherwise."""
    from training.ml.loading import load_causal_lm

    meta = read_manifest(folder)
    precision = precision or meta.get("precision", "fp32")
    if meta["method"] == "lora":
        if base_path is None:
            raise ValueError(f"{folder} is an adapter: its base's folder is needed")
        return load_causal_lm(base_path, precision=precision, adapter=folder)
    return load_causal_lm(folder, precision=precision)
