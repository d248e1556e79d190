"""The model pages, the project page's reward-model section and the registry API: what a project's managers
see of a reward model, and what people who do not run that project do not."""

import json

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from feedback.models import Comparison
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from tests.training.reward_fixtures import (
    evaluation_fixture,
    fake_reward_folder,
    labelled_project,
    manager_of,
)
from training.models import Job, RegisteredModel, RewardEvaluation
from training.registry import model_default, model_register_trained

pytestmark = pytest.mark.django_db


def _reward_model(tmp_path, project, name, *, accuracy=0.75, mode="features"):
    """A reward model as a finished reward job leaves it (no catalog needed: the job row is made directly)."""
    job = Job.objects.create(kind="reward", project=project, status="succeeded", config={"mode": mode, "name": name})
    evaluation = evaluation_fixture(list(Comparison.objects.filter(project=project).values_list("id", flat=True)))
    evaluation["accuracy"] = accuracy
    model = model_register_trained(
        name=name,
        folder=fake_reward_folder(tmp_path / name),
        kind="reward",
        parent=model_default() if mode != "features" else None,
        job=job,
        config=job.config,
        metrics={"accuracy": accuracy, "train_pairs": 30, "evaluation": evaluation},
        dataset_sha256="ab" * 32,
    )
    RewardEvaluation.objects.create(
        model=model, project=project, job=job, split="test", n=40, accuracy=accuracy, ece=0.083, evaluation=evaluation
    )
    return model


@pytest.fixture
def setup(tmp_path):
    project = labelled_project(pairs=3)
    manager = manager_of(project)
    model = _reward_model(tmp_path, project, "kids-rm")
    _reward_model(tmp_path, project, "kids-lora", accuracy=0.61, mode="lora")
    return project, manager, model


def test_the_model_page_shows_provenance_evaluation_and_the_projects_other_reward_models(client, setup):
    project, manager, model = setup
    client.force_login(manager)
    page = client.get("/models/kids-rm/").content.decode()
    assert f'href="/jobs/{model.job_id}/"' in page and "ab" * 32 in page
    assert "Evaluation on Kids" in page and "75.0%" in page and "95% CI 63.0–85.0%" in page
    assert "0.08" in page  # ECE
    charts = json.loads(_attr(page, "data-reward-charts"))
    assert charts["scores"]["chosen"][0] == 0.9 and len(charts["reliability"]) == 5
    assert "unanimous" in page and "child" in page and "annotator:ba9876543210" in page
    # The confidently-wrong list quotes answers as text, never as markup.
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.index('href="/models/kids-rm/"') < page.index('href="/models/kids-lora/"')  # best first
    assert "reward_charts.js" in page and "chart.umd.min.js" in page


def test_a_lora_reward_model_links_its_base(client, setup):
    project, manager, _ = setup
    client.force_login(manager)
    page = client.get("/models/kids-lora/").content.decode()
    assert 'href="/models/smollm2-135m-instruct/"' in page
    assert "kids-lora" in client.get("/models/smollm2-135m-instruct/").content.decode()  # "Built on it"


def test_staff_get_the_admin_page_of_each_confidently_wrong_pair(client, setup):
    project, _, _ = setup
    first = Comparison.objects.filter(project=project).order_by("id").first()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get("/models/kids-rm/").content.decode()
    assert f'href="/admin/feedback/comparison/{first.id}/change/"' in page


def test_another_projects_manager_sees_the_model_but_not_its_evaluation(client, setup):
    _, _, model = setup
    outsider = manager_of(ProjectFactory(slug="elsewhere"))
    client.force_login(outsider)
    page = client.get("/models/kids-rm/").content.decode()
    assert "kids-rm" in page and "Evaluation on" not in page and "whales" not in page
    assert f'href="/jobs/{model.job_id}/"' not in page
    body = _api(outsider).get("/api/v1/models/kids-rm/").json()
    assert body["evaluations"] == [] and body["metrics"] == {}  # measured on another project's labels
    assert body["provenance"] == {"job": model.job_id, "project": "kids", "dataset_sha256": "ab" * 32}


def test_annotators_have_no_model_pages(client, setup):
    project, _, _ = setup
    annotator = MembershipFactory(project=project).user
    client.force_login(annotator)
    assert client.get("/models/").status_code == 404
    assert client.get("/models/kids-rm/").status_code == 404
    assert _api(annotator).get("/api/v1/models/kids-rm/").status_code == 404


def test_the_models_list_links_every_model(client, setup):
    _, manager, _ = setup
    client.force_login(manager)
    page = client.get("/models/").content.decode()
    for name in ("kids-rm", "kids-lora", "smollm2-135m-instruct"):
        assert f'href="/models/{name}/"' in page
    assert "75.0%" in page


def test_the_api_returns_provenance_and_the_evaluation_to_the_projects_managers(setup):
    _, manager, model = setup
    body = _api(manager).get("/api/v1/models/kids-rm/").json()
    assert body["dataset_sha256"] == "ab" * 32 and body["config"]["mode"] == "features"
    assert body["metrics"]["evaluation"]["accuracy"] == 0.75
    [evaluation] = body["evaluations"]
    assert (evaluation["project"], evaluation["split"], evaluation["accuracy"]) == ("kids", "test", 0.75)
    assert evaluation["accuracy_ci"] == [0.63, 0.85] and evaluation["evaluation"]["by_agreement"]


def test_the_project_page_offers_training_and_lists_the_reward_models(client, setup):
    project, manager, _ = setup
    client.force_login(manager)
    page = client.get("/projects/kids/").content.decode()
    assert 'href="/jobs/new/?kind=reward&amp;project=kids">Train reward model</a>' in page
    assert 'href="/jobs/new/?kind=dpo&amp;project=kids">Train policy</a>' in page
    assert page.index("kids-rm") < page.index("kids-lora") and "75.0%" in page and "61.0%" in page
    assert "Active learning" not in page
    annotator = MembershipFactory(project=project).user
    client.force_login(annotator)
    page = client.get("/projects/kids/").content.decode()
    assert "Train reward model" not in page and "kids-rm" not in page


def test_the_project_page_shows_the_effect_of_the_last_prioritising_score_job(client, setup):
    project, manager, _ = setup
    Job.objects.create(
        kind="score",
        project=project,
        status="succeeded",
        finished_at=timezone.now(),
        result={
            "scored": 12,
            "prioritised": {
                "model": "kids-rm",
                "pairs": 120,
                "changed": 118,
                "next": 50,
                "uncertainty_all": 0.41,
                "uncertainty_next_before": 0.4,
                "uncertainty_next_after": 0.87,
            },
        },
    )
    client.force_login(manager)
    page = client.get("/projects/kids/").content.decode()
    assert "Active learning" in page and "ranked 120 unlabelled pairs" in page and "118 priorities changed" in page
    assert "0.87" in page and "was 0.40 before" in page and "0.41" in page


def test_a_project_without_reward_models_invites_training_one(client):
    project = ProjectFactory(slug="fresh")
    client.force_login(manager_of(project))
    page = client.get("/projects/fresh/").content.decode()
    assert "Reward models" in page and "None yet." in page
    assert not RegisteredModel.objects.exists()


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _attr(page: str, name: str) -> str:
    import html

    start = page.index(f'{name}="') + len(name) + 2
    return html.unescape(page[start : page.index('"', start)])
