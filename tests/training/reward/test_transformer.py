"""Transformer reward models on a tiny random Llama: every mode trains, saves and reloads to the same scores; the
LoRA score-head, QLoRA bf16 and pad==EOS pitfalls each have a test."""

import json
import shutil

import pytest
import torch

from tests.training.reward.helpers import polite_rows, tiny_base
from training.reward.artifact import load_reward_model, save_transformer, score_with
from training.reward.data import pairs_from_rows, prompt_messages, tokenize_pairs
from training.reward.files import text_of
from training.reward.transformer import build_model, ensure_distinct_pad, train_transformer
from training.train_configs import DataConfig, RewardConfig, TrainerConfig

pytestmark = pytest.mark.model

ROWS = polite_rows(12)
PROMPTS = [prompt_messages(r["prompt"]) for r in ROWS]
ANSWERS = [text_of(r["chosen"]) for r in ROWS]


def _config(mode: str, **trainer) -> RewardConfig:
    settings = {"max_steps": 3, "batch_size": 4, "save_steps": 100, **trainer}
    return RewardConfig(mode=mode, trainer=TrainerConfig(**settings))


def _train(tmp_path, mode: str, **trainer):
    base = tiny_base(tmp_path / "base")
    cfg = _config(mode, **trainer)
    model, tokenizer = build_model(cfg, base)
    rows, _ = tokenize_pairs(pairs_from_rows(ROWS, DataConfig())[0], tokenizer, 64, margins=False)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    outcome = train_transformer(cfg, base_path=base, rows=rows, output_dir=tmp_path / "ckpt", built=(model, tokenizer))
    return base, cfg, outcome, before


def _changed(model, before) -> set[str]:
    return {n for n, p in model.named_parameters() if not torch.equal(p.detach().float(), before[n].float())}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["head", "full", "lora", "qlora"])
def test_each_mode_trains_and_its_saved_artifact_scores_identically(tmp_path, mode):
    base, cfg, outcome, before = _train(tmp_path, mode)
    assert outcome.steps == 3
    changed = _changed(outcome.model, before)
    if mode == "head":
        assert changed == {"score.weight"}  # the body is frozen
    elif mode == "full":
        assert any("layers.0" in n for n in changed) and "score.weight" in changed
    else:
        assert any("lora_A" in n for n in changed) or any("lora_B" in n for n in changed)
        assert any("score" in n and "modules_to_save" in n for n in changed)
    scores = score_with(outcome.model, outcome.tokenizer, PROMPTS, ANSWERS, 64)
    folder = save_transformer(
        tmp_path / "model", outcome.model, outcome.tokenizer, mode=mode, base="tiny", max_length=64
    )
    assert json.loads((folder / "juror_reward.json").read_text())["mode"] == mode
    reloaded = load_reward_model(folder, base_path=base)
    assert reloaded.score(PROMPTS, ANSWERS, batch_size=5) == pytest.approx(scores, abs=1e-5)
    assert len(set(round(s, 6) for s in scores)) > 1  # real, varying scores


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["qlora", "full"])
def test_gradient_checkpointing_still_trains_every_weight_it_should(tmp_path, mode):
    _, _, outcome, before = _train(tmp_path, mode, gradient_checkpointing=True)
    body = outcome.model.get_base_model() if mode == "qlora" else outcome.model
    assert body.is_gradient_checkpointing
    changed = _changed(outcome.model, before)
    if mode == "full":
        assert any("layers.0" in n for n in changed)  # gradients reach the first layer through the recomputation
    else:
        lora_a = {n for n, _ in outcome.model.named_parameters() if "lora_A" in n and "layers.0." in n}
        assert lora_a and lora_a <= changed


@pytest.mark.slow
def test_lora_reload_brings_back_the_trained_score_head_a_naive_reload_does_not(tmp_path):
    base, cfg, outcome, _ = _train(tmp_path, "lora", learning_rate=1e-2)
    trained = score_with(outcome.model, outcome.tokenizer, PROMPTS, ANSWERS, 64)
    folder = save_transformer(
        tmp_path / "model", outcome.model, outcome.tokenizer, mode="lora", base="tiny", max_length=64
    )
    assert load_reward_model(folder, base_path=base).score(PROMPTS, ANSWERS) == pytest.approx(trained, abs=1e-5)

    # The pitfall: an adapter saved without the score head (no modules_to_save) reloads onto a fresh random head.
    from peft import PeftModel
    from safetensors.torch import load_file, save_file

    naive = tmp_path / "naive"
    shutil.copytree(folder, naive)
    weights = load_file(naive / "adapter_model.safetensors")
    save_file({k: v for k, v in weights.items() if "score" not in k}, naive / "adapter_model.safetensors")
    config = json.loads((naive / "adapter_config.json").read_text())
    config["modules_to_save"], config["task_type"] = None, "FEATURE_EXTRACTION"
    (naive / "adapter_config.json").write_text(json.dumps(config))
    from training.reward.transformer import load_classifier

    torch.manual_seed(123)
    model = PeftModel.from_pretrained(load_classifier(base, outcome.tokenizer, quantized=False), naive).eval()
    assert score_with(model, outcome.tokenizer, PROMPTS, ANSWERS, 64) != pytest.approx(trained, abs=1e-3)


