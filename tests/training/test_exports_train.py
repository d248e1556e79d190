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


# Chat templates of many models (Llama 2, Mistral, Gemma) refuse a conversation whose turns do not alternate.
STRICT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant') }}"
    "{% endif %}"
    "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_hh_transcripts_with_repeated_speakers_train_under_a_strict_chat_template(tmp_path):
    """Public HH-RLHF rows have two Assistant turns in a row; imported and exported conversationally, they must
    satisfy templates that insist on alternation, and DPO trains on them."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer

    from feedback.imports.service import data_import
    from tests.feedback.files import write_rows

    history = (
        "\n\nHuman: Can you recommend a book?\n\nAssistant: Sure, what do you like?"
        "\n\nAssistant: For example, mysteries or history?\n\nHuman: {topic}.\n\nAssistant: "
    )
    rows = [
        {"chosen": history.format(topic=t) + f"Try a good book on {t}.", "rejected": history.format(topic=t) + "No."}
        for t in ("History", "Mysteries", "Science", "Poetry")
    ]
    project = ProjectFactory()
    data_import(project=project, path=write_rows(rows, "jsonl", tmp_path), source="hh")
    options = ExportOptions(format="hf", style="conversational", test_fraction=0)
    train = datasets.load_from_disk(str(export_preferences(project=project, options=options, out=tmp_path / "x").path))
    train = train["train"]
    assert train.num_rows == 4
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer([str(v) for row in train for v in row.values()])
    tokenizer.chat_template = STRICT_TEMPLATE
    for row in train:  # raises TemplateError if the merged history did not alternate
        tokenizer.apply_chat_template(row["prompt"] + row["chosen"], tokenize=False)
    model = AutoModelForCausalLM.from_config(tiny_llama_config(tokenizer))
    before = model.lm_head.weight.detach().clone()
    trainer = DPOTrainer(
        model=model,
        ref_model=copy.deepcopy(model),
        args=_args(DPOConfig, tmp_path / "dpo"),
        train_dataset=train,
        processing_class=tokenizer,
    )
    trainer.train()
    assert not torch.equal(before, model.lm_head.weight.detach())
