"""The sft and dpo children on a tiny random Llama: each method learns the weights it should (and only those), the
saved folder reloads and generates what the trained model generates, SFT's loss sees only answer tokens, DPO with
LoRA loads no reference copy, and a stopped run resumes from its checkpoint."""

import json

import pytest
import torch

from tests.training.policy.helpers import (
    demo_rows,
    make_context,
    polite_rows,
    tiny_base,
    write_data,
    write_demonstrations,
)
from training.runner import Context, Stopped

pytestmark = pytest.mark.model

PROMPT = [{"role": "user", "content": "What colour is the sky? (question 7)"}]


@pytest.fixture
def job(tmp_path):
    base = tiny_base(tmp_path / "base")
    data = write_data(tmp_path / "jobdata", polite_rows(16), polite_rows(6, seed=1, start=100))
    write_demonstrations(data, demo_rows(16), demo_rows(6, start=100))
    return tmp_path, base, data


def _config(method="lora", precision="fp32", **trainer):
    return {
        "model": {"method": method, "precision": precision, "max_length": 64},
        "trainer": {"max_steps": 3, "batch_size": 4, "save_steps": 100, "learning_rate": 1e-2, **trainer},
    }


class Spy:
    """Keeps the model the task loaded (a copy of its weights then) and the model it saved."""

    def __init__(self, monkeypatch):
        import training.policy.model as policy_model

        self.loaded, self.saved = None, None
        load, save = policy_model.load_policy, policy_model.save_policy

        def load_policy(*args, **kwargs):
            model, tokenizer, peft_config = load(*args, **kwargs)
            self.before = {n: p.detach().clone() for n, p in model.named_parameters()}
            return model, tokenizer, peft_config

        def save_policy(folder, model, tokenizer, meta):
            self.saved, self.tokenizer = model, tokenizer
            return save(folder, model, tokenizer, meta)

        monkeypatch.setattr(policy_model, "load_policy", load_policy)
        monkeypatch.setattr(policy_model, "save_policy", save_policy)


def _base_name(name: str) -> str:
    """A peft-wrapped parameter's name in the bare model (what load_policy returned before the trainer wrapped it)."""
    return name.removeprefix("base_model.model.").replace(".base_layer.", ".")


def _run(job, kind, config, monkeypatch, **extra):
    tmp, base, data = job
    spy = Spy(monkeypatch)
    ctx = make_context(tmp, kind, config, data=data, base=base, **extra)
    module = __import__(f"training.tasks.{kind}", fromlist=["run"])
    return module.run(ctx), spy, ctx


def _greedy(model, tokenizer, n=8):
    ids = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    model.eval()
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=n, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return out[0, ids["input_ids"].shape[1] :].tolist()


