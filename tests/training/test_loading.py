"""Loading checkpoints at each precision, with and without adapters, on tiny random models saved on the spot."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.ml.loading import load_causal_lm, load_tokenizer, parameter_count, resolve_precision

from .tiny import tiny_llama_config, tiny_tokenizer

TEXTS = [
    "What is the capital of France? Paris is the capital of France.",
    "Why is the sky blue? Sunlight scatters off the air, and blue light scatters most.",
    "I have three apples and eat one: how many are left? Two apples are left.",
]


def save_tiny_checkpoint(directory: Path, *, tie_word_embeddings: bool = False, max_shard_size: str = "50GB"):
    """Saves a random tiny Llama and its tokenizer to `directory`; returns (model, tokenizer).

    hidden_size 64 rather than tiny.py's 32: bitsandbytes on CPU repacks 4-bit weights in blocks of 64 inputs
    before an inference forward and fails on narrower layers, which real models never have.
    """
    import torch
    from transformers import LlamaForCausalLM

    tokenizer = tiny_tokenizer(TEXTS)
    config = tiny_llama_config(tokenizer, tie_word_embeddings=tie_word_embeddings)
    config.hidden_size, config.intermediate_size, config.head_dim = 64, 128, 32
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    # transformers 5 always writes safetensors.
    model.save_pretrained(directory, max_shard_size=max_shard_size)
    tokenizer.save_pretrained(directory)
    return model, tokenizer


def _logits(model, tokenizer):
    import torch

    ids = tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.inference_mode():
        return model(**ids).logits.float()


def _save_adapter(base_dir: Path, adapter_dir: Path) -> None:
    """A LoRA adapter whose B matrices are nonzero (fresh ones are zero and would change nothing)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(1)
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)
    peft_model.save_pretrained(adapter_dir)


def test_auto_precision_is_fp32_on_cpu_and_bf16_on_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_precision("auto") == "fp32"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_precision("auto") == "bf16"
    assert resolve_precision("nf4") == "nf4"


def test_unknown_precision_names_the_allowed_ones():
    with pytest.raises(ValueError, match="fp32, bf16, nf4"):
        resolve_precision("fp16")


def test_fp32_load_gives_float32_weights_in_eval_mode(tmp_path):
    import torch

    save_tiny_checkpoint(tmp_path)

    model = load_causal_lm(tmp_path, precision="fp32")

    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert not model.training


