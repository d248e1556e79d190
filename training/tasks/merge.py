"""The `merge` kind's child: folds a LoRA adapter into its base model and saves a standalone model.

Reads ctx.inputs (training.kinds.policy.prepare_merge: "base" and "adapter" model specs) and writes
workdir/model: safetensors weights, config.json and the tokenizer, under a temporary name renamed when complete,
so finish() never registers half a model. The base is loaded in full precision, never in 4-bit: merging into NF4
weights would round the adapter's small update away when they are quantised again. A merged model then
loads with plain `transformers.AutoModelForCausalLM.from_pretrained` and costs nothing extra per token.
"""

from __future__ import annotations

import time
from pathlib import Path

from training.runner import Context, Unrecoverable, write_folder_atomic

CHECK_TOKENS = 32
"""Length of the token sequence whose logits the merged model must reproduce (a self-check, recorded)."""


def _tokenizer_source(spec: dict) -> Path:
    """The adapter's own tokenizer when its job saved one (it may carry a chat template or pad token the policy
    was trained with), else the base's."""
    adapter = Path(spec["adapter_path"])
    return adapter if (adapter / "tokenizer_config.json").exists() else Path(spec["base_path"])


def _check_ids(tokenizer, vocab_size: int):
    import torch

    text = "The quick brown fox jumps over the lazy dog. Why is the sky blue?"
    ids = tokenizer(text, return_tensors="pt")["input_ids"][:, :CHECK_TOKENS]
    if ids.numel() == 0:
        ids = torch.arange(min(CHECK_TOKENS, vocab_size)).unsqueeze(0)
    return ids


def run(ctx: Context) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.ml.loading import load_causal_lm
    from training.tasks.generate import _ensure_checkpoint

    spec = ctx.inputs["adapter"]
    if not spec.get("adapter_path"):
        raise Unrecoverable(f"{spec['name']} is not an adapter: there is nothing to merge")
    started = time.monotonic()
    out = ctx.workdir / "model"
    _ensure_checkpoint(ctx, spec)
    ctx.progress(0, 3, f"loading {spec['name']} on its base in fp32")
    # fp32 whatever the target dtype: the update is added at full precision and rounded once, at the end.
    model = load_causal_lm(spec["base_path"], precision="fp32", adapter=spec["adapter_path"])
    tokenizer = AutoTokenizer.from_pretrained(_tokenizer_source(spec), trust_remote_code=False)
    ids = _check_ids(tokenizer, model.config.vocab_size)
    with torch.no_grad():
        before = model(input_ids=ids).logits.float()
    ctx.stop_if_asked()
    ctx.progress(1, 3, "merging")
    merged = model.merge_and_unload()
    dtype = torch.bfloat16 if ctx.config.precision == "bf16" else torch.float32
    merged = merged.to(dtype)

    def write(tmp: Path) -> None:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    write_folder_atomic(out, write)
    model = merged = None  # frees both copies of the weights before the reload
    ctx.progress(2, 3, "reloading the merged model with plain transformers")

    # The export is judged as it will be used: reloaded from disk, without peft.
    reloaded = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True, dtype=torch.float32).eval()
    with torch.no_grad():
        after = reloaded(input_ids=ids).logits.float()
    difference = float((after - before).abs().max())
    same_argmax = float((after.argmax(-1) == before.argmax(-1)).float().mean())
    ctx.log(f"merged {spec['name']}: max |logit difference| {difference:.3g}, same next token at {same_argmax:.0%}")
    ctx.progress(3, 3, "done")
    ctx.artifact("model", out, "model")
    return {
        "adapter": spec["name"],
        "base": ctx.inputs["base"]["name"],
        "precision": ctx.config.precision,
        "parameters": int(sum(p.numel() for p in reloaded.parameters())),
        "max_logit_difference": round(difference, 6),
        "same_next_token": round(same_argmax, 4),
        "seconds": round(time.monotonic() - started, 2),
    }
