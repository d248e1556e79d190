import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from annotators.models import Invitation, Membership
from feedback.exports.options import ExportOptions
from feedback.exports.service import export_preferences
from feedback.models import Label
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_pair

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(client):
    m = MembershipFactory(role="manager", project__slug="proj")
    client.force_login(m.user)
    return m


def add(client, follow=False, **data):
    return client.post("/projects/proj/members/add/", {"role": "annotator", **data}, follow=follow)


def error_of(response) -> str:
    """The add form's error line, as the manager reads it."""
    match = re.search(r'<p class="error">(.*?)</p>', response.content.decode(), re.S)
    return match.group(1) if match else ""


def without_tokens(response) -> str:
    """The page minus its CSRF tokens, which differ on every response."""
    return re.sub(r'(csrfmiddlewaretoken" value="|"X-CSRFToken": ")[^"]+', r"\1", response.content.decode())


def expert_comparisons(project, tmp_path) -> list[int]:
    """Comparison ids in `project`'s export segmented by expertise=expert."""
    out = tmp_path / f"export-{project.pk}-{len(list(tmp_path.iterdir()))}"
    options = ExportOptions(format="jsonl", test_fraction=0, segment="expertise=expert")
    path = export_preferences(project=project, options=options, out=out).path / "train.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["comparison_id"] for line in path.read_text(encoding="utf-8").splitlines()]


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
    membership = Membership.objects.get(user=kim)
    assert membership.role == "reviewer"
    assert membership.attributes == {"expertise": "expert", "audience": "adult"}


def test_adding_an_unknown_person_without_password_suggests_an_invitation(client, manager):
    r = add(client, username="ghost")
    assert r.status_code == 200 and "send an invitation link" in error_of(r)
    assert not get_user_model().objects.filter(username="ghost").exists()


def test_an_account_elsewhere_and_no_account_get_the_same_answer(client, manager):
    nobody = add(client, username="ghost")
    MembershipFactory(user__username="ghost", project=ProjectFactory())  # exists, in a project kept from us
    somebody = add(client, username="ghost")
    assert somebody.status_code == nobody.status_code == 200
    assert error_of(somebody) == error_of(nobody) != ""
    assert without_tokens(somebody) == without_tokens(nobody)
    assert not Membership.objects.filter(project=manager.project, user__username="ghost").exists()


def test_a_password_does_not_add_an_account_from_elsewhere(client, manager):
    stranger = MembershipFactory(user__username="ghost", project=ProjectFactory()).user
    r = add(client, username="ghost", password="a-long-passphrase-42", attributes="expertise=novice")
    assert r.status_code == 200 and "taken" in r.content.decode()
    assert not Membership.objects.filter(project=manager.project, user=stranger).exists()
    stranger.refresh_from_db()
    assert stranger.check_password("pw-for-tests-1")


def test_manager_adds_someone_from_another_project_they_manage(client, manager):
    other = ProjectFactory()
    MembershipFactory(user=manager.user, project=other, role="manager")
    kim = MembershipFactory(user__username="kim", project=other).user
    r = add(client, username="kim", attributes="expertise=expert", follow=True)
    assert "Added kim as annotator" in r.content.decode()
    assert Membership.objects.get(user=kim, project=manager.project).attributes == {"expertise": "expert"}
    assert Membership.objects.get(user=kim, project=other).attributes == {}


def test_being_annotator_elsewhere_is_not_enough_to_add_people_from_there(client, manager):
    other = ProjectFactory()
    MembershipFactory(user=manager.user, project=other, role="annotator")
    MembershipFactory(user__username="kim", project=other)
    r = add(client, username="kim")
    assert "send an invitation link" in error_of(r)
    assert not Membership.objects.filter(project=manager.project, user__username="kim").exists()


def test_staff_add_any_existing_account(client):
    project = ProjectFactory(slug="proj")
    client.force_login(UserFactory(is_staff=True))
    kim = MembershipFactory(user__username="kim", project=ProjectFactory()).user
    r = add(client, username="kim", follow=True)
    assert "Added kim as annotator" in r.content.decode()
    assert Membership.objects.filter(user=kim, project=project).exists()


@pytest.mark.parametrize(
    "username, message",
    [
        ("bad name!", "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_"),
        ("k" * 151, "Ensure this value has at most 150 characters"),
    ],
)
def test_invalid_username_is_explained_and_creates_nothing(client, manager, username, message):
    r = add(client, username=username, password="a-long-passphrase-42")
    assert r.status_code == 200 and message in r.content.decode()
    assert get_user_model().objects.count() == 1  # the manager
    assert Membership.objects.count() == 1


