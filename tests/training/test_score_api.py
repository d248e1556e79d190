"""POST /api/v1/models/<name>/score/: queues a `score` job for a project's managers, and says which field is
wrong otherwise."""

import pytest
from rest_framework.test import APIClient

from tests.factories import MembershipFactory, ProjectFactory
from tests.training.reward_fixtures import (
    fake_reward_folder,
    manager_of,
)
from training.models import Job
from training.registry import model_default, model_register_trained

pytestmark = pytest.mark.django_db

ITEMS = [
    {"prompt": "Why is the sky blue?", "response": "Rayleigh scattering."},
    {"prompt": [{"role": "user", "content": "2+2?"}], "a": "4", "b": "5"},
]


@pytest.fixture
def project(tmp_path):
    project = ProjectFactory(slug="alpha")
    job = Job.objects.create(kind="reward", project=project, status="succeeded", config={"mode": "features"})
    model_register_trained(
        name="rm",
        folder=fake_reward_folder(tmp_path / "rm"),
        kind="reward",
        parent=None,
        job=job,
        config=job.config,
        metrics={},
        dataset_sha256="",
    )
    return project


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_manager_gets_a_queued_score_job_to_poll(project):
    manager = manager_of(project)
    r = _api(manager).post("/api/v1/models/rm/score/", {"project": "alpha", "items": ITEMS}, format="json")
    assert r.status_code == 202, r.content
    job = Job.objects.get(pk=r.json()["job"])
    assert (job.kind, job.project, job.status, job.created_by) == ("score", project, "queued", manager)
    assert job.config["model"] == "rm" and job.config["responses"] == "none" and job.config["items"] == ITEMS
    assert r.json()["url"].endswith(f"/api/v1/jobs/{job.pk}/") and r["Location"] == r.json()["url"]
    assert _api(manager).get(f"/api/v1/jobs/{job.pk}/").json()["status"] == "queued"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"project": "alpha"}, "items", "required"),
        ({"project": "alpha", "items": []}, "items", "at least 1"),
        ({"project": "alpha", "items": [{"prompt": "x"}] * 1001}, "items", "no more than 1000"),
        ({"project": "alpha", "items": [{"prompt": "x"}]}, "items", "items[0] must be {prompt, response}"),
        ({"project": "alpha", "items": "text"}, "items", "list"),
        ({"items": ITEMS}, "project", "required"),
        ({"project": "alpha", "items": ITEMS, "batch_size": 0}, "batch_size", "greater than or equal to 1"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(project, body, field, message):
    r = _api(manager_of(project)).post("/api/v1/models/rm/score/", body, format="json")
    assert r.status_code == 400
    assert message in " ".join(r.json()[field])
    assert not Job.objects.filter(kind="score").exists()


def test_only_managers_of_that_project_may_queue(project):
    other = manager_of(ProjectFactory(slug="beta"))
    r = _api(other).post("/api/v1/models/rm/score/", {"project": "alpha", "items": ITEMS}, format="json")
    assert r.status_code == 400 and r.json() == {"project": ["No project with this slug that you manage."]}
    annotator = MembershipFactory(project=project).user
    r = _api(annotator).post("/api/v1/models/rm/score/", {"project": "alpha", "items": ITEMS}, format="json")
    assert r.status_code == 404  # annotators see no registry at all
    assert APIClient().post(
        "/api/v1/models/rm/score/", {"project": "alpha", "items": ITEMS}, format="json"
    ).status_code in (
        401,
        403,
    )
    assert not Job.objects.filter(kind="score").exists()


def test_an_unknown_model_is_a_404_and_a_base_model_a_400(project):
    manager = manager_of(project)
    r = _api(manager).post("/api/v1/models/nope/score/", {"project": "alpha", "items": ITEMS}, format="json")
    assert r.status_code == 404 and r["Content-Type"].startswith("application/json")
    model_default()
    r = _api(manager).post(
        "/api/v1/models/smollm2-135m-instruct/score/", {"project": "alpha", "items": ITEMS}, format="json"
    )
    assert r.status_code == 400
    assert r.json() == {"model": ["smollm2-135m-instruct is a base model, not a reward model."]}
