"""The policy kinds on the database side (sft, dpo, merge): the files prepare() writes, the checks that fail a job
before any training with a message saying what to change, and registration with provenance (no model is
trained: the child's folder is faked with small safetensors files)."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from annotators.models import Membership
from feedback.models import Demonstration, Prompt
from tests.factories import MembershipFactory, ProjectFactory
from tests.training.reward_fixtures import labelled_project
from training.jobs import job_submit
from training.kinds import JobError
from training.kinds.policy import (
    finish_dpo,
    finish_merge,
    finish_sft,
    lineage,
    prepare_dpo,
    prepare_merge,
    prepare_sft,
)
from training.models import RegisteredModel
from training.registry import RegistryError, model_default, model_register_trained

pytestmark = pytest.mark.django_db


def _job(project, kind="sft", **config):
    return job_submit(kind=kind, project=project, config=config)


def _read(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _demonstrate(project, *, audience: str = "child") -> list[Demonstration]:
    """One demonstration per prompt of the project, written by a member with this audience attribute."""
    author = MembershipFactory(project=project, attributes={"audience": audience}).user
    return [
        Demonstration.objects.create(prompt=prompt, author=author, text=f"A careful answer to {prompt.pk}.")
        for prompt in Prompt.objects.filter(project=project).order_by("id")
    ]


def _adapter_row(name: str, parent: RegisteredModel, **fields) -> RegisteredModel:
    return RegisteredModel.objects.create(name=name, kind="adapter", parent=parent, path=f"models/{name}", **fields)


def fake_adapter_folder(folder: Path) -> Path:
    """What a method=lora policy job leaves in workdir/model: a peft adapter (config and a few small weights) and
    juror_policy.json."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    save_file(
        {
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": rng.normal(size=(4, 8)).astype("f4"),
            "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": rng.normal(size=(8, 4)).astype("f4"),
        },
        str(folder / "adapter_model.safetensors"),
    )
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 8}))
    (folder / "juror_policy.json").write_text(json.dumps({"kind": "sft", "method": "lora", "precision": "nf4"}))
    return folder


def fake_full_folder(folder: Path) -> Path:
    """What a method=full policy job (or a merge) leaves in workdir/model: config.json and the weights."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"lm_head.weight": np.zeros((16, 8), dtype="f4")}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    return folder


EVALUATION = {"perplexity_before": 14.2, "perplexity_after": 9.7, "n": 4}
RESULT = {"steps": 6, "train_examples": 10, "test_examples": 2, "perplexity_before": 14.2, "perplexity_after": 9.7}


def _trained(tmp_path, job, prepare, folder=fake_adapter_folder):
    """A job whose child 'ran': prepare()'s inputs.json, a model folder and its evaluation.json."""
    workdir = tmp_path / f"job{job.pk}"
    workdir.mkdir()  # the worker makes it before prepare()
    inputs = prepare(job, workdir)
    (workdir / "inputs.json").write_text(json.dumps(inputs))
    folder(workdir / "model")
    (workdir / "evaluation.json").write_text(json.dumps(EVALUATION))
    return workdir, inputs


# ---- prepare: data ------------------------------------------------------------------------------------------


def test_sft_prepare_writes_the_demonstrations_as_chat_messages_and_names_the_models(tmp_path):
    project = labelled_project(pairs=10)
    demos = _demonstrate(project)
    job = _job(project, data={"test_fraction": 0.5})
    inputs = prepare_sft(job, tmp_path)

    folder = tmp_path / "data" / "demonstrations"
    rows = _read(folder / "train.jsonl") + _read(folder / "test.jsonl")
    assert sorted(r["demonstration_id"] for r in rows) == [d.pk for d in demos]
    first = next(r for r in rows if r["demonstration_id"] == demos[0].pk)
    assert first["messages"] == [*demos[0].prompt.messages, {"role": "assistant", "content": demos[0].text}]
    split = {name: len(_read(folder / f"{name}.jsonl")) for name in ("train", "test")}
    assert inputs["rows"]["demonstrations"] == split and split["train"] > 0
    assert inputs["dataset_sha256"] == hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()
    assert not (tmp_path / "data" / "pairs").exists()
    assert inputs["name"] == f"kids-sft-{job.pk}" and inputs["project"] == "kids"
    assert inputs["base"]["name"] == "smollm2-135m-instruct" and inputs["base"]["convert"] == "smollm2"
    assert inputs["start_from"] is None


