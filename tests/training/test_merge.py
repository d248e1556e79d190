"""The `merge` child on tiny random models: the merged folder loads with plain transformers (no peft) and
greedy-generates exactly what the base with its adapter generates through peft."""

import json
from pathlib import Path

import pytest

from tests.training.checkpoints import tiny_adapter, tiny_checkpoint
from training.runner import Context, Unrecoverable
from training.tasks import merge as merge_task
from training.train_configs import MergeConfig

pytestmark = [pytest.mark.model]

PROMPTS = ["The sky is", "Two plus", "Paris is in"]


def _context(tmp_path: Path, config: MergeConfig, inputs: dict) -> tuple[Context, list[dict]]:
    """A real Context whose config is a MergeConfig (the runner builds it from the job's JSON)."""
    workdir = tmp_path / "job"
    workdir.mkdir(exist_ok=True)
    (workdir / "inputs.json").write_text(json.dumps(inputs))
    spec = {"job_id": 1, "attempt": 1, "kind": "noop", "config": {}, "inputs": str(workdir / "inputs.json"),
            "workdir": str(workdir), "data_dir": str(tmp_path)}  # fmt: skip
    events: list[dict] = []
    ctx = Context(spec, events.append)
    ctx.config = config
    return ctx, events


def _inputs(base: Path, adapter: Path) -> dict:
    base_spec = {"name": "tiny", "kind": "base", "base_path": str(base), "adapter_path": None, "convert": None}
    return {
        "base": base_spec,
        "adapter": {**base_spec, "name": "tiny-sft", "kind": "adapter", "adapter_path": str(adapter)},
        "name": "tiny-sft-merged",
    }


def _greedy(model, tokenizer) -> list[list[int]]:
    import torch

    out = []
    for text in PROMPTS:
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            generated = model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )  # fmt: skip
        out.append(generated[0, ids.shape[1] :].tolist())
    return out


@pytest.fixture
def tiny_pair(tmp_path):
    base = tiny_checkpoint(tmp_path / "base")
    return base, tiny_adapter(base, tmp_path / "adapter")


def test_merged_model_loads_without_peft_and_generates_what_the_adapter_does(tmp_path, tiny_pair):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base, adapter = tiny_pair
    ctx, events = _context(tmp_path, MergeConfig(adapter="tiny-sft"), _inputs(base, adapter))
    result = merge_task.run(ctx)

    out = ctx.workdir / "model"
    assert (out / "model.safetensors").exists() and (out / "config.json").exists()
    assert (out / "tokenizer_config.json").exists()
    assert not (out / "adapter_config.json").exists() and not list(ctx.workdir.glob(".model.tmp-*"))
    tokenizer = AutoTokenizer.from_pretrained(out)
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    assert not any("lora" in name for name, _ in merged.named_parameters())
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()
    plain_base = AutoModelForCausalLM.from_pretrained(base).eval()

    expected = _greedy(with_adapter, tokenizer)
    assert _greedy(merged, tokenizer) == expected
    assert _greedy(plain_base, tokenizer) != expected  # the adapter changes what the model says: a real test
    assert result["max_logit_difference"] < 1e-4 and result["same_next_token"] == 1.0
    assert (result["adapter"], result["base"], result["precision"]) == ("tiny-sft", "tiny", "fp32")
    assert result["parameters"] == sum(p.numel() for p in plain_base.parameters())
    assert any(e["type"] == "artifact" and e["path"] == str(out) for e in events)


def test_a_bf16_merge_saves_bf16_weights_and_a_rerun_replaces_the_folder(tmp_path, tiny_pair):
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    base, adapter = tiny_pair
    ctx, _ = _context(tmp_path, MergeConfig(adapter="tiny-sft", precision="bf16"), _inputs(base, adapter))
    (ctx.workdir / "model").mkdir()
    (ctx.workdir / "model" / "half-written.safetensors").write_text("left by a killed attempt")
    result = merge_task.run(ctx)

    out = ctx.workdir / "model"
    assert not (out / "half-written.safetensors").exists()
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}  # noqa: SIM118
    assert AutoModelForCausalLM.from_pretrained(out).dtype == torch.bfloat16
    assert result["precision"] == "bf16" and result["max_logit_difference"] < 0.5


def test_a_spec_without_an_adapter_fails_without_a_retry(tmp_path, tiny_pair):
    base, _ = tiny_pair
    inputs = _inputs(base, base)
    inputs["adapter"]["adapter_path"] = None
    ctx, _ = _context(tmp_path, MergeConfig(adapter="tiny"), inputs)
    with pytest.raises(Unrecoverable, match="not an adapter"):
        merge_task.run(ctx)
