"""Batched sampling through the chat template, on a tiny random model and (once) on SmolLM2."""

from __future__ import annotations

import pytest

from training.ml.generation import Generated, SamplingSettings, generate, generate_batches
from training.ml.loading import load_causal_lm, load_tokenizer

from .test_loading import save_tiny_checkpoint

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Why is the sky blue?"}],
    [
        {"role": "user", "content": "I have three apples."},
        {"role": "assistant", "content": "Three apples."},
        {"role": "user", "content": "I eat one: how many are left?"},
    ],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Paris?"}],
    [{"role": "user", "content": "Sky?"}],
]
SAMPLED = SamplingSettings(max_new_tokens=12, temperature=1.0, top_p=1.0, seed=3)


@pytest.fixture
def tiny(tmp_path):
    """The tiny model and tokenizer as a job loads them."""
    save_tiny_checkpoint(tmp_path)
    return load_causal_lm(tmp_path, precision="fp32"), load_tokenizer(tmp_path)


def _texts(answers: list[Generated]) -> list[str]:
    return [a.text for a in answers]


def test_batches_keep_the_order_of_the_conversations(tiny):
    import torch

    model, tokenizer = tiny
    greedy = SamplingSettings(max_new_tokens=8, temperature=0)

    batches = list(generate_batches(model, tokenizer, CONVERSATIONS, greedy, batch_size=2))

    assert [len(b) for b in batches] == [2, 2, 1]
    answers = [a for b in batches for a in b]
    for conversation, answer in zip(CONVERSATIONS, answers, strict=True):
        # Each conversation alone, straight through transformers: batching and padding change nothing.
        prompt = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        new = out[0, ids["input_ids"].shape[1] :]
        assert answer.text == tokenizer.decode(new, skip_special_tokens=True).strip()
        assert answer.new_tokens == len(new)


def test_same_seed_gives_the_same_texts_and_another_seed_other_texts(tiny):
    model, tokenizer = tiny
    first = generate(model, tokenizer, CONVERSATIONS, SAMPLED, batch_size=2)
    again = generate(model, tokenizer, CONVERSATIONS, SAMPLED, batch_size=2)
    reseeded = generate(model, tokenizer, CONVERSATIONS, SamplingSettings(12, 1.0, 1.0, seed=4), batch_size=2)

    assert _texts(first) == _texts(again)
    # Five answers of up to 12 tokens drawn from ~400 nearly equally likely ones cannot all repeat by chance.
    assert _texts(first) != _texts(reseeded)


def test_a_resumed_run_reproduces_the_batches_it_had_not_saved(tiny):
    model, tokenizer = tiny
    full = list(generate_batches(model, tokenizer, CONVERSATIONS, SAMPLED, batch_size=2))

    resumed = list(generate_batches(model, tokenizer, CONVERSATIONS, SAMPLED, batch_size=2, skip_batches=1))

    assert [_texts(b) for b in resumed] == [_texts(b) for b in full[1:]]


def test_temperature_zero_is_greedy_whatever_the_seed(tiny):
    model, tokenizer = tiny
    greedy = [SamplingSettings(max_new_tokens=10, temperature=0, seed=s) for s in (0, 1)]

    assert _texts(generate(model, tokenizer, CONVERSATIONS, greedy[0])) == _texts(
        generate(model, tokenizer, CONVERSATIONS, greedy[1])
    )


def test_new_tokens_never_exceed_max_new_tokens(tiny):
    model, tokenizer = tiny

    answers = generate(model, tokenizer, CONVERSATIONS * 3, SamplingSettings(max_new_tokens=5, temperature=1.0))

    assert len(answers) == 15
    assert all(1 <= a.new_tokens <= 5 for a in answers)


def test_eos_used_as_padding_ends_answers_but_stays_visible_in_prompts(tiny, monkeypatch):
    """SmolLM2 pads with its EOS, which also closes every turn of the prompt."""
    import torch

    model, tokenizer = tiny
    tokenizer.pad_token = tokenizer.eos_token
    eos = tokenizer.eos_token_id
    words = tokenizer(" Paris is the capital", add_special_tokens=False)["input_ids"][:3]
    scripted = torch.tensor([[*words[:2], eos, eos, eos], [words[2], eos, eos, eos, eos], [*words, *words[:2]]])
    seen = {}

    def fake_generate(*, input_ids, attention_mask, generation_config):
        seen["mask"] = attention_mask
        return torch.cat([input_ids, scripted], dim=1)

    monkeypatch.setattr(model, "generate", fake_generate)

    answers = generate(model, tokenizer, CONVERSATIONS[:3], SamplingSettings(max_new_tokens=5), batch_size=3)

    assert [a.new_tokens for a in answers] == [3, 2, 5]
    assert answers[0].text == tokenizer.decode(words[:2], skip_special_tokens=True).strip()
    for conversation, mask in zip(CONVERSATIONS[:3], seen["mask"], strict=True):
        prompt = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        assert eos in prompt_ids
        assert int(mask.sum()) == len(prompt_ids)  # every <|im_end|> of the prompt is attended to


def test_generation_leaves_a_model_in_training_mode(tiny):
    model, tokenizer = tiny
    model.train()

    generate(model, tokenizer, CONVERSATIONS[:1], SamplingSettings(max_new_tokens=2))

    assert model.training


def test_bad_batch_arguments_are_refused_at_the_call(tiny):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="batch_size"):
        generate_batches(model, tokenizer, CONVERSATIONS, SAMPLED, batch_size=0)
    with pytest.raises(ValueError, match="skip_batches"):
        generate_batches(model, tokenizer, CONVERSATIONS, SAMPLED, skip_batches=-1)


def test_no_conversations_yield_no_batches(tiny):
    model, tokenizer = tiny
    assert list(generate_batches(model, tokenizer, [], SAMPLED)) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_new_tokens", 0), ("temperature", -0.1), ("top_p", 0), ("top_p", 1.5), ("seed", -1)],
)
def test_sampling_settings_reject_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SamplingSettings(**{field: value})


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "nf4"])
def test_smollm2_answers_in_each_precision(smollm2_dir, precision):
    model = load_causal_lm(smollm2_dir, precision=precision)
    tokenizer = load_tokenizer(smollm2_dir)
    conversations = [
        [{"role": "user", "content": "What is the capital of France?"}],
        [{"role": "user", "content": "Why is the sky blue?"}],
    ]

    answers = generate(model, tokenizer, conversations, SamplingSettings(max_new_tokens=16, temperature=0))

    assert len(answers) == 2
    assert all(a.text and 0 < a.new_tokens <= 16 for a in answers)
    assert "Paris" in answers[0].text
