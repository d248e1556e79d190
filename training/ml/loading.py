"""Loads causal language models and their tokenizers from local checkpoint directories, at a chosen precision.

Every load reads safetensors only: a pickled checkpoint (`pytorch_model.bin`) can run code when it is read, so a
directory without `*.safetensors` is refused before transformers sees it, and remote code is never trusted.
torch, transformers and peft are imported inside the functions so that importing this module stays cheap.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

PRECISIONS = ("auto", "fp32", "bf16", "nf4")
"""auto: bf16 on a GPU, fp32 on CPU; nf4: 4-bit NormalFloat weights (QLoRA's), via bitsandbytes."""

ADAPTER_WEIGHTS = "adapter_model.safetensors"


def resolve_precision(precision: str) -> str:
    """Turns "auto" into the precision this machine runs fastest: bf16 on a GPU, fp32 on CPU, where bf16 is
    emulated and slower than fp32. Explicit precisions pass through unchanged."""
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    import torch

    return "bf16" if torch.cuda.is_available() else "fp32"


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """The checkpoint's tokenizer, set up for batched generation: padding on the left, so every prompt ends where
    generation starts, and a pad token (the EOS when the tokenizer has none, as many chat models do)."""
    from transformers import AutoTokenizer

    directory = _existing_dir(path)
    tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=False)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    path: str | Path,
    *,
    precision: str = "auto",
    adapter: str | Path | None = None,
    merge: bool = False,
    trainable: bool = False,
) -> PreTrainedModel:
    """Loads the causal LM in `path` at `precision`, optionally with a LoRA adapter attached or merged.

    merge=True folds the adapter into the base weights (no extra cost per token); on nf4 the merged weights are
    quantised again, so outputs shift slightly. The model comes back in eval() mode for inference, or in train()
    mode with trainable=True: bitsandbytes on CPU repacks 4-bit weights for good after a no-grad forward in
    eval() mode, and from then on no gradient flows through them (shared/README.md).
    """
    if merge and adapter is None:
        raise ValueError("merge=True needs an adapter to merge")
    if merge and trainable:
        raise ValueError("A merged adapter cannot be trained: load it with merge=False to keep training it")
    precision = resolve_precision(precision)
    directory = _checkpoint_dir(path)
    adapter_dir = _adapter_dir(adapter) if adapter is not None else None

    import torch
    from transformers import AutoModelForCausalLM

    on_gpu = torch.cuda.is_available()
    kwargs: dict[str, Any] = {
        "use_safetensors": True,
        "trust_remote_code": False,
        # One device only: a single GPU, or the CPU.
        "device_map": {"": 0} if on_gpu else "cpu",
    }
    if precision == "fp32":
        kwargs["dtype"] = torch.float32
    elif precision == "bf16":
        kwargs["dtype"] = torch.bfloat16
    else:
        from transformers import BitsAndBytesConfig

        compute_dtype = torch.bfloat16 if on_gpu else torch.float32
        kwargs["dtype"] = compute_dtype  # norms and embeddings, which stay unquantised
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    model = AutoModelForCausalLM.from_pretrained(directory, **kwargs)

    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=trainable)
        if merge:
            model = model.merge_and_unload()
    return model.train() if trainable else model.eval()


def parameter_count(path: str | Path) -> int:
    """Number of parameters in the checkpoint, read from the safetensors headers without loading any weight,
    so a job page can show a model's size instantly. Covers sharded checkpoints (every `*.safetensors` in the
    directory); tied weights are stored, and counted, once."""
    from safetensors import safe_open

    total = 0
    for file in sorted(_checkpoint_dir(path).glob("*.safetensors")):
        with safe_open(file, framework="np") as f:
            # safe_open is not a mapping: iterating it directly fails.
            total += sum(math.prod(f.get_slice(name).get_shape()) for name in f.keys())  # noqa: SIM118
    return total


def _existing_dir(path: str | Path) -> Path:
    directory = Path(path)
    if not directory.is_dir():
        # Without this, transformers would take the path for a Hub model id and try the network.
        raise FileNotFoundError(f"No model directory at {directory}")
    return directory


def _checkpoint_dir(path: str | Path) -> Path:
    directory = _existing_dir(path)
    if not any(directory.glob("*.safetensors")):
        found = sorted(p.name for p in directory.iterdir() if p.suffix in {".bin", ".pt", ".pth", ".ckpt"})
        also = f" (it has {', '.join(found)}: pickled weights are never loaded)" if found else ""
        raise FileNotFoundError(
            f"{directory} has no *.safetensors weights{also}; save the model with safe_serialization=True"
        )
    return directory


def _adapter_dir(path: str | Path) -> Path:
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"No adapter directory at {directory}")
    if not (directory / ADAPTER_WEIGHTS).is_file():
        # peft would fall back to adapter_model.bin, a pickle.
        raise FileNotFoundError(
            f"{directory} has no {ADAPTER_WEIGHTS}; only safetensors adapters are loaded (pickled weights never are)"
        )
    return directory