@pytest.fixture
def elsewhere(client, manager):
    """kim works in the manager's project and in project "other", whose own manager made kim an expert there;
    kim's label there is in other's expertise=expert export."""
    kim = MembershipFactory(user__username="kim", project=manager.project)
    other = ProjectFactory(slug="other")
    other_manager = MembershipFactory(project=other, role="manager").user
    kim_there = MembershipFactory(user=kim.user, project=other)
    client.force_login(other_manager)
    client.post(f"/projects/other/members/{kim_there.pk}/", {"role": "annotator", "attributes": "expertise=expert"})
    labelled = make_pair(other)
    Label.objects.create(comparison=labelled, annotator=kim.user, choice="a")
    client.force_login(manager.user)
    return {"kim": kim, "project": other, "manager": other_manager, "labelled": labelled}


def segments_on_page(client, slug, username) -> str:
    page = client.get(f"/projects/{slug}/members/").content.decode()
    return re.search(rf'aria-label="Segments of {username}"[^>]*>(.*?)</textarea>', page, re.S).group(1)


def test_re_adding_a_member_changes_only_this_projects_segments(client, manager, elsewhere, tmp_path):
    """The report: members/add/ with an existing username replaced the person's segments in every project."""
    assert expert_comparisons(elsewhere["project"], tmp_path) == [elsewhere["labelled"].pk]

    r = add(client, username="kim", attributes="expertise=novice", follow=True)

    assert "Added kim as annotator" in r.content.decode()
    assert segments_on_page(client, "proj", "kim") == "expertise=novice"
    assert expert_comparisons(elsewhere["project"], tmp_path) == [elsewhere["labelled"].pk]
    client.force_login(elsewhere["manager"])
    assert segments_on_page(client, "other", "kim") == "expertise=expert"


def test_editing_segments_changes_only_this_project(client, manager, elsewhere, tmp_path):
    ours = make_pair(manager.project)
    Label.objects.create(comparison=ours, annotator=elsewhere["kim"].user, choice="a")

    client.post(
        f"/projects/proj/members/{elsewhere['kim'].pk}/", {"role": "annotator", "attributes": "expertise=expert"}
    )
    assert expert_comparisons(manager.project, tmp_path) == [ours.pk]
    client.post(
        f"/projects/proj/members/{elsewhere['kim'].pk}/", {"role": "annotator", "attributes": "expertise=novice"}
    )

    assert segments_on_page(client, "proj", "kim") == "expertise=novice"
    assert expert_comparisons(manager.project, tmp_path) == []
    assert expert_comparisons(elsewhere["project"], tmp_path) == [elsewhere["labelled"].pk]
    client.force_login(elsewhere["manager"])
    assert segments_on_page(client, "other", "kim") == "expertise=expert"


def test_members_page_shows_and_edits_each_projects_own_segments(client, manager, elsewhere):
    assert segments_on_page(client, "proj", "kim") == ""
    client.post(f"/projects/proj/members/{elsewhere['kim'].pk}/", {"role": "annotator", "attributes": "audience=adult"})
    assert segments_on_page(client, "proj", "kim") == "audience=adult"
    client.force_login(elsewhere["manager"])
    assert segments_on_page(client, "other", "kim") == "expertise=expert"


def test_manager_changes_role_and_segments_with_htmx(client, manager):
    other = MembershipFactory(project=manager.project, role="annotator")
    r = client.post(
        f"/projects/proj/members/{other.pk}/",
        {"role": "manager", "attributes": "expertise=novice"},
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 200 and "Saved" in r.content.decode()
    other.refresh_from_db()
    assert other.role == "manager" and other.attributes == {"expertise": "novice"}


@pytest.mark.parametrize(
    "attributes, message",
    [
        ("expert", "line 1: write attributes as key=value"),
        ("level=1\nexpertise__x=y", "line 2: a segment name starts with a letter"),
        ("area of work=law", "line 1: a segment name starts with a letter"),
    ],
)
def test_bad_segment_line_is_explained_and_nothing_changes(client, manager, attributes, message):
    other = MembershipFactory(project=manager.project, role="annotator", attributes={"expertise": "expert"})
    r = client.post(
        f"/projects/proj/members/{other.pk}/",
        {"role": "manager", "attributes": attributes},
        headers={"HX-Request": "true"},
    )
    assert message in r.content.decode()
    other.refresh_from_db()
    assert other.role == "annotator" and other.attributes == {"expertise": "expert"}


@pytest.mark.parametrize("attributes", [["expertise"], {"a__b": "c"}, {"expertise": 3}])
def test_admin_refuses_segments_that_exports_cannot_read(attributes):
    membership = MembershipFactory()
    membership.attributes = attributes
    with pytest.raises(ValidationError):
        membership.full_clean()


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
