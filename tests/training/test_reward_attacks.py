"""The reward-model kinds attacked as real users and uploaded data would: people who do not run a project, odd
configs (through the API, the form and `submit_job --set`), names and registry paths that point elsewhere, a
finish retried after a crash, projects whose labels make no usable pair, and hostile text on the pages."""

import json

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from feedback.models import Comparison
from tests.factories import MembershipFactory, ProjectFactory, make_pair
from tests.training.reward_fixtures import (
    evaluation_fixture,
    fake_reward_folder,
    finished_reward_eval,
    labelled_project,
    manager_of,
    pair_rows,
)
from training.configs import config_fields
from training.jobs import job_dir, job_submit
from training.kinds.base import JobError
from training.models import Job, RegisteredModel, RewardEvaluation
from training.registry import RegistryError, model_path, model_register_trained, models_root
from training.train_configs import RewardConfig

pytestmark = pytest.mark.django_db


def _api(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def _trained(tmp_path, project, name: str, **config) -> RegisteredModel:
    """A features reward model a finished reward job on `project` registered, with its held-out evaluation."""
    job = Job.objects.create(
        kind="reward", project=project, status="succeeded", config={"mode": "features", "name": name, **config}
    )
    evaluation = evaluation_fixture(list(Comparison.objects.filter(project=project).values_list("id", flat=True)))
    model = model_register_trained(
        name=name,
        folder=fake_reward_folder(tmp_path / f"src-{name}"),
        kind="reward",
        parent=None,
        job=job,
        config=job.config,
        metrics={"accuracy": 0.75, "evaluation": evaluation},
        dataset_sha256="ab" * 32,
    )
    RewardEvaluation.objects.create(
        model=model, project=project, job=job, split="test", n=40, accuracy=0.75, ece=0.08, evaluation=evaluation
    )
    return model


# ---- trust -----------------------------------------------------------------------------------------------


@pytest.fixture
def two_projects(tmp_path):
    """Project A with a trained reward model and a reward_eval job; project B run by someone else."""
    a = labelled_project(slug="alpha", pairs=3)
    b = labelled_project(slug="beta", pairs=3)
    model = _trained(tmp_path, a, "alpha-rm")
    rows = pair_rows(list(Comparison.objects.filter(project=a).order_by("id")))
    check = finished_reward_eval(tmp_path / "eval", a, ["alpha-rm"], rows, {})
    return a, b, model, check


def test_people_who_do_not_run_project_a_see_nothing_of_its_evaluations_jobs_or_scores(client, two_projects):
    a, b, model, check = two_projects
    outsider = manager_of(b)
    annotator = MembershipFactory(project=a).user
    for user in (outsider, annotator):
        client.force_login(user)
        page = client.get("/models/alpha-rm/")
        text = page.content.decode()
        # The outsider sees that the model exists (it may be used on B), never A's figures or quoted texts.
        assert page.status_code == (200 if user is outsider else 404)
        assert "whales" not in text and "annotator:0123456789ab" not in text and "Evaluation on" not in text
        assert client.get(f"/jobs/{check.pk}/").status_code == 404
        assert client.get(f"/jobs/{model.job_id}/").status_code == 404
        assert _api(user).get(f"/api/v1/jobs/{check.pk}/").status_code == 404
        assert "Reward models" not in client.get(f"/projects/{a.slug}/").content.decode()
        body = _api(user).get("/api/v1/models/alpha-rm/")
        if user is outsider:
            assert body.json()["evaluations"] == [] and "evaluation" not in body.json()["metrics"]
        else:
            assert body.status_code == 404 and body["Content-Type"] == "application/json"
    assert _api().get("/api/v1/models/alpha-rm/").status_code in (401, 403)


def test_nobody_queues_a_score_job_on_a_project_they_do_not_manage(two_projects):
    a, b, _, _ = two_projects
    outsider = manager_of(b)
    annotator = MembershipFactory(project=a).user
    body = {"project": "alpha", "items": [{"prompt": "hi", "response": "hello"}]}
    r = _api(outsider).post("/api/v1/models/alpha-rm/score/", body, format="json")
    assert r.status_code == 400 and "project" in r.json()
    r = _api(outsider).post(
        "/api/v1/jobs/", {"kind": "score", "project": "alpha", "config": {"model": "alpha-rm"}}, format="json"
    )
    assert r.status_code == 400 and "project" in r.json()
    assert _api(annotator).post("/api/v1/models/alpha-rm/score/", body, format="json").status_code == 404
    assert _api().post("/api/v1/models/alpha-rm/score/", body, format="json").status_code in (401, 403)
    r = _api(outsider).post("/api/v1/models/no-such-model/score/", body, format="json")
    assert r.status_code == 404 and r["Content-Type"] == "application/json"
    assert not Job.objects.filter(kind="score").exists()


def test_a_reward_eval_job_on_project_b_reads_only_project_b(tmp_path, two_projects):
    from training.kinds.reward import prepare_reward_eval

    a, b, _, _ = two_projects
    job = job_submit(kind="reward_eval", project=b, config={"models": ["alpha-rm"]}, user=manager_of(b))
    inputs = prepare_reward_eval(job, tmp_path / "w")
    rows = [json.loads(line) for line in (tmp_path / "w/data/pairs/train.jsonl").read_text().splitlines()]
    rows += [json.loads(line) for line in (tmp_path / "w/data/pairs/test.jsonl").read_text().splitlines()]
    theirs = set(Comparison.objects.filter(project=b).values_list("id", flat=True))
    assert rows and {r["comparison_id"] for r in rows} <= theirs
    assert inputs["project"] == "beta" and [m["name"] for m in inputs["models"]] == ["alpha-rm"]


# ---- config input ----------------------------------------------------------------------------------------

ODD_REWARD_CONFIGS = [
    ({"__class__": 1}, "__class__"),
    ({"data.__init__": 1}, "data.__init__"),
    ({"lora.": 3}, "lora."),
    ({".r": 3}, "unknown config key"),
    ({"a..b": 1}, "unknown config key"),
    ({"lora.r.x": 1}, "lora.r"),
    ({"data": [1, 2]}, "data"),
    ({"lora": None}, "lora"),
    ({"mode": {"a": 1}}, "mode"),
    ({"lora.r": [1]}, "lora.r"),
    ({"lora.r": 10**30}, "lora.r"),
    ({"lora.r": True}, "lora.r"),
    ({"ensemble": True}, "ensemble"),
    ({"trainer.batch_size": False}, "trainer.batch_size"),
    ({"trainer.epochs": True}, "trainer.epochs"),
    ({"data.margin": 1}, "data.margin"),
    ({"trainer.seed": 2**70}, "trainer.seed"),
    ({"trainer.max_steps": 10**20}, "trainer.max_steps"),
    ({"name": "../x"}, "name"),
    ({"name": "/abs"}, "name"),
    ({"name": "a/b"}, "name"),
    ({"name": "ａｌｐｈａ-rm"}, "name"),  # fullwidth letters: looks like alpha-rm
    ({"name": "аlpha-rm"}, "name"),  # a Cyrillic а
    ({"name": "rm²"}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"name": 5}, "name"),
    ({"data.sources": [{"a": 1}]}, "data.sources"),
]


