import pytest
from django.contrib.auth import get_user_model

from annotators.models import Invitation, Membership, Profile
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(client):
    m = MembershipFactory(role="manager", project__slug="proj")
    client.force_login(m.user)
    return m


def test_members_page_is_for_managers_only(client):
    annotator = MembershipFactory(role="annotator", project__slug="proj")
    client.force_login(annotator.user)
    assert client.get("/projects/proj/members/").status_code == 403
    client.force_login(UserFactory())
    assert client.get("/projects/proj/members/").status_code == 404


def test_manager_creates_an_account_with_role_and_segments(client, manager):
    r = client.post(
        "/projects/proj/members/add/",
        {
            "username": "kim",
            "password": "a-long-passphrase-42",
            "role": "reviewer",
            "attributes": "expertise=expert\naudience=adult",
        },
        follow=True,
    )
    assert "Created and added kim as reviewer" in r.content.decode()
    kim = get_user_model().objects.get(username="kim")
    assert kim.check_password("a-long-passphrase-42")
    assert Membership.objects.get(user=kim).role == "reviewer"
    assert Profile.objects.get(user=kim).attributes == {"expertise": "expert", "audience": "adult"}


def test_adding_an_unknown_person_without_password_explains(client, manager):
    r = client.post("/projects/proj/members/add/", {"username": "ghost", "role": "annotator"})
    assert r.status_code == 200 and "give a password to create it, or send an invitation" in r.content.decode()
    assert not get_user_model().objects.filter(username="ghost").exists()


def test_manager_changes_role_and_segments_with_htmx(client, manager):
    other = MembershipFactory(project=manager.project, role="annotator")
    r = client.post(
        f"/projects/proj/members/{other.pk}/",
        {"role": "manager", "attributes": "expertise=novice"},
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 200 and "Saved" in r.content.decode()
    other.refresh_from_db()
    assert other.role == "manager" and Profile.objects.get(user=other.user).attributes == {"expertise": "novice"}


def test_bad_segment_line_is_explained_and_nothing_changes(client, manager):
    other = MembershipFactory(project=manager.project, role="annotator")
    r = client.post(
        f"/projects/proj/members/{other.pk}/",
        {"role": "manager", "attributes": "expert"},
        headers={"HX-Request": "true"},
    )
    assert "line 1: write attributes as key=value" in r.content.decode()
    other.refresh_from_db()
    assert other.role == "annotator"


def test_invitation_link_signs_up_and_joins_once(client, manager):
    client.post("/projects/proj/invitations/", {"role": "annotator"})
    invitation = Invitation.objects.get()
    client.logout()
    url = f"/invite/{invitation.token}/"
    assert "Join" in client.get(url).content.decode()
    r = client.post(url, {"username": "newbie", "password1": "quite-secret-pass-9", "password2": "quite-secret-pass-9"})
    assert r.status_code == 302 and r["Location"] == "/annotate/proj/"
    newbie = get_user_model().objects.get(username="newbie")
    assert Membership.objects.get(user=newbie).role == "annotator"
    client.logout()
    assert client.get(url).status_code == 404  # used up


def test_signed_in_person_joins_with_the_link(client, manager):
    client.post("/projects/proj/invitations/", {"role": "reviewer"})
    invitation = Invitation.objects.get()
    someone = UserFactory()
    client.force_login(someone)
    client.post(f"/invite/{invitation.token}/")
    assert Membership.objects.get(user=someone).role == "reviewer"
