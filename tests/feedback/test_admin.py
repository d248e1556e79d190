import io

import pytest
from django.contrib.admin.sites import site
from django.urls import reverse

from feedback.models import Label, Prompt
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def upload(name: str, body: bytes):
    f = io.BytesIO(body)
    f.name = name
    return f


def test_admin_upload_imports_and_reports(admin_client):
    project = ProjectFactory()
    url = reverse("admin:feedback_project_import", args=[project.pk])
    body = b'{"chosen": "\\n\\nHuman: Hi\\n\\nAssistant: Hello!", "rejected": "\\n\\nHuman: Hi\\n\\nAssistant: Go."}\n'
    r = admin_client.post(url, {"file": upload("hh.jsonl", body), "source": "hh-rlhf"}, follow=True)
    assert r.status_code == 200
    assert "Import finished: hh.jsonl: preferences; 1 rows imported" in r.content.decode()
    assert Label.objects.get().source == "hh-rlhf"


def test_admin_upload_error_shows_the_line_and_writes_nothing(admin_client):
    project = ProjectFactory()
    url = reverse("admin:feedback_project_import", args=[project.pk])
    r = admin_client.post(url, {"file": upload("bad.jsonl", b'{"prompt": "ok"}\n{"prompt": 5}\n')})
    assert r.status_code == 200
    assert "bad.jsonl, line 2, field &#x27;prompt&#x27;: expected text, got a number" in r.content.decode()
    assert not Prompt.objects.exists()


def test_admin_upload_skip_invalid_lists_skipped_rows(admin_client):
    project = ProjectFactory()
    url = reverse("admin:feedback_project_import", args=[project.pk])
    r = admin_client.post(
        url, {"file": upload("bad.jsonl", b'{"prompt": "ok"}\n{"prompt": 5}\n'), "skip_invalid": "on"}, follow=True
    )
    page = r.content.decode()
    assert "1 rows imported, 1 skipped" in page and "line 2, field &#x27;prompt&#x27;" in page
    assert Prompt.objects.count() == 1


def test_import_link_on_the_project_change_page(admin_client):
    project = ProjectFactory()
    page = admin_client.get(reverse("admin:feedback_project_change", args=[project.pk])).content.decode()
    assert reverse("admin:feedback_project_import", args=[project.pk]) in page


def test_non_staff_cannot_reach_the_import_form(client):
    project = ProjectFactory()
    client.force_login(UserFactory())
    r = client.post(
        reverse("admin:feedback_project_import", args=[project.pk]), {"file": upload("p.jsonl", b'{"prompt": "x"}\n')}
    )
    assert r.status_code == 302 and "/admin/login/" in r["Location"]
    assert not Prompt.objects.exists()


@pytest.mark.parametrize(
    "model", [m for m in site._registry if m._meta.app_label in {"feedback", "annotators", "training"}]
)
def test_every_model_has_a_searchable_admin_changelist(admin_client, model):
    model_admin = site._registry[model]
    assert model_admin.search_fields, f"{model.__name__} admin has no search"
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    assert admin_client.get(url, {"q": "x"}).status_code == 200


def test_every_model_of_ours_is_in_the_admin():
    from django.apps import apps

    ours = [m for app in ("feedback", "annotators", "training") for m in apps.get_app_config(app).get_models()]
    missing = [m.__name__ for m in ours if m not in site._registry and m.__name__ != "RankingItem"]
    assert missing == []  # RankingItem is edited inline on its comparison
