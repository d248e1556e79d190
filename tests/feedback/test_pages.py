import pytest

from tests.factories import MembershipFactory, ProjectFactory, make_label, make_pair

pytestmark = pytest.mark.django_db


def test_home_for_anonymous_invites_sign_in(client):
    page = client.get("/").content.decode()
    assert "Human feedback for language models" in page and 'href="/accounts/login/"' in page


def test_home_lists_only_my_projects_with_counts(client):
    mine = MembershipFactory(project__name="Mine").user
    make_label(make_pair(mine.memberships.get().project))
    ProjectFactory(name="Someone else's")
    client.force_login(mine)
    page = client.get("/").content.decode()
    assert "Mine" in page and "Someone else" not in page
    assert "0 / 1 complete" in page


def test_project_dashboard_is_404_for_outsiders(client):
    project = ProjectFactory()
    client.force_login(MembershipFactory().user)
    assert client.get(f"/projects/{project.slug}/").status_code == 404


def test_project_dashboard_shows_stats(client):
    membership = MembershipFactory(role="manager")
    make_label(make_pair(membership.project), choice="tie", source="arena")
    client.force_login(membership.user)
    page = client.get(f"/projects/{membership.project.slug}/").content.decode()
    assert "Labels by source" in page and "arena" in page and "Import data" in page


def test_login_page_and_sign_in(client):
    from tests.factories import UserFactory

    UserFactory(username="ann")
    assert client.get("/accounts/login/").status_code == 200
    r = client.post("/accounts/login/", {"username": "ann", "password": "pw-for-tests-1"})
    assert r.status_code == 302 and r["Location"] == "/"
    r = client.post("/accounts/login/", {"username": "ann", "password": "wrong"})
    assert "didn't match" in r.content.decode()


def test_every_page_has_an_enforcing_csp_without_unsafe_inline(client):
    for url in ["/", "/accounts/login/"]:
        csp = client.get(url)["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp


def test_login_is_rate_limited_per_user_and_address(client):
    from django.conf import settings

    from tests.factories import UserFactory

    UserFactory(username="target")
    UserFactory(username="bystander")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/accounts/login/", {"username": "target", "password": "guess"})
    r = client.post("/accounts/login/", {"username": "target", "password": "pw-for-tests-1"})
    assert r.status_code == 429 and "Too many attempts" in r.content.decode()
    assert "_auth_user_id" not in client.session
    r = client.post("/accounts/login/", {"username": "bystander", "password": "pw-for-tests-1"})
    assert r.status_code == 302  # others are not locked out


def test_managers_export_from_the_project_page(client):
    import io
    import zipfile

    membership = MembershipFactory(role="manager")
    make_label(make_pair(membership.project), choice="a", source="judge")
    client.force_login(membership.user)
    url = f"/projects/{membership.project.slug}/export/"
    assert "Export a dataset" in client.get(url).content.decode()
    r = client.post(url, {"kind": "pairs", "format": "csv", "test_fraction": "0", "min_gold_accuracy": "", "since": ""})
    assert r["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(b"".join(r.streaming_content))).namelist()
    assert any(n.endswith("train.csv") for n in names)
    r = client.post(url, {"kind": "pairs", "format": "csv", "min_agreement": "3"})
    assert r.status_code == 200 and "min_agreement" in r.content.decode()


def test_annotators_cannot_export(client):
    membership = MembershipFactory(role="annotator")
    client.force_login(membership.user)
    assert client.get(f"/projects/{membership.project.slug}/export/").status_code == 403


def test_admin_export_action_goes_to_the_export_page(client):
    from tests.factories import UserFactory

    project = ProjectFactory()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    r = client.post("/admin/feedback/project/", {"action": "export_dataset", "_selected_action": [project.pk]})
    assert r.status_code == 302 and r["Location"] == f"/projects/{project.slug}/export/"
