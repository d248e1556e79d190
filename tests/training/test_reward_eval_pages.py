"""A reward_eval job's result and pages: the table of models and, for two reward models trained on different
audiences, where they disagree (job page and model page); the new-job form opened from a model page."""

import json

import pytest

from feedback.models import Comparison
from tests.factories import MembershipFactory, UserFactory
from tests.training.reward_fixtures import (
    evaluation_fixture,
    labelled_project,
    manager_of,
    pair_rows,
    segment_reward_model,
)
from training.jobs import job_submit
from training.kinds.reward import MAX_PAIR_ITEMS, finish_reward_eval, prepare_reward_eval
from training.models import Job, RewardEvaluation
from training.reward.evaluation import compare
from training.views import _figure

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished(tmp_path):
    """A reward_eval job with a child-trained and an adult-trained model, finished from an evaluation.json in
    the child's real shape (compare() on rows where the two prefer opposite answers on 30 of 40 pairs)."""
    project = labelled_project(pairs=40)
    child = segment_reward_model(tmp_path, project, "kids-child", "audience=child")
    adult = segment_reward_model(tmp_path, project, "kids-adult", "audience=adult")
    job = job_submit(kind="reward_eval", project=project, config={"models": [child.name, adult.name]})
    workdir = tmp_path / "eval"
    workdir.mkdir()
    (workdir / "inputs.json").write_text(json.dumps(prepare_reward_eval(job, workdir)))
    rows = pair_rows(list(Comparison.objects.filter(project=project).order_by("id")))
    child_gap = [2.0 + i / 10 for i in range(40)]  # always prefers the chosen answer
    adult_gap = [-1.0 - i / 10 if i < 30 else 1.0 for i in range(40)]  # the other one on the first 30
    scores = {
        child.name: (child_gap, [0.0] * 40),
        adult.name: (adult_gap, [0.0] * 40),
    }
    comparison = compare(rows, scores, top=40)
    assert len(comparison["pairs"][0]["items"]) == 30 > MAX_PAIR_ITEMS
    ids = [r["comparison_id"] for r in rows]
    written = {
        "split": "all",
        "models": {
            child.name: evaluation_fixture(ids, accuracy=0.9),
            adult.name: evaluation_fixture(ids, accuracy=0.25),
        },
        "comparison": comparison,
    }
    (workdir / "evaluation.json").write_text(json.dumps(written))
    child_result = {name: {"accuracy": e["accuracy"], "n": e["n"]} for name, e in written["models"].items()}
    result = finish_reward_eval(job, workdir, child_result)
    Job.objects.filter(pk=job.pk).update(status="succeeded", result=result)
    job.refresh_from_db()
    return project, job, child, adult, rows


def test_finish_reward_eval_keeps_the_models_table_and_the_child_s_disagreement_pairs(finished):
    project, job, child, adult, rows = finished
    result = job.result
    assert "comparison" not in result and child.name not in result  # the table holds the headline figures
    assert [(r["model"], r["accuracy"], r["segment"], r["mode"]) for r in result["models_table"]] == [
        ("kids-child", 0.9, "audience=child", "features"),
        ("kids-adult", 0.25, "audience=adult", "features"),
    ]
    (pair,) = result["disagreement"]["pairs"]
    assert pair["models"] == ["kids-child", "kids-adult"]
    assert pair["disagreement"] == pytest.approx(0.75) and pair["n"] == 40
    assert pair["spearman"] is not None
    # The largest gaps first, capped for job.result; each item keeps both models' P(chosen).
    assert len(pair["items"]) == MAX_PAIR_ITEMS
    assert pair["items"][0]["comparison_id"] == rows[29]["comparison_id"]
    assert set(pair["items"][0]["p_chosen"]) == {"kids-child", "kids-adult"}
    assert RewardEvaluation.objects.filter(job=job).count() == 2