@pytest.mark.parametrize(("config", "named"), ODD_REWARD_CONFIGS, ids=[repr(c)[:40] for c, _ in ODD_REWARD_CONFIGS])
def test_odd_reward_configs_are_a_400_naming_the_field(config, named):
    project = ProjectFactory(slug="alpha")
    r = _api(manager_of(project)).post(
        "/api/v1/jobs/", {"kind": "reward", "project": "alpha", "config": config}, format="json"
    )
    assert r.status_code == 400, r.content
    assert named in r.json()["config"][0]
    assert not Job.objects.exists()


def test_deep_nesting_nan_and_infinity_in_the_json_body_are_a_400():
    manager = manager_of(ProjectFactory(slug="alpha"))
    deep = '{"kind": "reward", "project": "alpha", "config": {"data": ' + "[" * 5000 + "]" * 5000 + "}}"
    bodies = [
        deep,
        '{"kind": "reward", "project": "alpha", "config": {"trainer.epochs": NaN}}',
        '{"kind": "reward", "project": "alpha", "config": {"data.min_agreement": Infinity}}',
        '{"kind": "reward", "project": "alpha", "config": {"lora.r": -Infinity}}',
    ]
    for body in bodies:
        r = _api(manager).post("/api/v1/jobs/", body, content_type="application/json")
        assert r.status_code == 400, (body[:80], r.content[:200])
    assert not Job.objects.exists()


