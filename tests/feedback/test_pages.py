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