def test_sft_with_include_chosen_also_writes_the_pairs_with_the_same_split(tmp_path):
    project = labelled_project(pairs=10)
    _demonstrate(project)
    only = prepare_sft(_job(project), tmp_path / "a")
    both = prepare_sft(_job(project, data={"include_chosen": True}), tmp_path / "b")

    pairs = tmp_path / "b" / "data" / "pairs"
    assert sum(both["rows"]["pairs"].values()) == 10 and _read(pairs / "train.jsonl")[0]["chosen"][0]["role"]
    assert both["dataset_sha256"] != only["dataset_sha256"]  # the pairs are part of what it learns from
    demo_test = {r["prompt_id"] for r in _read(tmp_path / "b" / "data" / "demonstrations" / "test.jsonl")}
    pair_test = {r["prompt_id"] for r in _read(pairs / "test.jsonl")}
    assert demo_test == pair_test


def test_sft_without_demonstrations_says_to_write_some_or_include_chosen(tmp_path):
    project = labelled_project(pairs=4)
    with pytest.raises(JobError, match="project kids has no demonstrations and data.include_chosen is off"):
        prepare_sft(_job(project), tmp_path / "a")
    # The chosen answers alone are enough to train on.
    inputs = prepare_sft(_job(project, data={"include_chosen": True}), tmp_path / "b")
    assert inputs["rows"]["demonstrations"] == {"train": 0, "test": 0} and inputs["rows"]["pairs"]["train"]


def test_sft_names_the_segment_that_removed_every_demonstration(tmp_path):
    project = labelled_project(pairs=3)
    _demonstrate(project, audience="adult")
    with pytest.raises(JobError, match="none of the project's 3 demonstrations passes data.segment=audience=child"):
        prepare_sft(_job(project, data={"segment": "audience=child"}), tmp_path)


def test_dpo_prepare_writes_the_pairs_and_names_the_models(tmp_path):
    project = labelled_project(pairs=8)
    job = _job(project, kind="dpo")
    inputs = prepare_dpo(job, tmp_path)
    rows = _read(tmp_path / "data" / "pairs" / "train.jsonl") + _read(tmp_path / "data" / "pairs" / "test.jsonl")
    assert len(rows) == 8 and rows[0]["prompt"][0]["role"] == "user"
    assert rows[0]["chosen"][0]["role"] == rows[0]["rejected"][0]["role"] == "assistant"
    assert inputs["name"] == f"kids-dpo-{job.pk}" and inputs["base"]["name"] == "smollm2-135m-instruct"
    assert (tmp_path / "data" / "annotators.json").exists()


# ---- prepare: models and names --------------------------------------------------------------------------


def test_an_adapter_as_base_is_refused_naming_its_base_and_start_from(tmp_path):
    project = labelled_project(pairs=2)
    _adapter_row("kids-sft", model_default())
    with pytest.raises(JobError, match="set model.base=smollm2-135m-instruct .* and model.start_from=kids-sft"):
        prepare_dpo(_job(project, kind="dpo", model={"base": "kids-sft"}), tmp_path / "a")
    RegisteredModel.objects.create(name="kids-rm", kind="reward", path="models/kids-rm")
    with pytest.raises(JobError, match="kids-rm is a reward model.*trained from a base model"):
        prepare_dpo(_job(project, kind="dpo", model={"base": "kids-rm"}), tmp_path / "b")
    with pytest.raises(JobError, match="model.base: no registered model called 'nope'"):
        prepare_dpo(_job(project, kind="dpo", model={"base": "nope"}), tmp_path / "c")
    assert not any((tmp_path / d / "data").exists() for d in "abc")  # refused before any export


def test_start_from_must_be_an_adapter_of_the_same_base(tmp_path):
    project = labelled_project(pairs=4)
    smol = model_default()
    other = RegisteredModel.objects.create(name="other-lm", kind="base", path="models/other-lm")
    _adapter_row("elsewhere", other)
    with pytest.raises(JobError, match="elsewhere is an adapter of other-lm, not of model.base=smollm2"):
        prepare_dpo(_job(project, kind="dpo", model={"start_from": "elsewhere"}), tmp_path / "a")
    with pytest.raises(JobError, match="other-lm is a base model, not a LoRA adapter; .* set model.base=other-lm"):
        prepare_dpo(_job(project, kind="dpo", model={"start_from": "other-lm"}), tmp_path / "b")
    _adapter_row("kids-sft", smol)
    inputs = prepare_dpo(_job(project, kind="dpo", model={"start_from": "kids-sft"}), tmp_path / "c")
    assert inputs["start_from"]["name"] == "kids-sft" and inputs["start_from"]["adapter_path"].endswith("kids-sft")
    assert inputs["start_from"]["base_path"] == inputs["base"]["base_path"]