BAD_ITEMS = [
    [{"prompt": {"nested": ["garbage"]}, "response": "x"}],
    [{"prompt": "hi", "response": 5}],
    [{"prompt": "hi", "response": ["a", "b"]}],
    [{"prompt": "hi", "a": "x", "b": None}],
    [{"prompt": [{"role": "user"}], "response": "x"}],
    [{"prompt": [{"role": "user", "content": {"x": 1}}], "response": "x"}],
    [{"prompt": ["just text in a list"], "response": "x"}],
    [{"prompt": 7, "response": "x"}],
    [{"prompt": "hi", "response": "x" * 200_001}],
]


@pytest.mark.parametrize("items", BAD_ITEMS, ids=range(len(BAD_ITEMS)))
def test_score_items_the_child_could_not_read_are_a_400_naming_the_item(tmp_path, items):
    project = ProjectFactory(slug="alpha")
    _trained(tmp_path, project, "alpha-rm")
    r = _api(manager_of(project)).post(
        "/api/v1/models/alpha-rm/score/", {"project": "alpha", "items": items}, format="json"
    )
    assert r.status_code == 400, r.content
    assert "items[0]" in json.dumps(r.json())
    assert not Job.objects.filter(kind="score").exists()


def test_good_score_items_still_queue(tmp_path):
    project = ProjectFactory(slug="alpha")
    _trained(tmp_path, project, "alpha-rm")
    items = [
        {"prompt": "hi", "response": "hello"},
        {"prompt": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"}], "a": "4", "b": ""},
    ]
    r = _api(manager_of(project)).post(
        "/api/v1/models/alpha-rm/score/", {"project": "alpha", "items": items}, format="json"
    )
    assert r.status_code == 202, r.content


def test_a_ten_megabyte_score_request_is_a_413_json_not_a_500(tmp_path):
    project = ProjectFactory(slug="alpha")
    _trained(tmp_path, project, "alpha-rm")
    body = json.dumps({"project": "alpha", "items": [{"prompt": "hi", "response": "x" * (10 * 1024 * 1024)}]})
    r = _api(manager_of(project)).post("/api/v1/models/alpha-rm/score/", body, content_type="application/json")
    assert r.status_code == 413 and "detail" in r.json()


@pytest.mark.parametrize(
    ("sets", "named"),
    [
        (["lora.=3"], "lora."),
        ([".r=3"], "unknown config key"),
        (["a..b=1"], "unknown config key"),
        (["lora.r=true"], "lora.r"),
        (["lora.r=NaN"], "lora.r"),
        (["trainer.epochs=Infinity"], "trainer.epochs"),
        (["data=[1]"], "data"),
        (["name=../x"], "name"),
        (["trainer.seed=1e400"], "trainer.seed"),
    ],
)
def test_submit_job_set_with_odd_keys_is_a_command_error_naming_the_field(sets, named):
    ProjectFactory(slug="alpha")
    args = [x for s in sets for x in ("--set", s)]
    with pytest.raises(CommandError, match=named.replace(".", r"\.")):
        call_command("submit_job", "reward", "--project", "alpha", *args)
    assert not Job.objects.exists()


def test_the_form_names_the_field_of_an_odd_value(client):
    project = ProjectFactory(slug="alpha")
    client.force_login(manager_of(project))
    base = {"kind": "reward", "project": "alpha"}
    for spec in config_fields(RewardConfig):  # every field at its default, as the browser sends the form
        if isinstance(spec.default, bool):
            if spec.default:
                base[f"config_{spec.name}"] = "on"
        elif isinstance(spec.default, tuple):
            base[f"config_{spec.name}"] = ", ".join(map(str, spec.default))
        else:
            base[f"config_{spec.name}"] = spec.default
    assert client.post("/jobs/new/?kind=reward", {**base, "config_name": "fine"}).status_code == 302
    Job.objects.all().delete()
    for field, value in [
        ("config_lora.r", "nan"),
        ("config_trainer.epochs", "inf"),
        ("config_trainer.seed", "99999999999999999999999"),
        ("config_name", "../../etc"),
        ("config_name", "ａｌｐｈａ"),
    ]:
        r = client.post("/jobs/new/?kind=reward", {**base, field: value})
        assert r.status_code == 200, (field, value, r.status_code)
        assert r.context["form"].errors.get(field), (field, value, r.context["form"].errors)
    assert not Job.objects.exists()


# ---- paths and the registry --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/etc", "../outside", "models/../../outside", ""])
def test_a_registry_row_pointing_outside_the_data_dir_is_refused_before_any_job_loads_it(tmp_path, path):
    from training.kinds.reward import prepare_reward_eval, prepare_score

    project = labelled_project(slug="alpha", pairs=3)
    model = _trained(tmp_path, project, "alpha-rm")
    RegisteredModel.objects.filter(pk=model.pk).update(path=path)  # an edit by hand, in the database
    model.refresh_from_db()
    with pytest.raises(RegistryError, match="outside the data directory"):
        model_path(model)
    for kind, prepare, config in [
        ("reward_eval", prepare_reward_eval, {"models": ["alpha-rm"]}),
        ("score", prepare_score, {"model": "alpha-rm", "responses": "all"}),
    ]:
        job = job_submit(kind=kind, project=project, config=config)
        with pytest.raises(JobError, match="outside the data directory"):
            prepare(job, tmp_path / f"w-{kind}")


@pytest.mark.parametrize("name", ["abc\n", "abc\r\n", "ａｂｃ", "../abc", ""])
def test_the_registry_refuses_a_name_with_a_trailing_newline_or_look_alikes(tmp_path, name):
    project = ProjectFactory(slug="alpha")
    job = Job.objects.create(kind="reward", project=project, status="running", config={})
    with pytest.raises(RegistryError, match="not a usable name"):
        model_register_trained(
            name=name,
            folder=fake_reward_folder(tmp_path / "m"),
            kind="reward",
            parent=None,
            job=job,
            config={},
            metrics={},
            dataset_sha256="",
        )
    assert _models_on_disk() == set() and not RegisteredModel.objects.exists()


def _reward_job_that_ran(tmp_path, project, **config) -> tuple[Job, object]:
    """A reward job whose child 'ran': prepare()'s inputs.json, a model folder and its evaluation.json."""
    from training.kinds.reward import prepare_reward

    job = job_submit(kind="reward", project=project, config={"mode": "features", **config})
    workdir = job_dir(job)
    (workdir / "inputs.json").parent.mkdir(parents=True, exist_ok=True)
    (workdir / "inputs.json").write_text(json.dumps(prepare_reward(job, workdir)))
    fake_reward_folder(workdir / "model")
    ids = list(Comparison.objects.filter(project=project).values_list("id", flat=True))
    (workdir / "evaluation.json").write_text(json.dumps(evaluation_fixture(ids)))
    return job, workdir


RESULT = {"mode": "features", "train_pairs": 9, "test_pairs": 3, "accuracy": 0.75, "ece": 0.083}


def _models_on_disk() -> set[str]:
    root = models_root()
    return {p.name for p in root.iterdir()} if root.exists() else set()


def test_a_finish_rolled_back_after_the_move_then_retrained_registers_once_and_leaves_no_orphan(tmp_path):
    """The worker dies (or job_succeed fails) after finish moved the folder under models/ and before the commit:
    the next attempt trains again and writes a new workdir/model; its finish must take the name, not fail on
    "already exists" and leave the first folder behind with no row."""
    from django.db import transaction

    from training.kinds.reward import finish_reward

    project = labelled_project(slug="alpha", pairs=6)
    job, workdir = _reward_job_that_ran(tmp_path, project, name="again")

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        finish_reward(job, workdir, RESULT)
        raise Boom
    assert not RegisteredModel.objects.exists() and _models_on_disk() == {"again"}
    fake_reward_folder(workdir / "model", dim=4)  # the next attempt's child trained again
    assert finish_reward(job, workdir, RESULT)["model"] == "again"
    model = RegisteredModel.objects.get()
    assert model.name == "again" and model.parameter_count == 5  # the new folder's weights (4 + bias)
    assert _models_on_disk() == {"again"} and not (workdir / "model").exists()
    assert RewardEvaluation.objects.filter(model=model).count() == 1


def test_two_jobs_that_want_one_name_the_second_fails_clearly_and_the_first_model_stays(tmp_path):
    from training.kinds.reward import finish_reward

    project = labelled_project(slug="alpha", pairs=6)
    first, first_dir = _reward_job_that_ran(tmp_path, project, name="shared")
    second, second_dir = _reward_job_that_ran(tmp_path, project, name="shared")  # both passed prepare
    finish_reward(first, first_dir, RESULT)
    with pytest.raises(JobError, match="already registered"):
        finish_reward(second, second_dir, RESULT)
    model = RegisteredModel.objects.get()
    assert model.job == first and _models_on_disk() == {"shared"}
    assert json.loads((model_path(model) / "juror_provenance.json").read_text())["job"] == first.pk
    assert RewardEvaluation.objects.filter(model=model, job=first).count() == 1
    # A third job asking for the name again is refused before it trains.
    third = job_submit(kind="reward", project=project, config={"name": "shared"})
    from training.kinds.reward import prepare_reward

    with pytest.raises(JobError, match="already registered"):
        prepare_reward(third, tmp_path / "third")


def test_a_stale_folder_of_another_project_s_job_with_the_same_id_is_not_taken(tmp_path):
    """A data directory kept across a database reset: models/<name> written by an old job #N of another project
    is not this job's, whatever its id."""
    from training.kinds.reward import finish_reward

    project = labelled_project(slug="alpha", pairs=6)
    job, workdir = _reward_job_that_ran(tmp_path, project, name="stale")
    old = fake_reward_folder(models_root() / "stale")
    (old / "juror_provenance.json").write_text(json.dumps({"job": job.pk, "project": "long-gone"}))
    with pytest.raises(JobError, match="already exists"):
        finish_reward(job, workdir, RESULT)
    assert (old / "classifier.safetensors").exists() and not RegisteredModel.objects.exists()


# ---- hostile text on the pages ---------------------------------------------------------------------------

PAYLOADS = [
    "<script>alert(1)</script>",
    '<svg onload="alert(2)">',
    '<div hx-get="/api/v1/jobs/" hx-trigger="load">x</div>',
    '"><img src=x onerror=alert(3)>',
    "[click](javascript:alert(4))",
    "</textarea></details><script>alert(5)</script>",
]


def test_hostile_texts_in_an_evaluation_are_quoted_on_the_model_page(client, tmp_path):
    project = labelled_project(slug="alpha", pairs=3)
    model = _trained(tmp_path, project, "alpha-rm")
    row = RewardEvaluation.objects.get(model=model)
    evaluation = row.evaluation
    evaluation["disagreements"] = [
        {**evaluation["disagreements"][0], "prompt": p, "chosen": p + "\n" + "y" * 5000, "rejected": p}
        | {"chosen_model": p, "rejected_model": p}
        for p in PAYLOADS
    ]
    evaluation["by_segment"]["groups"][0]["value"] = PAYLOADS[1]
    evaluation["annotators"][0]["segment"] = PAYLOADS[3]
    RewardEvaluation.objects.filter(pk=row.pk).update(evaluation=evaluation)
    client.force_login(manager_of(project))
    page = client.get("/models/alpha-rm/").content.decode()
    for payload in PAYLOADS:
        if "<" in payload or '"' in payload:
            assert payload not in page, payload
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="javascript:' not in page and "<svg" not in page and 'hx-get="/api/v1/jobs/"' not in page
    assert page.count("<details hx-disable>") == len(PAYLOADS)


def test_a_prefill_link_with_markup_is_quoted_in_the_form(client):
    project = ProjectFactory(slug="alpha")
    client.force_login(manager_of(project))
    evil = '"><script>alert(1)</script>'
    page = client.get(
        "/jobs/new/",
        {"kind": "reward", "project": "alpha", "config_name": evil, "config_lora.r": "1e999", "config_mode": evil},
    )
    assert page.status_code == 200
    text = page.content.decode()
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert client.get("/jobs/new/", {"kind": "__class__"}).status_code == 200


# ---- projects whose labels make no usable pair -------------------------------------------------------------


def _run_inline(job: Job) -> Job:
    from training.worker import Worker

    assert Worker(name="inline").run(once=True) == 1
    job.refresh_from_db()
    return job


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("make", "config", "reason"),
    [
        (lambda: _unlabelled("alpha"), {}, "has no labels yet"),
        (lambda: labelled_project(slug="alpha", pairs=4, votes=("tie", "tie", "tie")), {}, "ties (ties=exclude)"),
        (lambda: labelled_project(slug="alpha", pairs=4, votes=("both_bad",) * 3), {}, "both bad"),
        (lambda: labelled_project(slug="alpha", pairs=6), {"data.test_fraction": 0.999}, "all fell in the other split"),
        (lambda: labelled_project(slug="alpha", pairs=3), {"data.min_labels": 4}, "fewer than min_labels=4"),
        (lambda: labelled_project(slug="alpha", pairs=3), {"data.segment": "audience=alien"}, "label filters"),
    ],
    ids=["no-labels", "only-ties", "only-both-bad", "all-in-test", "too-few-labels", "empty-segment"],
)
def test_a_reward_job_without_usable_pairs_fails_at_once_with_the_reason(make, config, reason):
    project = make()
    job = _run_inline(job_submit(kind="reward", project=project, config={"mode": "features", **config}))
    assert job.status == "failed" and reason in job.error, job.error
    assert job.attempt == 1 and job.failed_attempts <= 1  # no retry spent on what no retry can fix
    assert not RegisteredModel.objects.exists() and _models_on_disk() == set()


