"""TRL's trainers take the exported preference dataset as it is: one optimiser step each on a tiny model."""

import copy

import pytest

from feedback.exports.options import ExportOptions
from feedback.exports.service import export_preferences
from tests.factories import MembershipFactory, ProjectFactory, make_pair
from tests.feedback.test_exports import label

from .tiny import tiny_llama_config, tiny_tokenizer

pytestmark = [pytest.mark.django_db, pytest.mark.model, pytest.mark.slow]


@pytest.fixture
def exported(tmp_path):
    project = ProjectFactory()
    member = MembershipFactory(project=project)
    for _ in range(6):
        label(make_pair(project), member, "a")

    def export(style):
        opts = ExportOptions(format="hf", style=style, test_fraction=0)
        return export_preferences(project=project, options=opts, out=tmp_path / style).path

    return export


def _train_set(path):
    """The exported train split, and a tokenizer trained on its text."""
    import datasets
    import torch

    train = datasets.load_from_disk(str(path))["train"]
    torch.manual_seed(0)
    return train, tiny_tokenizer([str(v) for row in train for v in row.values()])


def _args(config_class, output_dir):
    return config_class(
        output_dir=str(output_dir),
        max_steps=1,
        per_device_train_batch_size=2,
        report_to=[],
        bf16=False,
        use_cpu=True,
        logging_steps=1,
        save_strategy="no",
        max_length=128,
    )


@pytest.mark.parametrize("style", ["standard", "conversational"])
def test_reward_trainer_takes_the_export(exported, tmp_path, style):
    import torch
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    train, tokenizer = _train_set(exported(style))
    model = AutoModelForSequenceClassification.from_config(tiny_llama_config(tokenizer, num_labels=1))
    before = model.score.weight.detach().clone()
    args = _args(RewardConfig, tmp_path / "rm")
    trainer = RewardTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer)
    trainer.train()
    assert trainer.state.global_step == 1
    assert not torch.equal(before, model.score.weight.detach())


@pytest.mark.parametrize("style", ["standard", "conversational"])
def test_dpo_trainer_takes_the_export(exported, tmp_path, style):
    import torch
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer

    train, tokenizer = _train_set(exported(style))
    model = AutoModelForCausalLM.from_config(tiny_llama_config(tokenizer))
    before = model.lm_head.weight.detach().clone()
    args = _args(DPOConfig, tmp_path / "dpo")
    # The reference is the untrained copy (TRL would otherwise reload it from a hub id, which a tiny model lacks).
    reference = copy.deepcopy(model)
    trainer = DPOTrainer(model=model, ref_model=reference, args=args, train_dataset=train, processing_class=tokenizer)
    trainer.train()
    assert trainer.state.global_step == 1
    assert not torch.equal(before, model.lm_head.weight.detach())