def test_a_taken_name_is_refused_before_training(tmp_path):
    project = labelled_project(pairs=2)
    _demonstrate(project)
    model_default()
    with pytest.raises(JobError, match="'smollm2-135m-instruct' is already registered"):
        prepare_sft(_job(project, name="smollm2-135m-instruct"), tmp_path)
    job = _job(project, kind="dpo")
    _adapter_row(f"kids-dpo-{job.pk}", model_default())
    with pytest.raises(JobError, match=f"'kids-dpo-{job.pk}' is already registered"):
        prepare_dpo(job, tmp_path)
    assert not (tmp_path / "data").exists()


# ---- finish -------------------------------------------------------------------------------------------------


def test_a_lora_policy_registers_as_an_adapter_of_its_base_with_provenance(tmp_path, settings):
    project = labelled_project(pairs=6)
    _demonstrate(project)
    job = _job(project, name="kids-sft")
    workdir, inputs = _trained(tmp_path, job, prepare_sft)
    result = finish_sft(job, workdir, RESULT)

    assert result == {**RESULT, "model": "kids-sft"}
    model = RegisteredModel.objects.get(name="kids-sft")
    assert (model.kind, model.parent.name, model.job, model.quantisation) == (
        "adapter", "smollm2-135m-instruct", job, "nf4",
    )  # fmt: skip
    assert model.config == job.config and model.dataset_sha256 == inputs["dataset_sha256"]
    assert model.metrics["evaluation"] == EVALUATION and model.metrics["steps"] == 6
    assert model.parameter_count == 64  # two 4×8 LoRA matrices, from the safetensors headers
    folder = settings.JUROR_DATA_DIR / model.path
    assert (folder / "adapter_config.json").exists() and not (workdir / "model").exists()
    provenance = json.loads((folder / "juror_provenance.json").read_text())
    assert (provenance["job"], provenance["parent"], provenance["kind"]) == (job.pk, "smollm2-135m-instruct", "adapter")
    assert lineage(model) == ["kids-sft", "smollm2-135m-instruct"]


def test_a_full_precision_policy_registers_as_a_base_recording_where_it_came_from(tmp_path):
    project = labelled_project(pairs=6)
    job = _job(project, kind="dpo", model={"method": "full", "precision": "fp32"})
    workdir, _ = _trained(tmp_path, job, prepare_dpo, folder=fake_full_folder)
    finish_dpo(job, workdir, RESULT)

    model = RegisteredModel.objects.get(name=f"kids-dpo-{job.pk}")
    assert (model.kind, model.parent, model.quantisation) == ("base", None, "")
    assert model.config["origin"] == {
        "kind": "dpo",
        "base": "smollm2-135m-instruct",
        "lineage": [model.name, "smollm2-135m-instruct"],
    }
    assert model.config["model"]["method"] == "full" and model.metrics["evaluation"] == EVALUATION
    assert lineage(model) == [model.name, "smollm2-135m-instruct"]


def test_a_lora_job_whose_folder_is_no_adapter_fails_with_the_reason(tmp_path):
    project = labelled_project(pairs=4)
    job = _job(project, kind="dpo")
    workdir, _ = _trained(tmp_path, job, prepare_dpo, folder=fake_full_folder)
    with pytest.raises(JobError, match="could not be registered: .* has no adapter_config.json"):
        finish_dpo(job, workdir, RESULT)
    assert not RegisteredModel.objects.filter(job=job).exists()
    (workdir / "evaluation.json").unlink()
    with pytest.raises(JobError, match="wrote no evaluation.json"):
        finish_dpo(job, workdir, RESULT)


