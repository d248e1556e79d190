"""Bad input gets a clear 4xx, never a 500: Idempotency-Key reuse, project settings out of range, deep JSON, huge
numbers, non-ASCII digits, NUL characters (PostgreSQL stores none), oversized bodies; API errors are JSON."""

import json

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse
from rest_framework.test import APIClient

from feedback.assignment import assignment_queue
from feedback.models import Assignment, Label, Project
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_pair, make_ranking
from training.models import Job, RegisteredModel

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000
HUGE = "9" * 20


@pytest.fixture
def alpha():
    project = ProjectFactory(slug="alpha", name="Alpha", labels_per_item=1)
    for _ in range(3):
        make_pair(project)
    return project


@pytest.fixture
def annotator(alpha):
    return MembershipFactory(project=alpha, role="annotator").user


@pytest.fixture
def manager(alpha):
    return MembershipFactory(project=alpha, role="manager").user


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def label_url(assignment: Assignment) -> str:
    return f"/api/v1/assignments/{assignment.pk}/label/"


# Idempotency-Key


def test_idempotency_key_reused_on_another_assignment_is_409_and_leaves_that_item_to_label(alpha, annotator):
    first, second = assignment_queue(annotator=annotator, project=alpha, size=2)
    client = api(annotator)
    assert (
        client.post(label_url(first), {"choice": "a"}, format="json", headers={"Idempotency-Key": "k1"}).status_code
        == 201
    )
    r = client.post(label_url(second), {"choice": "b"}, format="json", headers={"Idempotency-Key": "k1"})
    assert r.status_code == 409
    assert "belongs to another label" in r.json()["Idempotency-Key"][0]
    assert Label.objects.count() == 1
    second.refresh_from_db()
    assert second.status == Assignment.Status.LEASED
    # With a fresh key the item is labelled as usual.
    r = client.post(label_url(second), {"choice": "b"}, format="json", headers={"Idempotency-Key": "k2"})
    assert r.status_code == 201 and Label.objects.count() == 2


