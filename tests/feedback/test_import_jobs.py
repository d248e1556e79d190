"""Large uploads are imported by an `import` job (202 and the job's URL at once); small ones in the request (201).
The import is atomic whatever happens to the job, and its result does not depend on how its rows were chunked."""

import io
import json
from pathlib import Path

import pytest
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from feedback.imports.service import data_import
from feedback.models import Comparison, Label, Prompt, RankingItem, Response
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from tests.training.workers import Workers, wait_for
from training.configs import ConfigError
from training.jobs import job_cancel, job_submit
from training.models import Job
from training.worker import Worker

from .files import write_rows

pytestmark = pytest.mark.django_db(transaction=True)  # the job's child is another process: it sees only commits

THRESHOLD = 4096


@pytest.fixture(autouse=True)
def _small_threshold(settings):
    settings.JUROR_IMPORT_SYNC_MAX_BYTES = THRESHOLD
    settings.JUROR_JOB_HEARTBEAT_SECONDS = 0.3


@pytest.fixture
def workers(tmp_path):
    pool = Workers(tmp_path)
    yield pool
    pool.stop_all()


def manager_client(project) -> APIClient:
    client = APIClient()
    client.force_authenticate(MembershipFactory(project=project, role="manager").user)
    return client


def named(name: str, body: bytes) -> io.BytesIO:
    f = io.BytesIO(body)
    f.name = name
    return f


def responses_file(n_rows: int, *, bad_line: int | None = None) -> bytes:
    """n_rows responses, two per prompt (models m0 and m1); line `bad_line` has an empty response."""
    lines = []
    for i in range(n_rows):
        response = "" if i + 1 == bad_line else f"Answer {i}: " + "words " * 10
        lines.append(json.dumps({"prompt": f"Question {i // 2}?", "response": response, "model": f"m{i % 2}"}))
    return ("\n".join(lines) + "\n").encode()


def post_import(client, project, name: str, body: bytes, **fields):
    return client.post(
        f"/api/v1/projects/{project.slug}/import/", {"file": named(name, body), **fields}, format="multipart"
    )


def counts(project) -> dict:
    return {
        "prompts": Prompt.objects.filter(project=project).count(),
        "responses": Response.objects.filter(prompt__project=project).count(),
        "comparisons": Comparison.objects.filter(project=project).count(),
        "labels": Label.objects.filter(comparison__project=project).count(),
    }


def stored_uploads(settings) -> list[Path]:
    root = Path(settings.JUROR_DATA_DIR) / "imports"
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != ".job") if root.exists() else []


# ---- upload → job → data --------------------------------------------------------------------------------------


def test_an_api_upload_over_the_threshold_answers_202_with_the_job_and_a_worker_imports_it(settings):
    project = ProjectFactory(max_pairs_per_prompt=1)
    client = manager_client(project)
    body = responses_file(400)
    assert len(body) > THRESHOLD
    r = post_import(client, project, "answers.jsonl", body, source="judge")
    assert r.status_code == 202, r.content
    data = r.json()
    job = Job.objects.get(pk=data["job"])
    assert (job.kind, job.status, job.project) == ("import", "queued", project)
    assert data["url"].endswith(f"/api/v1/jobs/{job.pk}/") and r["Location"] == data["url"]
    assert data["page"].endswith(f"/jobs/{job.pk}/")
    assert counts(project)["prompts"] == 0, "nothing is imported before a worker runs the job"
    [stored] = stored_uploads(settings)
    assert stored.is_relative_to(Path(settings.JUROR_DATA_DIR) / "imports" / str(project.pk))

    assert Worker(name="inline").run(once=True) == 1
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert counts(project) == {"prompts": 200, "responses": 400, "comparisons": 200, "labels": 0}
    assert job.result["rows"] == 400 and job.result["imported"] == 400
    assert job.result["created"] == {"prompts": 200, "responses": 400, "comparisons": 200, "labels": 0}
    assert job.result["file"] == "answers.jsonl" and job.result["rows_per_s"] > 0
    assert job.metrics.filter(name="rows_per_s").exists()
    assert stored_uploads(settings) == [], "the stored upload goes when the job ends"

    api = client.get(data["url"]).json()
    assert api["status"] == "succeeded" and api["result"]["created"]["responses"] == 400
    client.force_login(job.created_by)
    page = client.get(data["page"]).content.decode()
    for figure in ("prompts: 200", "responses: 400", "comparisons: 200", "labels: 0", '<dd class="small-dd">400</dd>'):
        assert figure in page  # PostgreSQL's jsonb keeps a result's keys in its own order


