"""Jobs through the API and the pages: who sees what, validation, cancel and retry."""

import pytest
from rest_framework.test import APIClient

from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from training.jobs import job_claim, job_submit
from training.models import Artifact, Job, JobLog, JobMetric, RegisteredModel

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager():
    return MembershipFactory(role="manager", project=ProjectFactory(slug="alpha")).user


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_api_create_names_the_bad_config_key_and_creates_nothing(manager):
    r = api(manager).post("/api/v1/jobs/", {"kind": "generate", "project": "alpha", "config": {"n": 0}}, format="json")
    assert r.status_code == 400
    assert r.json() == {"config": ["n must be between 1 and 16"]}
    r = api(manager).post("/api/v1/jobs/", {"kind": "generate", "project": "alpha", "config": {"nn": 1}}, format="json")
    assert r.json() == {"config": ["unknown config key(s) for generate: nn"]}
    assert not Job.objects.exists()


def test_api_create_queues_a_job_with_defaults_and_its_creator(manager):
    r = api(manager).post("/api/v1/jobs/", {"kind": "noop", "project": "alpha", "config": {"steps": 2}}, format="json")
    assert r.status_code == 201
    body = r.json()
    assert (body["status"], body["config"]["steps"], body["created_by"]) == ("queued", 2, manager.username)


def test_api_detail_carries_metric_series_and_the_log_tail(manager):
    job = job_submit(kind="noop", project=manager.memberships.get().project, config={})
    JobMetric.objects.bulk_create([JobMetric(job=job, attempt=1, step=s, name="loss", value=1 / s) for s in (2, 1, 3)])
    JobLog.objects.create(job=job, attempt=1, line="hello from the child")
    body = api(manager).get(f"/api/v1/jobs/{job.pk}/").json()
    assert body["metrics"] == {"loss": [[1, 1.0], [2, 0.5], [3, 1 / 3]]}
    assert body["log_tail"] == ["hello from the child"]


def test_api_list_filters_only_on_allowed_fields(manager):
    project = manager.memberships.get().project
    job_submit(kind="noop", project=project, config={})
    done = job_submit(kind="noop", project=project, config={})
    Job.objects.filter(pk=done.pk).update(status="succeeded")
    client = api(manager)
    assert [j["id"] for j in client.get("/api/v1/jobs/?status=succeeded").json()["results"]] == [done.pk]
    # A relation walk in the query string is ignored, not obeyed.
    assert len(client.get("/api/v1/jobs/?created_by__password=x").json()["results"]) == 2


def test_api_cancel_of_a_finished_job_is_a_409_with_the_reason(manager):
    job = job_submit(kind="noop", project=manager.memberships.get().project, config={})
    Job.objects.filter(pk=job.pk).update(status="succeeded")
    r = api(manager).post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert r.status_code == 409
    assert "only queued or running jobs can be cancelled" in r.json()["detail"]


def test_jobs_page_lists_jobs_with_progress_and_polls_while_one_runs(client, manager):
    job = job_submit(kind="noop", project=manager.memberships.get().project, config={"steps": 4})
    claimed = job_claim(worker="w")
    Job.objects.filter(pk=claimed.pk).update(progress_current=1, progress_total=4)
    client.force_login(manager)
    page = client.get("/jobs/").content.decode()
    assert f"#{job.pk}</strong> noop" in page
    assert 'value="25"' in page  # the progress bar
    assert 'hx-trigger="every 3s"' in page
    assert ">Jobs</a>" in page  # the top bar link, for people who run projects


def test_annotators_see_no_jobs_and_no_jobs_link(client):
    member = MembershipFactory(role="annotator")
    job_submit(kind="noop", project=member.project, config={})
    client.force_login(member.user)
    page = client.get("/jobs/").content.decode()
    assert "No jobs yet." in page and ">Jobs</a>" not in page
    assert client.get(f"/jobs/{Job.objects.get().pk}/").status_code == 404
    assert client.get("/jobs/new/").status_code == 404


