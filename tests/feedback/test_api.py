import io
import json

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feedback.assignment import assignment_claim
from feedback.models import Label, Project, Prompt
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_pair
from training.models import Job, RegisteredModel

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    a, b = ProjectFactory(slug="alpha", name="Alpha"), ProjectFactory(slug="beta", name="Beta")
    users = {
        "anonymous": None,
        "annotator_a": MembershipFactory(project=a, role="annotator").user,
        "annotator_b": MembershipFactory(project=b, role="annotator").user,
        "manager_a": MembershipFactory(project=a, role="manager").user,
        "manager_b": MembershipFactory(project=b, role="manager").user,
        "admin": UserFactory(is_staff=True),
    }
    pair = make_pair(a)
    lease = assignment_claim(annotator=users["annotator_a"], project=a)
    job = Job.objects.create(kind="noop", project=a, config={"steps": 1})
    failed = Job.objects.create(kind="noop", project=a, status=Job.Status.FAILED, attempt=3)
    RegisteredModel.objects.create(name="tiny", path="models/tiny")
    RegisteredModel.objects.create(name="rm", kind="reward", path="models/rm")
    return {"a": a, "b": b, "users": users, "pair": pair, "lease": lease, "job": job, "failed": failed}


def client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def upload(name="p.jsonl", body=b'{"prompt": "Why?"}\n'):
    f = io.BytesIO(body)
    f.name = name
    return f


# Each API endpoint × role: expected status when acting on project "alpha". manager_b runs another project: the
# registry is shared by everyone who runs a project, everything of alpha's is a 404 to them. A new URL fails
# test_every_api_url_is_in_the_access_matrix until it is added here.
ROLES = ["anonymous", "annotator_a", "annotator_b", "manager_a", "admin", "manager_b"]
MATRIX = {
    "api-root": ("get", "/api/v1/", None, [401, 200, 200, 200, 200, 200]),
    "api-schema": ("get", "/api/v1/schema/", None, [401, 200, 200, 200, 200, 200]),
    "api-docs": ("get", "/api/v1/docs/", None, [401, 200, 200, 200, 200, 200]),
    "project-list": ("get", "/api/v1/projects/", None, [401, 200, 200, 200, 200, 200]),
    "project-create": ("post", "/api/v1/projects/", {"slug": "gamma", "name": "Gamma"}, [401, 403, 403, 403, 201, 403]),
    "project-detail": ("get", "/api/v1/projects/alpha/", None, [401, 200, 404, 200, 200, 404]),
    "project-update": ("patch", "/api/v1/projects/alpha/", {"name": "Renamed"}, [401, 403, 404, 200, 200, 404]),
    "project-import-file": ("post", "/api/v1/projects/alpha/import/", "upload", [401, 403, 404, 201, 201, 404]),
    "project-stats": ("get", "/api/v1/projects/alpha/stats/", None, [401, 200, 404, 200, 200, 404]),
    "project-export": ("post", "/api/v1/projects/alpha/export/", {"format": "jsonl"}, [401, 403, 404, 200, 200, 404]),
    "project-next-item": ("get", "/api/v1/projects/alpha/next/", None, [401, 200, 404, 200, 200, 404]),
    # The lease belongs to annotator_a: everyone else, managers and staff included, gets 404.
    "assignment-label": ("post", "/api/v1/assignments/{lease}/label/", {"choice": "a"}, [401, 201, 404, 404, 404, 404]),
    # Jobs and models are for the people who run a project: annotators see none (a config names the models).
    "job-list": ("get", "/api/v1/jobs/", None, [401, 200, 200, 200, 200, 200]),
    "job-create": ("post", "/api/v1/jobs/", {"kind": "noop", "project": "alpha"}, [401, 400, 400, 201, 201, 400]),
    "job-detail": ("get", "/api/v1/jobs/{job}/", None, [401, 404, 404, 200, 200, 404]),
    "job-cancel": ("post", "/api/v1/jobs/{job}/cancel/", None, [401, 404, 404, 200, 200, 404]),
    "job-retry": ("post", "/api/v1/jobs/{failed}/retry/", None, [401, 404, 404, 200, 200, 404]),
    "model-list": ("get", "/api/v1/models/", None, [401, 200, 200, 200, 200, 200]),
    "model-detail": ("get", "/api/v1/models/tiny/", None, [401, 404, 404, 200, 200, 200]),
    # Scoring queues a job on a project the caller manages: manager_b may use the model, not on alpha.
    "model-score": (
        "post",
        "/api/v1/models/rm/score/",
        {"project": "alpha", "items": [{"prompt": "Why?", "response": "Because."}]},
        [401, 404, 404, 202, 202, 400],
    ),
}


@pytest.mark.parametrize("endpoint", MATRIX)
@pytest.mark.parametrize("role_index", range(len(ROLES)), ids=ROLES)
def test_access_matrix(world, endpoint, role_index):
    method, url, data, expected = MATRIX[endpoint]
    user = world["users"][ROLES[role_index]]
    client = client_for(user)
    kwargs = {}
    if data == "upload":
        kwargs = {"data": {"file": upload()}, "format": "multipart"}
    elif data is not None:
        kwargs = {"data": data, "format": "json"}
    url = url.format(lease=world["lease"].pk, job=world["job"].pk, failed=world["failed"].pk)
    response = getattr(client, method)(url, **kwargs)
    assert response.status_code == expected[role_index], response.content[:300]
    if response.status_code >= 400:
        if endpoint not in ("api-schema", "api-docs"):  # these answer in their own media types
            assert response["Content-Type"].startswith("application/json")
        assert Project.objects.get(slug="alpha").name == "Alpha"
        assert not Project.objects.filter(slug="gamma").exists()
        assert Prompt.objects.count() == 1  # the fixture's pair, nothing imported
        assert not Label.objects.exists()
        assert list(Job.objects.order_by("id").values_list("status", flat=True)) == ["queued", "failed"]