def test_a_job_with_skip_invalid_lists_the_skipped_rows_in_its_result_and_on_its_page():
    project = ProjectFactory()
    client = manager_client(project)
    r = post_import(client, project, "answers.jsonl", responses_file(300, bad_line=7), skip_invalid="true")
    assert r.status_code == 202
    Worker(name="inline").run(once=True)
    job = Job.objects.get(pk=r.json()["job"])
    assert job.status == "succeeded", job.error
    assert (job.result["imported"], job.result["skipped"]) == (299, 1)
    assert job.result["skipped_rows"] == ["answers.jsonl, line 7, field 'response': empty text"]
    client.force_login(job.created_by)
    page = client.get(reverse("job-page", args=[job.pk])).content.decode()
    assert "answers.jsonl, line 7, field &#x27;response&#x27;: empty text" in page


def test_a_bad_large_file_fails_its_job_with_file_line_and_field_and_writes_nothing(settings):
    project = ProjectFactory()
    r = post_import(manager_client(project), project, "answers.jsonl", responses_file(400, bad_line=321))
    assert r.status_code == 202
    Worker(name="inline").run(once=True)
    job = Job.objects.get(pk=r.json()["job"])
    assert job.status == "failed" and job.attempt == 1, (job.error, list(job.log_lines.values_list("line", flat=True)))
    assert job.error.startswith("answers.jsonl, line 321, field 'response': empty text; nothing was imported")
    assert counts(project) == {"prompts": 0, "responses": 0, "comparisons": 0, "labels": 0}
    assert job.log_lines.filter(line="error: answers.jsonl, line 321, field 'response': empty text").exists()
    assert stored_uploads(settings) == []


def test_a_retried_import_whose_upload_is_gone_fails_with_a_clear_message():
    project = ProjectFactory()
    r = post_import(manager_client(project), project, "answers.jsonl", responses_file(400, bad_line=1))
    Worker(name="inline").run(once=True)
    job = Job.objects.get(pk=r.json()["job"])
    from training.jobs import job_retry

    job_retry(job)
    Worker(name="inline").run(once=True)
    job.refresh_from_db()
    assert job.status == "failed"
    assert "the uploaded file is no longer stored" in job.error and "upload it again" in job.error


def test_cancel_in_the_middle_of_an_import_leaves_nothing_and_removes_the_upload(settings, workers):
    """On PostgreSQL the cancel lands while rows are being written (in the import's open transaction); SQLite
    has one writer, so there the cancel lands while the file is checked (a cancel cannot be written meanwhile)."""
    project = ProjectFactory()
    rows = 300_000
    body = "".join(json.dumps({"prompt": f"Q{i}", "response": f"A{i}"}) + "\n" for i in range(rows)).encode()
    r = post_import(manager_client(project), project, "big.jsonl", body)
    assert r.status_code == 202
    job = Job.objects.get(pk=r.json()["job"])
    workers.start(name="w")
    stage = "writing rows" if connection.vendor == "postgresql" else "checking rows"

    def importing() -> bool:
        job.refresh_from_db()
        assert job.status in ("queued", "running"), (job.status, job.error)
        return job.progress_message.startswith(stage)

    wait_for(importing, timeout=120, what=f"the import to be {stage}")
    job_cancel(job)
    wait_for(lambda: Job.objects.get(pk=job.pk).status == "cancelled", timeout=60, what="the cancel")
    assert counts(project) == {"prompts": 0, "responses": 0, "comparisons": 0, "labels": 0}
    assert stored_uploads(settings) == []


@pytest.mark.slow
@pytest.mark.sqlite
def test_on_sqlite_a_long_import_keeps_its_job_while_it_holds_the_write_lock(workers):
    """Its writing outlasts SQLite's 20 s busy timeout and the 3 s lease: the worker's heartbeats fail meanwhile,
    which for any other job means giving it up; a second worker waits and does not take the job over."""
    project = ProjectFactory()
    rows = 250_000
    body = "".join(json.dumps({"prompt": f"Q{i}", "response": f"A{i}"}) + "\n" for i in range(rows)).encode()
    job = Job.objects.get(pk=post_import(manager_client(project), project, "big.jsonl", body).json()["job"])
    workers.start(name="a")
    workers.start(name="b")
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=600, what="the import to end")
    job.refresh_from_db()
    assert (job.status, job.attempt, job.error) == ("succeeded", 1, "")
    assert counts(project)["responses"] == rows


# ---- small uploads stay in the request -----------------------------------------------------------------------