def test_idempotency_key_repeated_on_the_same_assignment_is_a_200_repeat(alpha, annotator):
    (lease,) = assignment_queue(annotator=annotator, project=alpha, size=1)
    client = api(annotator)
    first = client.post(label_url(lease), {"choice": "a"}, format="json", headers={"Idempotency-Key": "same"})
    again = client.post(label_url(lease), {"choice": "b"}, format="json", headers={"Idempotency-Key": "same"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["created"] is False and again.json()["label_id"] == first.json()["label_id"]
    assert Label.objects.get().choice in ("a", "b")


@pytest.mark.parametrize("key", ["k" * 101, "bad\x00key", "tab\tkey"])
def test_idempotency_key_longer_than_the_column_or_unprintable_is_400(alpha, annotator, key):
    (lease,) = assignment_queue(annotator=annotator, project=alpha, size=1)
    r = api(annotator).post(label_url(lease), {"choice": "a"}, format="json", headers={"Idempotency-Key": key})
    assert r.status_code == 400
    assert "1–100 printable characters" in r.json()["Idempotency-Key"][0]
    assert not Label.objects.exists()


def test_idempotency_key_of_100_characters_is_accepted(alpha, annotator):
    (lease,) = assignment_queue(annotator=annotator, project=alpha, size=1)
    r = api(annotator).post(label_url(lease), {"choice": "a"}, format="json", headers={"Idempotency-Key": "k" * 100})
    assert r.status_code == 201


# Project settings


BAD_SETTINGS = [
    ("lease_minutes", 0, "greater than or equal to 1"),
    ("lease_minutes", 1441, "less than or equal to 1440"),
    ("labels_per_item", 0, "greater than or equal to 1"),
    ("labels_per_item", 101, "less than or equal to 100"),
    ("max_pairs_per_prompt", 0, "greater than or equal to 1"),
    ("gold_rate", 2, "less than or equal to 1"),
    ("gold_rate", -0.5, "greater than or equal to 0"),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD_SETTINGS)
def test_project_settings_out_of_range_are_400_through_patch(alpha, manager, field, value, message):
    before = Project.objects.filter(pk=alpha.pk).values().get()
    r = api(manager).patch("/api/v1/projects/alpha/", {field: value}, format="json")
    assert r.status_code == 400, r.content[:300]
    assert message in r.json()[field][0]
    assert Project.objects.filter(pk=alpha.pk).values().get() == before


@pytest.mark.parametrize(("field", "value", "message"), BAD_SETTINGS)
def test_project_settings_out_of_range_are_400_through_put(alpha, manager, field, value, message):
    body = {"slug": "alpha", "name": "Alpha", field: value}
    r = api(manager).put("/api/v1/projects/alpha/", body, format="json")
    assert r.status_code == 400, r.content[:300]
    assert message in r.json()[field][0]
    assert getattr(Project.objects.get(pk=alpha.pk), field) == getattr(alpha, field)


def test_project_settings_at_their_bounds_are_accepted(alpha, manager):
    body = {"lease_minutes": 1440, "labels_per_item": 100, "max_pairs_per_prompt": 1000, "gold_rate": 1}
    r = api(manager).patch("/api/v1/projects/alpha/", body, format="json")
    assert r.status_code == 200, r.content
    alpha.refresh_from_db()
    assert (alpha.lease_minutes, alpha.labels_per_item, alpha.max_pairs_per_prompt, alpha.gold_rate) == (
        1440,
        100,
        1000,
        1.0,
    )


def test_project_settings_out_of_range_are_refused_at_creation(alpha):
    r = api(UserFactory(is_staff=True)).post(
        "/api/v1/projects/", {"slug": "gamma", "name": "Gamma", "lease_minutes": 0}, format="json"
    )
    assert r.status_code == 400 and "lease_minutes" in r.json()
    assert not Project.objects.filter(slug="gamma").exists()


def test_the_database_refuses_a_zero_lease():
    with pytest.raises(IntegrityError), transaction.atomic():
        ProjectFactory(lease_minutes=0)


def test_a_zero_lease_never_burns_items_for_an_annotator(alpha, annotator):
    # A project object that bypassed validation (unsaved here: the database refuses it) still leases for a
    # minute at least, so /next/ keeps answering the same item instead of leasing a new one each time.
    alpha.lease_minutes = 0
    first = assignment_queue(annotator=annotator, project=alpha, size=1)
    again = assignment_queue(annotator=annotator, project=alpha, size=1)
    assert [a.pk for a in first] == [a.pk for a in again]
    assert Assignment.objects.filter(annotator=annotator).count() == 1
    assert first[0].expires_at > first[0].leased_at


def _admin_form_data(page) -> dict:
    """The admin form's current values as a POST body, inline management forms included."""
    form = page.context["adminform"].form
    data = {}
    for name in form.fields:
        value = form[name].value()
        if value is True:
            data[name] = "on"
        elif value not in (None, False):
            data[name] = value
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({management.add_prefix(name): management[name].value() for name in management.fields})
    return data


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.mark.parametrize(("field", "value", "message"), BAD_SETTINGS)
def test_admin_change_form_refuses_settings_out_of_range_with_a_message(admin_client, field, value, message):
    project = ProjectFactory(slug="delta")
    url = reverse("admin:feedback_project_change", args=[project.pk])
    data = {**_admin_form_data(admin_client.get(url)), field: value}
    r = admin_client.post(url, data)
    assert r.status_code == 200  # the form again, not a redirect (nor a 500)
    assert message in " ".join(r.context["adminform"].form.errors[field])
    assert getattr(Project.objects.get(pk=project.pk), field) == getattr(project, field)


def test_admin_change_form_saves_settings_in_range(admin_client):
    project = ProjectFactory(slug="delta")
    url = reverse("admin:feedback_project_change", args=[project.pk])
    data = {**_admin_form_data(admin_client.get(url)), "lease_minutes": 30, "gold_rate": 0.1}
    assert admin_client.post(url, data).status_code == 302
    project.refresh_from_db()
    assert (project.lease_minutes, project.gold_rate) == (30, 0.1)


def test_admin_add_form_refuses_a_zero_lease(admin_client):
    url = reverse("admin:feedback_project_add")
    data = {**_admin_form_data(admin_client.get(url)), "slug": "epsilon", "name": "Epsilon", "lease_minutes": 0}
    r = admin_client.post(url, data)
    assert r.status_code == 200
    assert "greater than or equal to 1" in " ".join(r.context["adminform"].form.errors["lease_minutes"])
    assert not Project.objects.filter(slug="epsilon").exists()


# Deep JSON, huge numbers, non-ASCII digits


def test_deeply_nested_json_is_400_json_everywhere(alpha, annotator, manager):
    (lease,) = assignment_queue(annotator=annotator, project=alpha, size=1)
    as_choice = '{"choice": ' + DEEP + "}"
    cases = [
        (annotator, "post", label_url(lease), as_choice),
        (annotator, "post", label_url(lease), DEEP),
        (manager, "patch", "/api/v1/projects/alpha/", DEEP),
        (manager, "post", "/api/v1/projects/alpha/export/", DEEP),
        (manager, "post", "/api/v1/jobs/", '{"kind": "noop", "project": "alpha", "config": ' + DEEP + "}"),
    ]
    for user, method, url, body in cases:
        r = getattr(api(user), method)(url, body, content_type="application/json")
        assert r.status_code == 400, (url, r.content[:200])
        assert "JSON parse error" in r.json()["detail"]
    assert not Label.objects.exists() and not Job.objects.exists()


def test_json_nested_past_the_limit_is_400_but_a_ranking_is_fine():
    project = ProjectFactory(comparison_mode="ranking", labels_per_item=1)
    make_ranking(project, n=3)
    annotator = MembershipFactory(project=project).user
    (lease,) = assignment_queue(annotator=annotator, project=project, size=1)
    r = api(annotator).post(label_url(lease), {"choice": json.loads("[" * 65 + "]" * 65)}, format="json")
    assert r.status_code == 400 and "nested deeper than 64" in r.json()["detail"]
    r = api(annotator).post(label_url(lease), {"choice": ["a", ["b", "c"]]}, format="json")
    assert r.status_code == 201, r.content


@pytest.mark.parametrize("url", ["/api/v1/projects/", "/api/v1/jobs/", "/api/v1/models/"])
@pytest.mark.parametrize("query", [f"limit={HUGE}", f"offset={HUGE}", f"limit={HUGE}&offset={HUGE}", "limit=²"])
def test_huge_or_odd_limit_and_offset_are_answered(alpha, manager, url, query):
    # Lists with rows in them: an empty list answers before the database sees LIMIT or OFFSET.
    Job.objects.create(kind="noop", project=alpha, config={})
    RegisteredModel.objects.create(name="tiny", path="models/tiny")
    r = api(manager).get(f"{url}?{query}")
    assert r.status_code == 200, r.content[:300]
    assert "results" in r.json()


def test_limit_is_capped(manager):
    r = api(manager).get(f"/api/v1/projects/?limit={HUGE}")
    assert f"limit={HUGE}" not in (r.json()["next"] or "")


@pytest.mark.parametrize("value", ["²", "١", HUGE, "9" * 5000])
def test_odd_digits_in_annotate_form_ids_are_404_not_500(client, alpha, annotator, value):
    client.force_login(annotator)
    assignment_queue(annotator=annotator, project=alpha, size=1)
    for view in ("label", "skip", "flag", "demonstration"):
        r = client.post(f"/annotate/alpha/{view}/", {"assignment_id": value, "choice": "a", "reason": "broken"})
        assert r.status_code == 404, (view, r.status_code)
    assert not Label.objects.exists()


def test_odd_digits_in_annotate_form_numbers_are_ignored_or_refused(client, alpha, annotator):
    client.force_login(annotator)
    (lease,) = assignment_queue(annotator=annotator, project=alpha, size=1)
    r = client.post("/annotate/alpha/label/", {"assignment_id": lease.pk, "choice": "a", "time_spent_ms": "²"})
    assert r.status_code == 302
    assert Label.objects.get().time_spent_ms is not None  # measured from the lease instead
    r = client.post(
        "/annotate/alpha/demonstration/", {"assignment_id": lease.pk, "text": "Better answer.", "based_on": "²"}
    )
    assert r.status_code == 302


def test_odd_digits_in_a_ranking_form_are_a_message(client):
    project = ProjectFactory(slug="ranks", comparison_mode="ranking", labels_per_item=1)
    make_ranking(project, n=3)
    annotator = MembershipFactory(project=project).user
    client.force_login(annotator)
    (lease,) = assignment_queue(annotator=annotator, project=project, size=1)
    r = client.post(
        "/annotate/ranks/label/", {"assignment_id": lease.pk, "rank_a": "1", "rank_b": "²", "rank_c": "3"}, follow=True
    )
    assert r.status_code == 200 and "give response B a rank" in r.content.decode()
    assert not Label.objects.exists()


# NUL characters and unpaired surrogates: PostgreSQL stores neither


NUL_API_URLS = [
    "/api/v1/projects/%00/",
    "/api/v1/projects/%00/stats/",
    "/api/v1/projects/%00/next/",
    "/api/v1/models/%00/",
    "/api/v1/jobs/%00/",
    "/api/v1/jobs/?project=%00",
    "/api/v1/jobs/?status=%00",
    "/api/v1/jobs/?kind=a%00b",
    "/api/v1/projects/?ordering=%00",
    "/api/v1/projects/alpha/next/?next=%00",
    "/api/v1/schema/?lang=%00",
]
NUL_PAGES = [
    "/projects/%00/",
    "/projects/%00/export/",
    "/projects/%00/members/",
    "/annotate/%00/",
    "/annotate/alpha/?x=%00",
    "/invite/%00/",
    "/jobs/?project=%00",
    "/jobs/new/?project=%00",
    "/jobs/new/?kind=%00",
    "/admin/feedback/project/?q=%00",
]


@pytest.mark.parametrize("url", NUL_API_URLS)
def test_nul_in_an_api_path_or_query_is_400_json(manager, url):
    r = api(manager).get(url)
    assert r.status_code == 400, r.content[:300]
    assert r["Content-Type"] == "application/json" and "NUL" in r.json()["detail"]


@pytest.mark.parametrize("url", NUL_PAGES)
def test_nul_in_a_page_path_or_query_is_400(client, manager, url):
    manager.is_staff = manager.is_superuser = True
    manager.save()
    client.force_login(manager)
    r = client.get(url)
    assert r.status_code == 400 and b"NUL" in r.content


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
@pytest.mark.parametrize(
    ("view", "fields"),
    [
        ("flag", {"reason": "broken", "note": "a\x00b"}),
        ("skip", {"reason": "a\x00b"}),
        ("demonstration", {"text": "a\x00b"}),
        ("label", {"choice": "a", "rationale": "a\x00b"}),
        ("label", {"choice": "a", "idempotency_key": "a\x00b"}),
    ],
)
def test_nul_in_an_annotate_form_is_400_and_stores_nothing(client, alpha, annotator, view, fields, encoding):
    from urllib.parse import urlencode

    client.force_login(annotator)
    (lease,) = assignment_queue(annotator=annotator, project=alpha, size=1)
    data = {"assignment_id": lease.pk, **fields}
    if encoding == "urlencoded":
        r = client.post(f"/annotate/alpha/{view}/", urlencode(data), content_type="application/x-www-form-urlencoded")
    else:
        r = client.post(f"/annotate/alpha/{view}/", data)
    assert r.status_code == 400
    lease.refresh_from_db()
    assert lease.status == Assignment.Status.LEASED and not Label.objects.exists()
    assert not alpha.comparisons.filter(flags__isnull=False).exists()


def test_nul_in_the_new_job_form_is_400(client, manager):
    client.force_login(manager)
    r = client.post("/jobs/new/", {"kind": "noop", "project": "alpha\x00"})
    assert r.status_code == 400 and not Job.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        # A valid config otherwise: SQLite stored it (201), PostgreSQL's jsonb refused it (500).
        {"kind": "generate", "project": "alpha", "config": {"system": "Be brief.\x00"}},
        {"kind": "generate", "project": "alpha", "config": {"tag": "a\x00b"}},
    ],
)
def test_nul_anywhere_in_a_json_body_is_400(manager, body):
    r = api(manager).post("/api/v1/jobs/", body, format="json")
    assert r.status_code == 400
    assert "NUL" in r.json()["detail"]
    assert not Job.objects.exists()