def test_model_register_trained_refuses_a_base_without_config_json(tmp_path):
    project = ProjectFactory(slug="p")
    job = _job(project, kind="merge", adapter="x")
    with pytest.raises(RegistryError, match="has no config.json"):
        model_register_trained(
            name="nope", folder=fake_adapter_folder(tmp_path / "m"), kind="base", parent=None, job=job, config={},
            metrics={}, dataset_sha256="",
        )  # fmt: skip


# ---- merge --------------------------------------------------------------------------------------------------


def test_merge_prepare_checks_the_adapter_and_the_name(tmp_path):
    project = ProjectFactory(slug="p")
    smol = model_default()
    with pytest.raises(JobError, match="adapter: no registered model called 'missing'"):
        prepare_merge(_job(project, kind="merge", adapter="missing"), tmp_path)
    with pytest.raises(JobError, match="smollm2-135m-instruct is a base model, not a LoRA adapter"):
        prepare_merge(_job(project, kind="merge", adapter="smollm2-135m-instruct"), tmp_path)
    _adapter_row("kids-sft", smol, dataset_sha256="ab" * 32)
    inputs = prepare_merge(_job(project, kind="merge", adapter="kids-sft"), tmp_path)
    assert inputs["name"] == "kids-sft-merged" and inputs["dataset_sha256"] == "ab" * 32
    assert inputs["adapter"]["adapter_path"].endswith("models/kids-sft") and inputs["adapter"]["convert"] == "smollm2"
    assert inputs["base"]["name"] == "smollm2-135m-instruct"
    assert inputs["lineage"] == ["kids-sft-merged", "kids-sft", "smollm2-135m-instruct"]
    _adapter_row("kids-sft-merged", smol)
    with pytest.raises(JobError, match="'kids-sft-merged' is already registered"):
        prepare_merge(_job(project, kind="merge", adapter="kids-sft"), tmp_path)
    _adapter_row("a" * 95, smol)
    with pytest.raises(JobError, match="not a usable model name"):
        prepare_merge(_job(project, kind="merge", adapter="a" * 95), tmp_path)


def test_a_merge_registers_a_base_with_the_adapter_and_its_ancestry(tmp_path, settings):
    project = ProjectFactory(slug="p")
    MembershipFactory(project=project, role=Membership.Role.MANAGER)
    _adapter_row("kids-sft", model_default(), dataset_sha256="ab" * 32)
    job = _job(project, kind="merge", adapter="kids-sft", precision="bf16")
    workdir, _ = _trained(tmp_path, job, prepare_merge, folder=fake_full_folder)
    result = finish_merge(job, workdir, {"max_logit_difference": 0.0})

    model = RegisteredModel.objects.get(name="kids-sft-merged")
    assert result["model"] == model.name
    assert (model.kind, model.parent, model.job, model.dataset_sha256) == ("base", None, job, "ab" * 32)
    assert model.config["precision"] == "bf16" and model.config["adapter"] == "kids-sft"
    assert model.config["origin"] == {
        "kind": "merge",
        "adapter": "kids-sft",
        "base": "smollm2-135m-instruct",
        "lineage": ["kids-sft-merged", "kids-sft", "smollm2-135m-instruct"],
    }
    assert json.loads((settings.JUROR_DATA_DIR / model.path / "juror_provenance.json").read_text())["job"] == job.pk
    # An adapter trained on the merged model, merged again: the ancestry goes all the way back.
    _adapter_row("kids-dpo", model)
    again = prepare_merge(_job(project, kind="merge", adapter="kids-dpo"), tmp_path / "again")
    assert again["lineage"] == ["kids-dpo-merged", "kids-dpo", "kids-sft-merged", "kids-sft", "smollm2-135m-instruct"]


# ---- the demo ---------------------------------------------------------------------------------------------


def test_the_demo_ships_demonstrations_so_sft_runs_on_it_out_of_the_box(tmp_path, capsys):
    from django.core.management import call_command

    call_command("seed_demo")
    call_command("seed_demo")  # idempotent
    assert "0 demonstrations added" in capsys.readouterr().out
    demos = Demonstration.objects.filter(prompt__project__slug="demo")
    assert demos.count() == 12 and {d.author.username for d in demos} == {"admin"}
    sky = demos.get(prompt__messages__0__content="Why is the sky blue? I'm seven years old.")
    assert "blue" in sky.text
    inputs = prepare_sft(_job(sky.prompt.project), tmp_path)
    assert sum(inputs["rows"]["demonstrations"].values()) == 12