def _check_weights(spy, method):
    trained = dict(spy.saved.named_parameters())
    if method == "full":
        changed = {n for n, p in trained.items() if not torch.equal(p.detach().float(), spy.before[n].float())}
        assert any("layers.0." in n for n in changed) and any("layers.1." in n for n in changed)
        return
    lora_b = {n: p for n, p in trained.items() if "lora_B" in n}
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b.values())  # peft starts B at zero: every adapter learned
    assert {n.split(".lora_B")[0].rsplit(".", 1)[-1] for n in lora_b} >= {"q_proj", "v_proj", "down_proj"}  # all linear
    assert "lm_head" not in " ".join(lora_b)
    base = {n: p for n, p in trained.items() if "lora_" not in n}
    assert base and all(torch.equal(p.detach().float(), spy.before[_base_name(n)].float()) for n, p in base.items())
    assert all(p.dtype == torch.float32 for p in trained.values() if p.requires_grad)  # TRL's bf16 cast undone


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "method", "precision"),
    [("sft", "lora", "fp32"), ("sft", "full", "fp32"), ("dpo", "lora", "fp32"), ("dpo", "lora", "nf4")],
)
def test_each_method_trains_its_weights_and_the_saved_folder_generates_the_same_tokens(
    job, monkeypatch, kind, method, precision
):
    from training.policy.model import load_saved_policy, read_manifest

    config = _config(method, precision, learning_rate=1e-2 if method == "lora" else 1e-3)
    result, spy, ctx = _run(job, kind, config, monkeypatch)
    assert result["steps"] == 3 and result["train_examples"] == 16 and result["test_examples"] == 6
    _check_weights(spy, method)

    folder = ctx.workdir / "model"
    meta = read_manifest(folder)
    assert meta | {"kind": kind, "method": method, "precision": precision, "base": "tiny", "start_from": None} == meta
    expected = {"adapter_config.json", "adapter_model.safetensors"} if method == "lora" else {"model.safetensors"}
    assert expected <= {p.name for p in folder.iterdir()}
    trained_tokens = _greedy(spy.saved, spy.tokenizer)
    reloaded = load_saved_policy(folder, base_path=job[1])
    assert _greedy(reloaded, spy.tokenizer) == trained_tokens

    evaluation = json.loads((ctx.workdir / "evaluation.json").read_text())
    assert evaluation["n"] == 6 and evaluation["perplexity_before"] != evaluation["perplexity_after"]
    assert result["perplexity_after"] == evaluation["perplexity_after"]
    if kind == "dpo":
        assert 0 <= evaluation["reward_accuracy"] <= 1 and evaluation["reward_margin"] is not None
        assert result["reference"] == ("the adapter switched off" if method == "lora" else "a full copy of the base")


@pytest.mark.slow
def test_the_perplexity_before_is_the_parents(job, monkeypatch):
    """The evaluation's "before" is the untrained base: the same figure a plain fp32 load of the base gives."""
    from training.ml.loading import load_causal_lm
    from training.policy.data import sft_examples, tokenize_sft
    from training.policy.evaluation import answer_logps, perplexity, sft_sequences
    from training.policy.model import load_training_tokenizer

    result, _, _ = _run(job, "sft", _config(), monkeypatch)
    tokenizer = load_training_tokenizer(job[1])
    rows, _ = tokenize_sft(sft_examples(job[2], "test", include_chosen=False)[0], tokenizer, 64)
    scored = answer_logps(load_causal_lm(job[1], precision="fp32"), sft_sequences(rows), batch_size=1)
    assert result["perplexity_before"] == pytest.approx(perplexity(scored), rel=1e-4)
    assert result["perplexity_after"] < result["perplexity_before"]  # lr 1e-2 on the same kind of answers