def test_unpaired_surrogate_in_a_json_body_is_400(alpha, manager):
    r = api(manager).patch("/api/v1/projects/alpha/", '{"name": "\\ud800"}', content_type="application/json")
    assert r.status_code == 400 and "surrogate" in r.json()["detail"]
    assert Project.objects.get(pk=alpha.pk).name == "Alpha"


def test_nul_in_a_label_body_is_400(alpha, annotator):
    (lease,) = assignment_queue(annotator=annotator, project=alpha, size=1)
    for body in ({"choice": "a\x00"}, {"choice": "a", "rationale": "\x00"}, {"choice": ["a\x00"]}):
        r = api(annotator).post(label_url(lease), body, format="json")
        assert r.status_code == 400, body
    assert not Label.objects.exists()


# Errors are JSON under /api/, with the status codes the docs list


def test_unknown_api_url_is_404_json(annotator):
    for method in ("get", "post", "put"):
        r = getattr(api(annotator), method)("/api/v1/no-such-thing/")
        assert r.status_code == 404 and r.json() == {"detail": "Not found."}


def test_a_server_error_under_the_api_is_json_too(alpha, manager, monkeypatch):
    def broken(project):
        raise RuntimeError("a bug")

    monkeypatch.setattr("feedback.api.project_stats", broken)
    client = api(manager)
    client.raise_request_exception = False
    r = client.get("/api/v1/projects/alpha/stats/")
    assert r.status_code == 500 and r.json() == {"detail": "Server error."}