def _unlabelled(slug: str):
    project = ProjectFactory(slug=slug)
    for _ in range(3):
        make_pair(project)
    return project


@pytest.mark.django_db(transaction=True)
def test_a_reward_eval_on_a_project_without_pairs_fails_at_once_and_keeps_earlier_evaluations(tmp_path):
    trained_on = labelled_project(slug="alpha", pairs=3)
    model = _trained(tmp_path, trained_on, "alpha-rm")
    empty = _unlabelled("beta")
    job = _run_inline(job_submit(kind="reward_eval", project=empty, config={"models": ["alpha-rm"]}))
    assert job.status == "failed" and "has no labels yet" in job.error and job.attempt == 1
    assert RewardEvaluation.objects.filter(model=model).count() == 1 and model_path(model).is_dir()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"model.base": "alpha-rm", "mode": "lora"}, "a reward model is built on a base model"),
        ({"model.base": "nothing-here", "mode": "lora"}, "no registered model called 'nothing-here'"),
    ],
)
def test_a_reward_job_on_a_base_that_is_no_base_model_fails_at_once(tmp_path, config, reason):
    project = labelled_project(slug="alpha", pairs=3)
    _trained(tmp_path, project, "alpha-rm")
    job = _run_inline(job_submit(kind="reward", project=project, config=config))
    assert job.status == "failed" and reason in job.error and job.attempt == 1, job.error


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("kind", "config", "reason"),
    [
        ("reward_eval", {"models": ["smollm2-135m-instruct"]}, "not a reward model"),
        ("reward_eval", {"models": ["nothing-here"]}, "no registered model called"),
        ("score", {"model": "alpha-rm", "prioritise": "ensemble", "responses": "none"}, "no ensemble"),
        ("score", {"model": "smollm2-135m-instruct"}, "not a reward model"),
    ],
)
def test_eval_and_score_jobs_on_the_wrong_models_fail_at_once(tmp_path, kind, config, reason):
    project = labelled_project(slug="alpha", pairs=3)
    _trained(tmp_path, project, "alpha-rm")
    job = _run_inline(job_submit(kind=kind, project=project, config=config))
    assert job.status == "failed" and reason in job.error and job.attempt == 1, job.error


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
@pytest.mark.model
def test_a_project_with_one_pair_trains_or_fails_clearly_never_crashes():
    project = labelled_project(slug="alpha", pairs=1)
    config = {"mode": "features", "data.test_fraction": 0.0, "eval.bootstrap": 20}
    job = _run_inline(job_submit(kind="reward", project=project, config=config))
    assert job.attempt == 1, job.error
    if job.status == "succeeded":  # the pair fell in the training split: a model without held-out figures
        model = RegisteredModel.objects.get(job=job)
        assert job.result["accuracy"] is None
        assert job.result["train_pairs"] == 1 and job.result["test_pairs"] == 0
        assert model_path(model).is_dir() and _models_on_disk() == {model.name}
    else:
        assert "Traceback" not in job.error and job.error, job.error