def test_bf16_load_gives_bfloat16_weights(tmp_path):
    import torch

    save_tiny_checkpoint(tmp_path)

    model = load_causal_lm(tmp_path, precision="bf16")

    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_nf4_load_on_cpu_quantises_linear_layers_and_generates(tmp_path):
    import bitsandbytes as bnb

    from training.ml.generation import SamplingSettings, generate

    save_tiny_checkpoint(tmp_path)

    model = load_causal_lm(tmp_path, precision="nf4")

    quantised = [n for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(quantised) == 2 * 7  # q, k, v, o, gate, up, down in each of the 2 layers
    assert not model.training
    answers = generate(
        model, load_tokenizer(tmp_path), [[{"role": "user", "content": "Why is the sky blue?"}]], SamplingSettings(16)
    )
    assert answers[0].new_tokens > 0


def test_pickled_checkpoint_is_refused_naming_the_directory(tmp_path):
    import torch

    model, _ = save_tiny_checkpoint(tmp_path / "safe")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    model.config.save_pretrained(pickled)
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")

    with pytest.raises(FileNotFoundError) as excinfo:
        load_causal_lm(pickled, precision="fp32")

    assert str(pickled) in str(excinfo.value)
    assert "pytorch_model.bin" in str(excinfo.value)
    with pytest.raises(FileNotFoundError, match=str(pickled)):
        parameter_count(pickled)


def test_missing_directory_is_refused_without_asking_the_hub(tmp_path):
    with pytest.raises(FileNotFoundError, match="No model directory"):
        load_causal_lm(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="No model directory"):
        load_tokenizer("HuggingFaceTB/SmolLM2-135M-Instruct")


@pytest.mark.parametrize(
    ("tied", "shard"), [(False, "50GB"), (True, "50GB"), (False, "100KB")], ids=["untied", "tied", "sharded"]
)
def test_parameter_count_matches_the_model(tmp_path, tied, shard):
    model, _ = save_tiny_checkpoint(tmp_path, tie_word_embeddings=tied, max_shard_size=shard)
    if shard == "100KB":
        assert len(list(tmp_path.glob("*.safetensors"))) > 1

    assert parameter_count(tmp_path) == sum(p.numel() for p in model.parameters())


def test_parameter_count_reads_bf16_checkpoints(tmp_path):
    import torch

    model, _ = save_tiny_checkpoint(tmp_path / "fp32")
    model.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")

    assert parameter_count(tmp_path / "bf16") == sum(p.numel() for p in model.parameters())


def test_adapter_attached_or_merged_gives_the_same_logits_and_changes_the_model(tmp_path):
    import torch

    _, tokenizer = save_tiny_checkpoint(tmp_path / "base")
    _save_adapter(tmp_path / "base", tmp_path / "adapter")

    base = _logits(load_causal_lm(tmp_path / "base", precision="fp32"), tokenizer)
    attached_model = load_causal_lm(tmp_path / "base", precision="fp32", adapter=tmp_path / "adapter")
    merged_model = load_causal_lm(tmp_path / "base", precision="fp32", adapter=tmp_path / "adapter", merge=True)
    attached, merged = _logits(attached_model, tokenizer), _logits(merged_model, tokenizer)

    assert torch.allclose(attached, merged, atol=1e-5)
    assert not torch.allclose(attached, base, atol=1e-3)
    assert not any("lora" in name for name, _ in merged_model.named_parameters())
    assert not attached_model.training and not merged_model.training


def test_trainable_adapter_trains_only_lora_weights(tmp_path):
    _save_tiny_and_adapter(tmp_path)

    model = load_causal_lm(tmp_path / "base", precision="fp32", adapter=tmp_path / "adapter", trainable=True)

    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert model.training
    assert trainable and all("lora_" in name for name in trainable)
    assert len(trainable) == 2 * 2 * 2  # A and B, for q_proj and v_proj, in 2 layers


def test_trainable_nf4_adapter_gets_gradients_in_every_layer(tmp_path):
    """The 4-bit pitfall: in eval() mode bitsandbytes on CPU would repack the weights on the first forward and
    stop gradients at the base layers, leaving the first layer's adapter untrained."""
    import torch

    _, tokenizer = _save_tiny_and_adapter(tmp_path)
    model = load_causal_lm(tmp_path / "base", precision="nf4", adapter=tmp_path / "adapter", trainable=True)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
    for _ in range(2):
        model(**batch, labels=batch["input_ids"]).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    unchanged = [n for n, p in model.named_parameters() if p.requires_grad and torch.equal(p, before[n])]
    assert not unchanged


def _save_tiny_and_adapter(tmp_path: Path):
    model, tokenizer = save_tiny_checkpoint(tmp_path / "base")
    _save_adapter(tmp_path / "base", tmp_path / "adapter")
    return model, tokenizer


def test_adapter_without_safetensors_is_refused(tmp_path):
    save_tiny_checkpoint(tmp_path / "base")
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_model.bin").write_bytes(b"not loaded")

    with pytest.raises(FileNotFoundError, match="adapter_model.safetensors"):
        load_causal_lm(tmp_path / "base", adapter=tmp_path / "adapter")


def test_merge_needs_an_adapter_and_excludes_training(tmp_path):
    with pytest.raises(ValueError, match="needs an adapter"):
        load_causal_lm(tmp_path, merge=True)
    with pytest.raises(ValueError, match="cannot be trained"):
        load_causal_lm(tmp_path, adapter=tmp_path, merge=True, trainable=True)


def test_tokenizer_pads_left_and_falls_back_to_eos_for_padding(tmp_path):
    _, tokenizer = save_tiny_checkpoint(tmp_path / "with_pad")
    tokenizer.pad_token = None
    tokenizer.save_pretrained(tmp_path / "without_pad")

    with_pad = load_tokenizer(tmp_path / "with_pad")
    without_pad = load_tokenizer(tmp_path / "without_pad")

    assert with_pad.padding_side == without_pad.padding_side == "left"
    assert with_pad.pad_token == "<pad>"
    assert without_pad.pad_token == without_pad.eos_token == "<|im_end|>"
    ids = with_pad(["Paris", "Why is the sky blue?"], padding=True)["input_ids"]
    assert ids[0][0] == with_pad.pad_token_id and ids[0][-1] != with_pad.pad_token_id