def test_the_reward_eval_job_page_shows_the_models_and_where_they_disagree(client, finished):
    project, job, child, adult, rows = finished
    client.force_login(manager_of(project))
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    table = page[page.index('class="table jobs compare models-table"') :]
    assert table.index('href="/models/kids-child/"') < table.index('href="/models/kids-adult/"')  # best first
    assert "90.0%" in page and "25.0%" in page and "audience=child" in page and "audience=adult" in page
    assert "Disagree on" in page and "75%" in page and "of 40 pairs" in page
    items = page[page.index('class="table disagreements model-disagreements"') :]
    assert items.count("<details hx-disable>") == MAX_PAIR_ITEMS
    assert f"#{rows[29]['comparison_id']}" in items
    assert "kids-adult prefers it" in items and "kids-child prefers it" in items
    # Untrusted text is quoted, never markup; no result dict is dumped as text.
    assert "<script>alert(" not in page and "&lt;script&gt;alert(29)&lt;/script&gt;" in page
    assert "&lt;b&gt;#29&lt;/b&gt;" in page
    assert "p_chosen" not in page and "models table" not in page and "{&#x27;" not in page


def test_staff_get_the_admin_page_of_each_pair_the_models_disagree_on(client, finished):
    _, job, _, _, rows = finished
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert f'href="/admin/feedback/comparison/{rows[29]["comparison_id"]}/change/"' in page


def test_a_model_page_lists_the_reward_eval_jobs_it_was_compared_in(client, finished):
    project, job, child, adult, _ = finished
    client.force_login(manager_of(project))
    page = client.get("/models/kids-child/").content.decode()
    assert f'href="/jobs/{job.pk}/"' in page
    assert "Compared with:" in page and 'href="/models/kids-adult/"' in page
    assert "disagree on <strong>75%</strong> of 40 pairs" in page
    # Another project's manager does not learn about this project's evaluation jobs.
    outsider = MembershipFactory(role="manager").user
    client.force_login(outsider)
    assert "Compared with:" not in client.get("/models/kids-child/").content.decode()


def test_the_model_page_buttons_open_the_form_with_the_model_filled_in(client, finished):
    project, _, child, _, _ = finished
    client.force_login(manager_of(project))
    page = client.get("/models/kids-child/").content.decode()
    assert f"?kind=reward_eval&amp;project={project.slug}&amp;config_models=kids-child" in page
    assert f"?kind=score&amp;project={project.slug}&amp;config_model=kids-child" in page
    form = client.get(f"/jobs/new/?kind=score&project={project.slug}&config_model=kids-child").content.decode()
    assert 'name="config_model" value="kids-child"' in form
    form = client.get(
        f"/jobs/new/?kind=reward_eval&project={project.slug}&config_models=kids-child&config_models=kids-adult"
    ).content.decode()
    assert 'name="config_models" value="kids-child, kids-adult"' in form
    assert f'<option value="{project.slug}" selected>' in form


def test_query_string_prefill_takes_nested_settings_and_ignores_what_does_not_parse(client, finished):
    project, *_ = finished
    client.force_login(manager_of(project))
    form = client.get(
        f"/jobs/new/?kind=reward&project={project.slug}&config_mode=lora&config_lora.r=4"
        "&config_trainer.epochs=many&config_nonsense=1&config_mode=nope"
    ).content.decode()
    assert 'name="config_lora.r" value="4"' in form
    assert '<option value="nope"' not in form  # not a mode: the default stays selected
    assert "nonsense" not in form


def test_other_kinds_results_stay_readable():
    assert _figure({"prompts": 200, "labels": 0}) == "prompts: 200, labels: 0"
    assert _figure(["row 3: bad", "row 7: bad"]) == "row 3: bad\nrow 7: bad"
    assert _figure([0.5, 0.75]) == "0.5, 0.75"
    assert _figure({"ece": 0.02581332436726383, "seconds": 480.85}) == "ece: 0.02581, seconds: 480.9"
    nested = _figure({"model": "rm", "pairs": [{"a": 1}, {"a": 2}], "figures": {"x": {"y": 1}}})
    assert nested == "model: rm, pairs: 2 items, figures: 1 entries"
