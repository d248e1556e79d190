"""The reward kinds on the database side: the dataset files prepare() writes, registration with provenance,
evaluations, stored scores and active-learning priorities (no model is trained: the child's files are faked)."""

import json

import pytest
from django.db import transaction

from feedback.models import Comparison, Label, Response
from tests.factories import ProjectFactory, make_pair
from tests.training.reward_fixtures import (
    evaluation_fixture,
    fake_reward_folder,
    labelled_project,
)
from training.jobs import job_submit
from training.kinds import JobError
from training.kinds.dataset import dataset_prepare
from training.kinds.reward import (
    finish_reward,
    finish_reward_eval,
    finish_score,
    prepare_reward,
    prepare_reward_eval,
    prepare_score,
)
from training.models import RegisteredModel, ResponseScore, RewardEvaluation
from training.registry import RegistryError, model_default, model_register_trained
from training.train_configs import DataConfig

pytestmark = pytest.mark.django_db


def _job(project, kind="reward", **config):
    return job_submit(kind=kind, project=project, config=config)


def _read(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# ---- dataset_prepare ------------------------------------------------------------------------------------


def test_dataset_prepare_writes_pairs_labels_and_annotators_and_hashes_the_manifest(tmp_path):
    import hashlib

    project = labelled_project(pairs=12)
    job = _job(project)
    out = dataset_prepare(job, tmp_path, DataConfig(test_fraction=0.25))
    data = tmp_path / "data"
    assert out["data"] == str(data.resolve())
    assert out["dataset_sha256"] == hashlib.sha256((data / "pairs" / "manifest.json").read_bytes()).hexdigest()
    pairs = _read(data / "pairs" / "train.jsonl") + _read(data / "pairs" / "test.jsonl")
    assert len(pairs) == 12 == sum(out["rows"]["pairs"].values())
    assert pairs[0]["prompt"][0]["role"] == "user" and pairs[0]["chosen"][0]["role"] == "assistant"
    labels = _read(data / "labels" / "train.jsonl") + _read(data / "labels" / "test.jsonl")
    assert len(labels) == 36 == sum(out["rows"]["labels"].values())
    annotators = json.loads((data / "annotators.json").read_text())
    assert sorted(a["audience"] for a in annotators.values()) == ["adult", "child", "child"]
    assert {row["annotator"] for row in labels} == set(annotators)


def test_dataset_prepare_reuses_a_complete_export_and_redoes_a_half_written_one(tmp_path):
    project = labelled_project(pairs=4)
    job = _job(project)
    first = dataset_prepare(job, tmp_path, DataConfig(test_fraction=0))
    manifest = tmp_path / "data" / "pairs" / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    assert dataset_prepare(job, tmp_path, DataConfig(test_fraction=0)) == first
    assert manifest.stat().st_mtime_ns == stamp
    # A try that died mid-export left labels/ without its manifest: it is written again, not trusted.
    (tmp_path / "data" / "labels" / "manifest.json").unlink()
    (tmp_path / "data" / "labels" / "train.jsonl").write_text("half a line")
    again = dataset_prepare(job, tmp_path, DataConfig(test_fraction=0))
    assert again["rows"]["labels"] == {"train": 12}
    assert len(_read(tmp_path / "data" / "labels" / "train.jsonl")) == 12


def test_a_project_without_labels_fails_with_the_reason(tmp_path):
    project = ProjectFactory(slug="empty")
    make_pair(project)
    with pytest.raises(JobError, match="project empty has no labels yet"):
        dataset_prepare(_job(project), tmp_path, DataConfig())


def test_a_filter_that_removes_every_pair_is_named_with_its_toll(tmp_path):
    project = labelled_project(pairs=3)
    with pytest.raises(
        JobError, match="none of the project's 9 labels passes the label filters \\(segment=audience=teen"
    ):
        dataset_prepare(_job(project), tmp_path, DataConfig(segment="audience=teen"))
    with pytest.raises(JobError, match="3 fewer than min_labels=4 labels"):
        dataset_prepare(_job(project), tmp_path / "b", DataConfig(min_labels=4))
    with pytest.raises(JobError, match="3 agreement below min_agreement=0.9"):
        dataset_prepare(_job(project), tmp_path / "c", DataConfig(min_agreement=0.9))


# ---- reward ---------------------------------------------------------------------------------------------


def test_reward_prepare_on_minilm_needs_no_base_and_other_modes_get_its_spec(tmp_path):
    project = labelled_project(pairs=6)
    inputs = prepare_reward(_job(project), tmp_path / "a")
    assert inputs["base"] is None and inputs["project"] == "kids" and inputs["name"].startswith("kids-reward-")
    assert inputs["dataset_sha256"] and inputs["rows"]["pairs"]
    inputs = prepare_reward(_job(project, mode="lora"), tmp_path / "b")
    assert inputs["base"]["name"] == "smollm2-135m-instruct" and inputs["base"]["convert"] == "smollm2"


def test_reward_prepare_refuses_a_taken_name_and_an_unknown_base_before_training(tmp_path):
    project = labelled_project(pairs=2)
    model_default()
    with pytest.raises(JobError, match="'smollm2-135m-instruct' is already registered"):
        prepare_reward(_job(project, name="smollm2-135m-instruct"), tmp_path / "a")
    with pytest.raises(JobError, match="no registered model called 'nope'"):
        prepare_reward(_job(project, mode="head", model={"base": "nope"}), tmp_path / "b")
    assert not (tmp_path / "a" / "data").exists()


def _trained(tmp_path, project, **config):
    """A reward job whose child 'ran': prepare()'s inputs.json, a model folder and its evaluation.json."""
    job = _job(project, **config)
    workdir = tmp_path / f"job{job.pk}"
    inputs = prepare_reward(job, workdir)
    (workdir / "inputs.json").write_text(json.dumps(inputs))
    fake_reward_folder(workdir / "model")
    evaluation = evaluation_fixture(list(Comparison.objects.filter(project=project).values_list("id", flat=True)))
    (workdir / "evaluation.json").write_text(json.dumps(evaluation))
    return job, workdir, inputs, evaluation


RESULT = {"mode": "features", "train_pairs": 9, "test_pairs": 3, "accuracy": 0.75, "ece": 0.083}


def test_reward_finish_registers_the_model_with_its_provenance_and_evaluation(tmp_path, settings):
    project = labelled_project(pairs=8)
    job, workdir, inputs, evaluation = _trained(tmp_path, project, name="kids-rm")
    result = finish_reward(job, workdir, RESULT)
    assert result["model"] == "kids-rm"
    model = RegisteredModel.objects.get(name="kids-rm")
    assert (model.kind, model.job, model.parent, model.quantisation) == ("reward", job, None, "")
    assert model.config == job.config and model.config["data"]["test_fraction"] == 0.2
    assert model.dataset_sha256 == inputs["dataset_sha256"]
    assert model.metrics["evaluation"] == evaluation and model.metrics["train_pairs"] == 9
    folder = settings.JUROR_DATA_DIR / model.path
    assert (folder / "classifier.safetensors").exists() and not (workdir / "model").exists()
    assert json.loads((folder / "juror_provenance.json").read_text())["dataset_sha256"] == inputs["dataset_sha256"]
    assert model.parameter_count == 9  # weight (8) + bias (1), from the safetensors headers
    row = RewardEvaluation.objects.get(model=model)
    assert (row.project, row.job, row.split, row.n, row.accuracy) == (project, job, "test", 40, 0.75)


def test_a_lora_reward_model_records_its_base_as_parent_and_its_spec_carries_it(tmp_path):
    from training.registry import model_spec

    project = labelled_project(pairs=4)
    job, workdir, *_ = _trained(tmp_path, project, mode="qlora")
    finish_reward(job, workdir, RESULT)
    model = RegisteredModel.objects.get(job=job)
    assert model.parent.name == "smollm2-135m-instruct" and model.quantisation == "nf4"
    spec = model_spec(model)
    assert spec["base_path"].endswith(model.path) and spec["parent"]["convert"] == "smollm2"


def test_a_finish_whose_transaction_rolled_back_registers_on_the_next_try(tmp_path):
    project = labelled_project(pairs=4)
    job, workdir, *_ = _trained(tmp_path, project, name="again")

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        finish_reward(job, workdir, RESULT)
        raise Boom  # e.g. marking the job succeeded failed after the folder moved
    assert not RegisteredModel.objects.filter(name="again").exists()
    finish_reward(job, workdir, RESULT)
    assert RegisteredModel.objects.get(name="again").evaluations.count() == 1


def test_a_failed_registration_leaves_no_row_and_no_folder(tmp_path, settings, monkeypatch):
    project = labelled_project(pairs=2)
    job = _job(project)
    folder = fake_reward_folder(tmp_path / "model")

    def refuse(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(RegisteredModel.objects, "create", refuse)
    with pytest.raises(RuntimeError):
        model_register_trained(
            name="broken", folder=folder, kind="reward", parent=None, job=job, config={}, metrics={}, dataset_sha256=""
        )
    assert not (settings.JUROR_DATA_DIR / "models" / "broken").exists()
    assert (folder / "classifier.safetensors").exists()  # back where the job wrote it, for a retry
    monkeypatch.undo()
    assert not RegisteredModel.objects.exists()


def test_register_trained_refuses_a_folder_without_safetensors_and_a_taken_folder(tmp_path, settings):
    project = labelled_project(pairs=2)
    job = _job(project)
    empty = tmp_path / "empty"
    empty.mkdir()
    kwargs = dict(kind="reward", parent=None, job=job, config={}, metrics={}, dataset_sha256="")
    with pytest.raises(RegistryError, match="no \\*.safetensors"):
        model_register_trained(name="e", folder=empty, **kwargs)
    (settings.JUROR_DATA_DIR / "models" / "taken").mkdir(parents=True)
    with pytest.raises(RegistryError, match="already exists"):
        model_register_trained(name="taken", folder=fake_reward_folder(tmp_path / "m"), **kwargs)


# ---- reward_eval ----------------------------------------------------------------------------------------


def _registered_reward(tmp_path, project, name):
    job, workdir, *_ = _trained(tmp_path, project, name=name)
    finish_reward(job, workdir, RESULT)
    return RegisteredModel.objects.get(name=name)


def test_reward_eval_prepare_takes_only_reward_models(tmp_path):
    project = labelled_project(pairs=6)
    model_default()
    with pytest.raises(JobError, match="smollm2-135m-instruct is a base model, not a reward model"):
        prepare_reward_eval(_job(project, "reward_eval", models=["smollm2-135m-instruct"]), tmp_path)
    _registered_reward(tmp_path, project, "rm-a")
    inputs = prepare_reward_eval(_job(project, "reward_eval", models=["rm-a"]), tmp_path / "eval")
    assert [m["name"] for m in inputs["models"]] == ["rm-a"] and inputs["models"][0]["kind"] == "reward"
    assert inputs["rows"]["pairs"]


def test_reward_eval_finish_stores_each_models_evaluation_on_this_project(tmp_path):
    home = labelled_project(pairs=6)
    _registered_reward(tmp_path, home, "rm-a")
    _registered_reward(tmp_path, home, "rm-b")
    other = labelled_project(slug="adults", pairs=6, votes=("b", "b", "a"))
    job = _job(other, "reward_eval", models=["rm-a", "rm-b"])
    workdir = tmp_path / "eval"
    (workdir).mkdir()
    (workdir / "inputs.json").write_text(json.dumps(prepare_reward_eval(job, workdir)))
    written = {
        "split": "all",
        "models": {"rm-a": evaluation_fixture([], accuracy=0.4), "rm-b": evaluation_fixture([], accuracy=0.6)},
        "comparison": None,
    }
    (workdir / "evaluation.json").write_text(json.dumps(written))
    result = finish_reward_eval(job, workdir, {"models": 2})
    assert [row["model"] for row in result["models_table"]] == ["rm-b", "rm-a"]
    on_other = RewardEvaluation.objects.filter(project=other).order_by("model__name")
    assert [(r.model.name, r.split, r.accuracy, r.job) for r in on_other] == [
        ("rm-a", "all", 0.4, job),
        ("rm-b", "all", 0.6, job),
    ]
    finish_reward_eval(job, workdir, {"models": 2})  # a retried finish replaces, never duplicates
    assert RewardEvaluation.objects.filter(project=other).count() == 2


# ---- score ----------------------------------------------------------------------------------------------


def test_score_prepare_lists_unscored_responses_and_unlabelled_pairs(tmp_path):
    project = labelled_project(pairs=2)
    model = _registered_reward(tmp_path, project, "rm")
    fresh = make_pair(project)  # unlabelled, servable
    scored = Response.objects.filter(prompt__project=project).order_by("id").first()
    ResponseScore.objects.create(response=scored, model=model, score=1.0)
    inputs = prepare_score(_job(project, "score", model="rm", prioritise="gap"), tmp_path / "s")
    ids = [r["id"] for r in inputs["responses"]]
    assert scored.id not in ids and len(ids) == Response.objects.filter(prompt__project=project).count() - 1
    assert inputs["responses"][0]["prompt"][0]["role"] == "user"
    assert inputs["comparisons"] == [{"id": fresh.id, "a": fresh.response_a_id, "b": fresh.response_b_id}]
    assert inputs["models"][0]["name"] == "rm"
    with pytest.raises(JobError, match="needs a features reward model trained with ensemble > 0"):
        prepare_score(_job(project, "score", model="rm", prioritise="ensemble"), tmp_path / "e")


def test_score_finish_upserts_scores_and_sets_priorities_from_uncertainty(tmp_path):
    project = labelled_project(pairs=6)
    model = _registered_reward(tmp_path, project, "rm")
    sure, unsure = make_pair(project), make_pair(project)
    Comparison.objects.filter(pk=sure.pk).update(priority=5)  # served first before the job
    stranger = make_pair(ProjectFactory())
    job = _job(project, "score", model="rm", responses="all", prioritise="gap")
    workdir = tmp_path / "score"
    workdir.mkdir()
    inputs = prepare_score(job, workdir)
    (workdir / "inputs.json").write_text(json.dumps(inputs))
    lines = [{"response_id": r["id"], "score": float(i)} for i, r in enumerate(inputs["responses"])]
    lines.append({"response_id": stranger.response_a_id, "score": 9.0})  # not handed out: ignored
    (workdir / "scores.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    (workdir / "priorities.jsonl").write_text(
        json.dumps({"comparison_id": sure.id, "uncertainty": 0.1})
        + "\n"
        + json.dumps({"comparison_id": unsure.id, "uncertainty": 0.9})
    )
    ResponseScore.objects.create(response_id=inputs["responses"][0]["id"], model=model, score=-5)
    result = finish_score(job, workdir, {"items": []})
    assert result["scored"] == len(inputs["responses"])
    assert ResponseScore.objects.get(response_id=inputs["responses"][0]["id"], model=model).score == 0.0
    assert not ResponseScore.objects.filter(response_id=stranger.response_a_id).exists()
    assert dict(Comparison.objects.filter(pk__in=[sure.pk, unsure.pk]).values_list("id", "priority")) == {
        sure.id: 100,
        unsure.id: 900,
    }
    effect = result["prioritised"]
    assert (effect["model"], effect["pairs"], effect["changed"], effect["next"]) == ("rm", 2, 2, 1)
    assert effect["uncertainty_all"] == 0.5
    # Labelled pairs kept their priority.
    assert set(Comparison.objects.exclude(pk__in=[sure.pk, unsure.pk]).values_list("priority", flat=True)) == {0}


def test_the_next_pairs_served_are_the_uncertain_ones(tmp_path):
    project = labelled_project(pairs=6)
    _registered_reward(tmp_path, project, "rm")
    pairs = [make_pair(project) for _ in range(60)]
    job = _job(project, "score", model="rm", responses="none", prioritise="gap")
    workdir = tmp_path / "score"
    workdir.mkdir()
    (workdir / "inputs.json").write_text(json.dumps(prepare_score(job, workdir)))
    # Oldest first is the queue's order before: the first 50 are the sure ones; "next" is the first quarter (15).
    (workdir / "priorities.jsonl").write_text(
        "\n".join(
            json.dumps({"comparison_id": p.id, "uncertainty": 0.0 if i < 50 else 1.0}) for i, p in enumerate(pairs)
        )
    )
    effect = finish_score(job, workdir, {})["prioritised"]
    assert effect["uncertainty_next_before"] == 0.0
    assert effect["next"] == 15
    assert effect["uncertainty_next_after"] == round(10 / 15, 4)  # the 10 uncertain ones now lead the queue
    assert effect["uncertainty_all"] == round(10 / 60, 4)


def test_score_needs_a_reward_model_and_something_to_score(tmp_path):
    project = labelled_project(pairs=6)
    model_default()
    with pytest.raises(JobError, match="is a base model, not a reward model"):
        prepare_score(_job(project, "score", model="smollm2-135m-instruct"), tmp_path)
    _registered_reward(tmp_path, project, "rm")
    empty = ProjectFactory(slug="quiet")
    with pytest.raises(JobError, match="nothing to score: project quiet has no response without a score from rm"):
        prepare_score(_job(empty, "score", model="rm"), tmp_path / "q")
    assert Label.objects.filter(comparison__project=empty).count() == 0