@pytest.mark.slow
def test_qlora_trains_in_fp32_on_cpu_where_trls_bf16_cast_would_crash(tmp_path):
    base, cfg, outcome, before = _train(tmp_path, "qlora")
    trainable = [(n, p) for n, p in outcome.model.named_parameters() if p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 for _, p in trainable)
    assert {n for n, _ in trainable if "lora_" in n} <= _changed(outcome.model, before)  # every adapter learned

    # Without our cast back, TRL's RewardTrainer leaves the adapters in bf16 and the fp32 CPU forward fails.
    from datasets import Dataset
    from trl import RewardTrainer

    from training.reward.transformer import training_args

    model, tokenizer = build_model(cfg, base)
    rows, _ = tokenize_pairs(pairs_from_rows(ROWS, DataConfig())[0], tokenizer, 64, margins=False)
    plain = RewardTrainer(
        model=model,
        args=training_args(cfg, tmp_path / "plain"),
        train_dataset=Dataset.from_list([{k: r[k] for k in ("chosen_ids", "rejected_ids")} for r in rows]),
        processing_class=tokenizer,
    )
    assert any(p.dtype == torch.bfloat16 for p in plain.model.parameters() if p.requires_grad)
    with pytest.raises(RuntimeError):
        plain.train()


def test_a_tokenizer_that_pads_with_eos_gets_an_unused_existing_token_as_pad(tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base(tmp_path / "base", pad_is_eos=True))
    assert tokenizer.pad_token == tokenizer.eos_token
    size = len(tokenizer)
    assert ensure_distinct_pad(tokenizer) is False  # <pad> exists and no template emits it: no new token
    assert tokenizer.pad_token == "<pad>" and len(tokenizer) == size


@pytest.mark.slow
def test_a_new_pad_token_resizes_the_model_and_a_lora_model_still_reloads_identically(tmp_path, monkeypatch):
    monkeypatch.setattr("training.reward.transformer.PAD_CANDIDATES", ())
    base = tiny_base(tmp_path / "base", pad_is_eos=True)
    cfg = _config("lora")
    model, tokenizer = build_model(cfg, base)
    assert tokenizer.pad_token == "<|pad|>" and tokenizer.pad_token_id == len(tokenizer) - 1
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    assert model.config.pad_token_id == tokenizer.pad_token_id
    rows, _ = tokenize_pairs(pairs_from_rows(ROWS, DataConfig())[0], tokenizer, 64, margins=False)
    outcome = train_transformer(cfg, base_path=base, rows=rows, output_dir=tmp_path / "ckpt", built=(model, tokenizer))
    scores = score_with(outcome.model, tokenizer, PROMPTS, ANSWERS, 64)
    folder = save_transformer(tmp_path / "model", outcome.model, tokenizer, mode="lora", base="tiny", max_length=64)
    assert load_reward_model(folder, base_path=base).score(PROMPTS, ANSWERS) == pytest.approx(scores, abs=1e-5)


@pytest.mark.slow
def test_the_score_is_read_at_the_last_real_token_even_when_the_text_ends_with_eos(tmp_path):
    """A template that ends a turn with EOS (no newline after it): with pad == EOS the classifier would read the
    score one token early (it looks for the last token that is not pad)."""
    from transformers import AutoTokenizer

    base = tiny_base(tmp_path / "base", pad_is_eos=True)
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.chat_template = tokenizer.chat_template.replace("<|im_end|>\n", "<|im_end|>")
    tokenizer.save_pretrained(base)
    model, tokenizer = build_model(_config("full"), base)
    model.eval()
    ids = tokenizer(tokenizer.apply_chat_template(PROMPTS[0] + [{"role": "assistant", "content": "Yes."}],
                                                  tokenize=False), add_special_tokens=False)["input_ids"]  # fmt: skip
    assert ids[-1] == tokenizer.eos_token_id
    with torch.no_grad():
        hidden = model.model(input_ids=torch.tensor([ids])).last_hidden_state
        by_hand = model.score(hidden[0, -1]).item()
    got = score_with(model, tokenizer, [PROMPTS[0], PROMPTS[1]], ["Yes.", ANSWERS[1] * 3], 64, batch_size=2)
    assert got[0] == pytest.approx(by_hand, abs=1e-5)
    model.config.pad_token_id = tokenizer.eos_token_id  # what pad == EOS would do
    tokenizer.pad_token = tokenizer.eos_token
    naive = score_with(model, tokenizer, [PROMPTS[0], PROMPTS[1]], ["Yes.", ANSWERS[1] * 3], 64, batch_size=2)
    assert naive[0] != pytest.approx(by_hand, abs=1e-4)