def test_wrong_method_on_an_api_url_is_405_json(alpha, manager):
    r = api(manager).delete("/api/v1/projects/alpha/")
    assert r.status_code == 405 and "detail" in r.json()


def test_oversized_json_body_is_413_json(alpha, manager, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"name": "x" * 2000})
    r = api(manager).patch("/api/v1/projects/alpha/", body, content_type="application/json")
    assert r.status_code == 413 and "larger than 1,000 bytes" in r.json()["detail"]
    assert Project.objects.get(pk=alpha.pk).name == "Alpha"


def test_oversized_form_body_is_413_json(alpha, manager, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = "kind=noop&project=alpha&x=" + "y" * 2000
    r = api(manager).post("/api/v1/jobs/", body, content_type="application/x-www-form-urlencoded")
    assert r.status_code == 413 and r["Content-Type"] == "application/json"
    assert not Job.objects.exists()


def test_oversized_multipart_field_is_413_json(alpha, manager, settings):
    import io

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    upload = io.BytesIO(b'{"prompt": "Why?"}\n')
    upload.name = "p.jsonl"
    r = api(manager).post("/api/v1/projects/alpha/import/", {"file": upload, "source": "x" * 2000}, format="multipart")
    assert r.status_code == 413 and r["Content-Type"] == "application/json"


def test_oversized_form_on_a_page_is_still_django_s_400(client, alpha, annotator, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    client.force_login(annotator)
    r = client.post("/annotate/alpha/label/", "x=" + "y" * 2000, content_type="application/x-www-form-urlencoded")
    assert r.status_code == 400


# The new-job page shows the project field's error


def test_new_job_page_shows_the_project_field_error(client, manager):
    other = ProjectFactory(slug="not-mine")
    client.force_login(manager)
    r = client.post("/jobs/new/", {"kind": "noop", "project": other.slug, "config_steps": "1"})
    assert r.status_code == 200
    page = r.content.decode()
    assert "Select a valid choice." in page
    assert "has-error" in page.split('name="project"')[0].rsplit("<label", 1)[1]
    assert not Job.objects.exists()