def test_a_small_upload_is_imported_in_the_request_and_leaves_no_file(settings):
    project = ProjectFactory()
    body = responses_file(4)
    assert len(body) < THRESHOLD
    r = post_import(manager_client(project), project, "small.jsonl", body)
    assert r.status_code == 201
    assert r.json()["created"]["responses"] == 4
    assert not Job.objects.exists()
    assert stored_uploads(settings) == []


def test_a_small_gzip_that_unpacks_over_the_threshold_goes_to_a_job():
    import gzip

    project = ProjectFactory()
    body = gzip.compress(responses_file(400))
    assert len(body) < THRESHOLD
    r = post_import(manager_client(project), project, "answers.jsonl.gz", body)
    assert r.status_code == 202
    Worker(name="inline").run(once=True)
    assert Job.objects.get(pk=r.json()["job"]).status == "succeeded"
    assert counts(project)["responses"] == 400


# ---- the stored upload never leaves the data directory ------------------------------------------------------


def test_the_client_s_file_name_never_chooses_the_folder(settings):
    project = ProjectFactory()
    r = post_import(manager_client(project), project, "../../../etc/evil name.jsonl", responses_file(400))
    assert r.status_code == 202
    job = Job.objects.get(pk=r.json()["job"])
    [stored] = stored_uploads(settings)
    assert stored.parent.parent == Path(settings.JUROR_DATA_DIR) / "imports" / str(project.pk)
    assert stored.name == "evil_name.jsonl" and job.config["name"] == "evil name.jsonl"


@pytest.mark.parametrize("upload", ["../../secrets.jsonl", "/etc/passwd", "abc/def.jsonl", "0" * 32 + "/../x.jsonl"])
def test_an_import_job_names_only_a_stored_upload(upload):
    with pytest.raises(ConfigError, match="upload must name a stored upload"):
        job_submit(kind="import", project=ProjectFactory(), config={"upload": upload})


def test_an_import_job_cannot_read_another_project_s_upload(settings):
    mine, theirs = ProjectFactory(), ProjectFactory()
    r = post_import(manager_client(theirs), theirs, "theirs.jsonl", responses_file(400))
    their_job = Job.objects.get(pk=r.json()["job"])
    job_cancel(their_job)  # queued: cancelled at once, its upload still stored
    stolen = job_submit(kind="import", project=mine, config={"upload": their_job.config["upload"]})
    Worker(name="inline").run(once=True)
    stolen.refresh_from_db()
    assert stolen.status == "failed" and "no longer stored" in stolen.error
    assert counts(mine)["prompts"] == 0


def test_the_upload_of_a_job_cancelled_before_it_ran_is_removed_at_the_next_upload(settings):
    project = ProjectFactory()
    client = manager_client(project)
    first = Job.objects.get(pk=post_import(client, project, "first.jsonl", responses_file(400)).json()["job"])
    job_cancel(first)
    assert [p.name for p in stored_uploads(settings)] == ["first.jsonl"]
    post_import(client, project, "second.jsonl", responses_file(400))
    assert [p.name for p in stored_uploads(settings)] == ["second.jsonl"]


def test_an_upload_whose_job_is_not_committed_yet_survives_another_upload(settings):
    """Two uploads at once: the first has written its folder's job marker but not yet committed its job row when
    the second sweeps the project's folder; the first's file must still be there for its job."""
    project = ProjectFactory()
    pending = Path(settings.JUROR_DATA_DIR) / "imports" / str(project.pk) / ("a" * 32)
    pending.mkdir(parents=True)
    (pending / "first.jsonl").write_bytes(responses_file(400))
    (pending / ".job").write_text("999999")  # the id its job row will have once committed
    post_import(manager_client(project), project, "second.jsonl", responses_file(400))
    assert sorted(p.name for p in stored_uploads(settings)) == ["first.jsonl", "second.jsonl"]


def test_import_jobs_start_only_from_an_upload():
    """Naming another job's stored upload would let one job delete the file the other still has to read."""
    project = ProjectFactory(slug="mine")
    client = manager_client(project)
    r = client.post("/api/v1/jobs/", {"kind": "import", "project": "mine", "config": {"upload": "x"}}, format="json")
    assert r.status_code == 400 and "kind" in r.json()
    assert not Job.objects.exists()


# ---- the admin form ---------------------------------------------------------------------------------------------