def test_sft_puts_the_loss_on_answer_tokens_only_even_when_pad_is_eos(tmp_path):
    """The collated batch's labels: -100 on the prompt and the padding, the token itself on every answer token —
    including the answer's final <|im_end|>, which a mask built from `ids != pad` would hide when pad == EOS."""
    from datasets import Dataset
    from trl import SFTConfig

    from training.policy.data import Example, tokenize_sft
    from training.policy.model import load_policy
    from training.policy.trainer import sft_trainer_class, training_args
    from training.train_configs import SftConfig

    base = tiny_base(tmp_path / "base", pad_is_eos=True)
    from training.configs import config_build

    cfg = config_build(SftConfig, {"model": {"precision": "fp32", "max_length": 64}, "trainer": {"batch_size": 2}})
    model, tokenizer, peft_config = load_policy(cfg.model, cfg.lora, base_path=base)
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    examples = [Example(PROMPT, "It is blue."), Example([{"role": "user", "content": "Hi"}], "Hello there, friend.")]
    rows, _ = tokenize_sft(examples, tokenizer, 64)
    args = training_args(SFTConfig, cfg, tmp_path / "ckpt", completion_only_loss=True, packing=False)
    trainer = sft_trainer_class()(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    batch = next(iter(trainer.get_train_dataloader()))
    order = [
        next(i for i, r in enumerate(rows) if r["input_ids"] == ids[: len(r["input_ids"])].tolist())
        for ids in batch["input_ids"]
    ]
    for i, k in enumerate(order):
        ids, mask = rows[k]["input_ids"], rows[k]["completion_mask"]
        labels = batch["labels"][i].tolist()
        expected = [t if m else -100 for t, m in zip(ids, mask, strict=True)] + [-100] * (len(labels) - len(ids))
        assert labels == expected
        assert labels[len(ids) - 2] == tokenizer.eos_token_id or labels[len(ids) - 1] == tokenizer.eos_token_id
        assert batch["attention_mask"][i].tolist() == [1] * len(ids) + [0] * (len(labels) - len(ids))
    assert sum(t != -100 for t in batch["labels"].flatten().tolist()) == sum(sum(r["completion_mask"]) for r in rows)


@pytest.mark.slow
def test_dpo_with_lora_loads_no_reference_copy_and_full_dpo_does(tmp_path, monkeypatch):
    """With LoRA the reference is the same base with the adapter switched off: TRL loads nothing more (its loader is
    made to fail here) and adds no reference adapter; the reference log-probs are the base's."""
    from datasets import Dataset
    from trl import DPOConfig
    from trl.trainer import dpo_trainer

    from training.configs import config_build
    from training.policy.data import Preference, tokenize_preferences
    from training.policy.model import load_policy
    from training.policy.trainer import dpo_trainer_class, training_args
    from training.train_configs import DpoConfig

    base = tiny_base(tmp_path / "base")
    pairs = [Preference(PROMPT, "Sure, happy to help: it is blue.", "Whatever.")] * 4

    def build(method, precision):
        cfg = config_build(DpoConfig, {"model": {"method": method, "precision": precision, "max_length": 64},
                                       "trainer": {"batch_size": 2}})  # fmt: skip
        model, tokenizer, peft_config = load_policy(cfg.model, cfg.lora, base_path=base)
        rows, _ = tokenize_preferences(pairs, tokenizer, 64)
        args = training_args(DPOConfig, cfg, tmp_path / method, beta=cfg.beta, loss_type=["sigmoid"])
        return dpo_trainer_class()(model=model, ref_model=None, args=args, train_dataset=Dataset.from_list(rows),
                                   processing_class=tokenizer, peft_config=peft_config)  # fmt: skip

    loads = []
    real = dpo_trainer.create_model_from_path
    monkeypatch.setattr(dpo_trainer, "create_model_from_path", lambda *a, **k: loads.append(a) or real(*a, **k))
    trainer = build("lora", "nf4")
    assert trainer.ref_model is None and loads == []
    assert list(trainer.model.peft_config) == ["default"]  # no frozen "ref" copy either
    assert trainer.model.get_base_model().is_loaded_in_4bit
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    with torch.no_grad():
        torch.nn.init.normal_(next(p for n, p in trainer.model.named_parameters() if "lora_B" in n), std=1.0)
        ref_c, _ = trainer.compute_ref_log_probs(trainer.model, batch)
        with trainer.model.disable_adapter():
            plain = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logps = torch.log_softmax(plain[:, :-1].float(), -1).gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
    by_hand = (logps * batch["completion_mask"][:, 1:]).sum(1).chunk(2)[0]
    assert ref_c == pytest.approx(by_hand.tolist(), abs=1e-3)  # the reference is the base, not the adapted model

    full = build("full", "fp32")
    assert full.ref_model is not None and len(loads) == 1  # full DPO: a second copy, unavoidable


@pytest.mark.slow
def test_a_run_stopped_at_a_checkpoint_resumes_there_and_ends_where_an_uninterrupted_run_ends(job, monkeypatch):
    """The worker's SIGTERM, in process: the callback saves at the step it is asked to stop at, the task leaves
    with Stopped and no model, and the next attempt continues from that checkpoint to the same adapter."""
    from safetensors.torch import load_file

    from training.ml.trainer_callback import last_complete_checkpoint

    tmp, base, data = job
    config = _config("lora", "fp32", max_steps=4, save_steps=100)
    ctx = make_context(tmp, "dpo", config, data=data, base=base)
    progress = ctx.progress

    def stop_at_two(current, total, message=""):
        progress(current, total, message)
        if message.startswith("step") and current >= 2:
            ctx.request_stop()

    monkeypatch.setattr(ctx, "progress", stop_at_two)
    from training.tasks import dpo

    with pytest.raises(Stopped):
        dpo.run(ctx)
    assert [p.name for p in ctx.checkpoint_dir.glob("checkpoint-*")] == ["checkpoint-2"]
    assert last_complete_checkpoint(ctx.checkpoint_dir, discard_incomplete=False).name == "checkpoint-2"
    assert not (ctx.workdir / "model").exists()

    again = Context(json.loads(json.dumps(ctx_spec(ctx))), ctx.events.append)
    again.config = ctx.config
    result = dpo.run(again)
    assert result["resumed_from_step"] == 2 and result["steps"] == 4
    metric_steps = [e["step"] for e in ctx.events if e["type"] == "metric"]
    assert metric_steps == [1, 2, 3, 4]  # continued at step 3, not from 0
    resumed = load_file(again.workdir / "model" / "adapter_model.safetensors")

    whole = tmp / "whole"
    whole.mkdir()
    uninterrupted = make_context(whole, "dpo", config, data=data, base=base)
    assert dpo.run(uninterrupted)["resumed_from_step"] is None
    straight = load_file(uninterrupted.workdir / "model" / "adapter_model.safetensors")
    assert straight.keys() == resumed.keys()
    assert all(torch.allclose(straight[k], resumed[k], atol=1e-6) for k in straight)


def ctx_spec(ctx) -> dict:
    return {"job_id": ctx.job_id, "attempt": ctx.attempt + 1, "kind": "noop", "config": {},
            "inputs": str(ctx.workdir / "inputs.json"), "workdir": str(ctx.workdir), "data_dir": str(ctx.data_dir)}  # fmt: skip


@pytest.mark.slow
def test_dpo_from_an_sft_adapter_trains_that_adapter_against_a_frozen_copy_of_it(job, monkeypatch):
    """start_from: the SFT adapter continues to learn, the reference (and the evaluation's parent) is the SFT
    adapter as it was, and the saved folder holds the trained adapter alone."""
    from safetensors.torch import load_file

    tmp, base, data = job
    sft_dir = tmp / "sft"
    sft_dir.mkdir()
    sft = make_context(sft_dir, "sft", _config("lora", "nf4"), data=data, base=base)
    from training.tasks import sft as sft_task

    sft_task.run(sft)
    adapter = sft.workdir / "model"
    result, spy, ctx = _run(job, "dpo", _config("lora", "nf4"), monkeypatch, start_from=adapter)
    assert result["reference"] == "a frozen copy of tiny-sft"
    trained = dict(spy.saved.named_parameters())
    started = load_file(adapter / "adapter_model.safetensors")

    def weight(name, adapter_name):
        return trained[name.replace(".lora_A.weight", f".lora_A.{adapter_name}.weight").replace(
            ".lora_B.weight", f".lora_B.{adapter_name}.weight")]  # fmt: skip

    assert all(torch.equal(weight(n, "ref").detach(), w) for n, w in started.items())  # the reference: frozen
    assert any(not torch.equal(weight(n, "default").detach(), w) for n, w in started.items())  # the policy: learned
    saved = ctx.workdir / "model"
    assert not (saved / "ref").exists()
    assert load_file(saved / "adapter_model.safetensors").keys() == started.keys()
    assert json.loads((saved / "juror_policy.json").read_text())["start_from"] == "tiny-sft"