def _api_url_names(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _api_url_names(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern) and (prefix + str(p.pattern)).startswith("api/v1/"):
            yield p.name


def test_every_api_url_is_in_the_access_matrix():
    names = set(_api_url_names(get_resolver().url_patterns))
    covered = {n.replace("-create", "-list").replace("-update", "-detail") for n in MATRIX}
    assert names == covered


def test_project_list_is_scoped_to_membership(world):
    data = client_for(world["users"]["annotator_a"]).get("/api/v1/projects/").json()
    assert [p["slug"] for p in data["results"]] == ["alpha"]
    data = client_for(world["users"]["admin"]).get("/api/v1/projects/").json()
    assert [p["slug"] for p in data["results"]] == ["alpha", "beta"]


def test_token_auth_works(world):
    token = Token.objects.create(user=world["users"]["annotator_a"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.get("/api/v1/projects/alpha/").status_code == 200
    client.credentials(HTTP_AUTHORIZATION="Token wrong")
    assert client.get("/api/v1/projects/alpha/").status_code == 401


def test_api_import_returns_a_summary(world):
    client = client_for(world["users"]["manager_a"])
    body = b'{"prompt": "Q", "chosen": "A", "rejected": "B"}\n'
    r = client.post(
        "/api/v1/projects/alpha/import/", {"file": upload("prefs.jsonl", body), "source": "judge"}, format="multipart"
    )
    assert r.status_code == 201
    assert r.json()["created"] == {"prompts": 1, "responses": 2, "comparisons": 1, "labels": 1}
    stats = client.get("/api/v1/projects/alpha/stats/").json()
    assert stats["labels"]["by_source"] == {"judge": 1}


def test_api_import_bad_file_is_400_json_naming_the_line_and_writes_nothing(world):
    client = client_for(world["users"]["manager_a"])
    r = client.post(
        "/api/v1/projects/alpha/import/",
        {"file": upload("bad.jsonl", b'{"prompt": "ok"}\n{"prompt": ""}\n')},
        format="multipart",
    )
    assert r.status_code == 400
    body = r.json()
    assert body["detail"].startswith("bad.jsonl, line 2, field 'prompt': empty text")
    assert body["errors"][0] == {
        "file": "bad.jsonl",
        "line": 2,
        "field": "prompt",
        "reason": "empty text",
        "unit": "line",
    }
    assert Prompt.objects.count() == 1  # only the fixture's


def test_api_import_skip_invalid(world):
    client = client_for(world["users"]["manager_a"])
    r = client.post(
        "/api/v1/projects/alpha/import/",
        {"file": upload("bad.jsonl", b'{"prompt": "ok"}\n{"prompt": ""}\n'), "skip_invalid": "true"},
        format="multipart",
    )
    assert r.status_code == 201
    assert (r.json()["imported"], r.json()["skipped"]) == (1, 1)
    assert r.json()["skipped_rows"] == [{"line": 2, "field": "prompt", "reason": "empty text"}]


def test_api_import_of_a_zipped_hf_dataset(world, tmp_path):
    import shutil

    import datasets

    datasets.Dataset.from_list([{"prompt": "from hf"}]).save_to_disk(str(tmp_path / "ds"))
    archive = shutil.make_archive(str(tmp_path / "ds"), "zip", tmp_path, "ds")
    client = client_for(world["users"]["manager_a"])
    with open(archive, "rb") as f:
        r = client.post("/api/v1/projects/alpha/import/", {"file": f}, format="multipart")
    assert r.status_code == 201, r.content
    assert Prompt.objects.filter(messages=[{"role": "user", "content": "from hf"}]).exists()


def test_api_import_missing_file_is_400_json(world):
    r = client_for(world["users"]["manager_a"]).post("/api/v1/projects/alpha/import/", {}, format="multipart")
    assert r.status_code == 400 and "file" in r.json()


def test_openapi_schema_lists_the_endpoints(world):
    r = client_for(world["users"]["admin"]).get("/api/v1/schema/?format=json")
    paths = json.loads(r.content)["paths"]
    assert {"/api/v1/projects/", "/api/v1/projects/{slug}/import/", "/api/v1/projects/{slug}/stats/"} <= set(paths)


def test_api_export_answers_with_a_zip_of_the_dataset(world):
    import zipfile

    Label.objects.create(comparison=world["pair"], source="judge", choice="b")
    client = client_for(world["users"]["manager_a"])
    r = client.post("/api/v1/projects/alpha/export/", {"format": "jsonl", "test_fraction": 0}, format="json")
    assert r.status_code == 200 and r["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(r.streaming_content)))
    names = set(archive.namelist())
    assert {"alpha-pairs/train.jsonl", "alpha-pairs/README.md", "alpha-pairs/manifest.json"} <= names
    row = json.loads(archive.read("alpha-pairs/train.jsonl").decode().splitlines()[0])
    assert row["chosen"] == world["pair"].response_b.text


def test_api_export_bad_options_are_400_json(world):
    client = client_for(world["users"]["manager_a"])
    r = client.post("/api/v1/projects/alpha/export/", {"format": "xls"}, format="json")
    assert r.status_code == 400 and "format" in r.json()
    r = client.post("/api/v1/projects/alpha/export/", {"since": "2026-02-01", "until": "2026-01-01"}, format="json")
    assert r.status_code == 400 and "since must not be after until" in r.json()["detail"]