def test_the_admin_upload_over_the_threshold_takes_you_to_the_job(client):
    project = ProjectFactory()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    url = reverse("admin:feedback_project_import", args=[project.pk])
    r = client.post(url, {"file": named("answers.jsonl", responses_file(400))})
    job = Job.objects.get(kind="import")
    assert r.status_code == 302 and r["Location"] == reverse("job-page", args=[job.pk])
    page = client.get(r["Location"]).content.decode()
    assert f"Import queued as job #{job.pk}" in page
    Worker(name="inline").run(once=True)
    assert Job.objects.get(pk=job.pk).status == "succeeded"
    assert counts(project)["responses"] == 400


# ---- chunks do not change the outcome ---------------------------------------------------------------------------


def snapshot(project) -> dict:
    """The project's data by content (ids differ between projects)."""

    def reply(response: Response) -> tuple:
        return (response.model, response.text)

    comparisons = set()
    for c in Comparison.objects.filter(project=project).select_related("prompt", "response_a", "response_b"):
        if c.kind == "pair":
            members = tuple(sorted([reply(c.response_a), reply(c.response_b)]))
        else:
            items = RankingItem.objects.filter(comparison=c).select_related("response").order_by("position")
            members = tuple(reply(i.response) for i in items)
        comparisons.add((json.dumps(c.prompt.messages), c.kind, members))
    labels = sorted(
        (
            json.dumps(label.comparison.prompt.messages),
            reply(label.comparison.response_a if label.choice == "a" else label.comparison.response_b)
            if label.choice in ("a", "b")
            else (label.choice, ""),
        )
        for label in Label.objects.filter(comparison__project=project).select_related(
            "comparison__prompt", "comparison__response_a", "comparison__response_b"
        )
    )
    return {
        "prompts": sorted(
            json.dumps(p) for p in Prompt.objects.filter(project=project).values_list("messages", flat=True)
        ),
        "responses": sorted(
            Response.objects.filter(prompt__project=project).values_list("prompt__content_hash", "model", "text")
        ),
        "comparisons": comparisons,
        "labels": labels,
    }


@pytest.mark.parametrize("mode", ["pairs", "ranking"])
def test_a_file_imported_in_small_chunks_gives_the_same_database_as_in_one(mode, tmp_path):
    # Each prompt's responses are spread over the file, so with chunks of 7 rows they arrive in several chunks.
    responses = [
        {"prompt": f"Prompt {i % 13}", "response": f"Reply {i}", "model": f"m{i % 3}"}
        for i in range(120)  # fmt: skip
    ]
    arena = [
        {
            "model_a": "x",
            "model_b": "y",
            "winner": ["model_a", "model_b", "tie"][i % 3],
            "prompt": f"Prompt {i % 13}",
            "response_a": f"Reply {i % 20}",
            "response_b": f"Other {i % 20}",
        }
        for i in range(90)  # rows 20 apart are identical: two votes each
    ]
    summaries = {}
    for chunk_rows in (7, 10_000):
        project = ProjectFactory(max_pairs_per_prompt=5, comparison_mode=mode)
        folder = tmp_path / str(chunk_rows)
        # Imported labels are keyed by source and row across all projects: each project's import has its own source.
        source = f"judge-{chunk_rows}"
        summaries[chunk_rows] = [
            data_import(
                project=project, path=write_rows(rows, "jsonl", folder, name), source=source, chunk_rows=chunk_rows
            ).as_dict()
            for name, rows in (("responses", responses), ("arena", arena))
        ]
        again = data_import(project=project, path=folder / "arena.jsonl", source=source, chunk_rows=chunk_rows)
        assert (again.imported, again.already_present) == (0, 90)
        summaries[chunk_rows].append(snapshot(project))
    small, whole = summaries[7], summaries[10_000]
    assert small == whole
    assert whole[2]["labels"] and len(whole[2]["labels"]) == 90
    if mode == "ranking":
        assert any(kind == "ranking" for _, kind, _ in whole[2]["comparisons"])


# ---- the command line ------------------------------------------------------------------------------------------


def test_import_data_draws_progress_bars_on_stderr_when_asked(tmp_path):
    from django.core.management import call_command

    project = ProjectFactory()
    path = tmp_path / "answers.jsonl"
    path.write_bytes(responses_file(50))
    quiet, shown = io.StringIO(), io.StringIO()
    call_command("import_data", str(path), "--project", project.slug, stdout=io.StringIO(), stderr=quiet)
    assert quiet.getvalue() == "", "no bars when stderr is not a terminal"
    call_command("import_data", str(path), "--project", project.slug, "--progress", stdout=io.StringIO(), stderr=shown)
    assert "writing rows" in shown.getvalue() and "50/50" in shown.getvalue()