def test_new_job_form_is_generated_from_the_kind_s_config(client, manager):
    client.force_login(manager)
    page = client.get("/jobs/new/").content.decode()
    assert 'name="config_temperatures"' in page and 'value="0.7"' in page
    assert "Responses per prompt from each model at each temperature." in page  # the field's docstring
    partial = client.get("/jobs/new/?kind=noop", headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in partial
    assert 'name="config_step_seconds"' in partial and "config_temperatures" not in partial


def test_new_job_form_offers_no_import_kind(client, manager):
    """An import job needs an uploaded file; it starts from the upload, not from this form."""
    client.force_login(manager)
    page = client.get("/jobs/new/").content.decode()
    assert 'value="generate"' in page and 'value="import"' not in page
    refused = client.post("/jobs/new/", {"kind": "import", "project": "alpha"})
    assert refused.status_code == 200 and not Job.objects.exists()


def test_new_job_form_queues_the_job_and_shows_errors_beside_their_field(client, manager):
    client.force_login(manager)
    bad = client.post("/jobs/new/", {**_generate_defaults(), "kind": "generate", "project": "alpha", "config_n": "0"})
    assert bad.status_code == 200
    assert "n must be between 1 and 16" in bad.content.decode()
    assert not Job.objects.exists()
    ok = client.post(
        "/jobs/new/",
        {**_generate_defaults(), "kind": "generate", "project": "alpha", "config_temperatures": "0.5, 1"},
    )
    job = Job.objects.get()
    assert ok.status_code == 302 and ok["Location"] == f"/jobs/{job.pk}/"
    assert job.config["temperatures"] == [0.5, 1.0] and job.created_by == manager


def _generate_defaults() -> dict:
    return {
        "config_models": "smollm2-135m-instruct",
        "config_prompts": "unlabelled",
        "config_limit": "0",
        "config_n": "2",
        "config_template": "zero_shot",
        "config_k": "2",
        "config_temperatures": "0.7",
        "config_top_p": "0.95",
        "config_max_new_tokens": "64",
        "config_seed": "0",
        "config_batch_size": "8",
        "config_precision": "auto",
        "config_comparisons": "auto",
    }


def test_job_page_polls_only_while_the_job_is_unfinished(client, manager):
    job = job_submit(kind="noop", project=manager.memberships.get().project, config={})
    client.force_login(manager)
    live = client.get(f"/jobs/{job.pk}/", headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in live and 'hx-trigger="every 2s"' in live
    Job.objects.filter(pk=job.pk).update(status="succeeded", result={"steps": 5})
    done = client.get(f"/jobs/{job.pk}/", headers={"HX-Request": "true"}).content.decode()
    assert "hx-trigger" not in done and "Succeeded" in done


def test_cancel_and_retry_buttons(client, manager):
    job = job_submit(kind="noop", project=manager.memberships.get().project, config={})
    client.force_login(manager)
    assert "Cancel job" in client.get(f"/jobs/{job.pk}/").content.decode()
    client.post(f"/jobs/{job.pk}/cancel/")
    job.refresh_from_db()
    assert job.status == "cancelled"
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "Retry" in page and "Cancel job" not in page
    client.post(f"/jobs/{job.pk}/retry/")
    job.refresh_from_db()
    assert job.status == "queued"


def test_staff_see_every_project_s_jobs(client):
    job = job_submit(kind="noop", project=ProjectFactory(), config={})
    client.force_login(UserFactory(is_staff=True))
    assert client.get(f"/jobs/{job.pk}/").status_code == 200


def test_admin_creates_jobs_through_the_same_config_validation(client):
    project = ProjectFactory()
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    form = {
        "kind": "noop",
        "project": project.pk,
        "max_attempts": 3,
        "artifacts-TOTAL_FORMS": 0,
        "artifacts-INITIAL_FORMS": 0,
    }
    bad = client.post("/admin/training/job/add/", {**form, "config": '{"steps": 0}'})
    assert bad.status_code == 200 and "steps must be at least 1" in bad.content.decode()
    assert not Job.objects.exists()
    client.post("/admin/training/job/add/", {**form, "config": '{"steps": 2}'})
    job = Job.objects.get()
    assert (job.status, job.config, job.created_by) == (
        "queued",
        {"steps": 2, "step_seconds": 0.2, "fail": False},
        staff,
    )


def test_job_files_download_and_paths_outside_the_data_directory_do_not(client, manager, settings):
    job = job_submit(kind="noop", project=manager.memberships.get().project, config={})
    folder = settings.JUROR_DATA_DIR / "jobs" / str(job.pk)
    folder.mkdir(parents=True)
    (folder / "generations.jsonl").write_text('{"text": "hi"}\n')
    good = Artifact.objects.create(
        job=job, name="generations", kind="generations", path=f"jobs/{job.pk}/generations.jsonl"
    )
    evil = Artifact.objects.create(job=job, name="evil", kind="x", path="../../../../etc/passwd")
    client.force_login(manager)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert f'href="/jobs/{job.pk}/artifacts/{good.pk}/"' in page
    response = client.get(f"/jobs/{job.pk}/artifacts/{good.pk}/")
    assert response.status_code == 200 and b"".join(response.streaming_content) == b'{"text": "hi"}\n'
    assert client.get(f"/jobs/{job.pk}/artifacts/{evil.pk}/").status_code == 404
    outsider = MembershipFactory(role="annotator", project=job.project).user
    client.force_login(outsider)
    assert client.get(f"/jobs/{job.pk}/artifacts/{good.pk}/").status_code == 404


def test_a_manager_of_another_project_sees_none_of_its_jobs(manager):
    job_submit(kind="noop", project=manager.memberships.get().project, config={})
    other = MembershipFactory(role="manager").user
    assert api(other).get("/api/v1/jobs/").json()["results"] == []


def test_the_project_page_leads_managers_to_a_generation_job_for_that_project(client, manager):
    RegisteredModel.objects.create(name="my-policy", path="models/my-policy")
    client.force_login(manager)
    page = client.get("/projects/alpha/").content.decode()
    assert 'href="/jobs/new/?project=alpha&amp;kind=generate"' in page
    form = client.get("/jobs/new/?project=alpha&kind=generate").content.decode()
    assert '<option value="alpha" selected>' in form
    assert "Registered: my-policy, smollm2-135m-instruct." in form