# ---- a worker killed mid reward job ------------------------------------------------------------------------


def _registry_consistent() -> None:
    """Every row has its folder and every folder under models/ a row; nothing half-written is left there."""
    on_disk = _models_on_disk()
    rows = {m.path.split("/", 1)[1] for m in RegisteredModel.objects.exclude(name="smollm2-135m-instruct")}
    assert on_disk == rows, (on_disk, rows)
    for model in RegisteredModel.objects.exclude(name="smollm2-135m-instruct"):
        assert any(model_path(model).glob("*.safetensors")), model.name


def _status(job: Job) -> str:
    job.refresh_from_db()
    return job.status


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
@pytest.mark.model
def test_sigkill_mid_features_job_then_rescue_registers_once_and_keeps_earlier_models(tmp_path, workers):
    import signal

    from tests.training.workers import wait_for

    project = labelled_project(slug="alpha", pairs=24)
    earlier = _trained(tmp_path, project, "earlier-rm")
    job = job_submit(kind="reward", project=project, config={"mode": "features", "eval.bootstrap": 20})
    doomed = workers.start(name="doomed")
    wait_for(lambda: (job_dir(job) / "inputs.json").exists(), timeout=120, what="the job to be prepared")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=10)
    _registry_consistent()
    workers.start(name="rescuer")
    wait_for(lambda: _status(job) in ("succeeded", "failed"), timeout=300, what="the rescued job to end")
    assert job.status == "succeeded", job.error
    assert RegisteredModel.objects.filter(job=job).count() == 1
    _registry_consistent()
    assert RewardEvaluation.objects.filter(model=earlier).count() == 1 and model_path(earlier).is_dir()
    # The job's folder keeps no model copy: it moved under models/.
    assert not (job_dir(job) / "model").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
@pytest.mark.model
def test_sigkill_mid_lora_job_then_rescue_leaves_no_half_registered_model(tmp_path, workers):
    import signal

    from tests.training.checkpoints import tiny_checkpoint
    from tests.training.workers import wait_for
    from training.ml.trainer_callback import last_complete_checkpoint
    from training.registry import model_register

    model_register(name="tiny-base", source=str(tiny_checkpoint(tmp_path / "tiny-src")))
    project = labelled_project(slug="alpha", pairs=12)
    config = {
        "mode": "lora",
        "model.base": "tiny-base",
        "model.max_length": 64,
        "lora.r": 4,
        "trainer.batch_size": 2,
        "trainer.save_steps": 3,
        "trainer.max_steps": 24,
        "eval.bootstrap": 20,
    }
    job = job_submit(kind="reward", project=project, config=config)
    doomed = workers.start(name="doomed")
    wait_for(
        lambda: last_complete_checkpoint(job_dir(job) / "checkpoint", discard_incomplete=False),
        timeout=180,
        what="a complete checkpoint",
    )
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=10)
    _registry_consistent()
    workers.start(name="rescuer")
    wait_for(lambda: _status(job) in ("succeeded", "failed"), timeout=300, what="the rescued job to end")
    assert job.status == "succeeded", job.error
    model = RegisteredModel.objects.get(job=job)
    assert model.parent.name == "tiny-base" and (model_path(model) / "adapter_config.json").exists()
    _registry_consistent()


def test_submit_job_refuses_a_set_value_that_nests_too_deeply():
    from django.core.management.base import CommandError

    from training.management.commands.submit_job import parse_set

    with pytest.raises(CommandError, match="nests too deeply"):
        parse_set(["data.sources=" + "[" * 100_000])
