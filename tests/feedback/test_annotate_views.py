"""The annotate page without JavaScript (plain form posts) and with the keyboard script's requests."""

import pytest

from feedback.models import Assignment, Comparison, Demonstration, Flag, Label
from tests.factories import MembershipFactory, make_pair, make_ranking

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(client):
    membership = MembershipFactory(project__labels_per_item=1, project__hide_model_names=True)
    client.force_login(membership.user)
    return membership


def held(user):
    return list(Assignment.objects.filter(annotator=user, status="leased").order_by("leased_at", "id"))


def test_page_shows_the_current_item_and_renders_the_next_ahead(client, member):
    c1, c2, c3 = (make_pair(member.project) for _ in range(3))
    page = client.get(f"/annotate/{member.project.slug}/").content.decode()
    current, ahead = held(member.user)
    assert f'data-assignment="{current.pk}"' in page and f'data-assignment="{ahead.pk}"' in page
    assert (
        page.index(f'data-assignment="{current.pk}"')
        < page.index('id="ahead"')
        < page.index(f'data-assignment="{ahead.pk}"')
    )
    assert "model-x" not in page  # model names hidden


def test_model_names_shown_when_the_project_allows(client, member):
    member.project.hide_model_names = False
    member.project.save()
    make_pair(member.project)
    assert "model-x" in client.get(f"/annotate/{member.project.slug}/").content.decode()


def test_no_js_label_post_stores_the_label_and_redirects(client, member):
    make_pair(member.project)
    client.get(f"/annotate/{member.project.slug}/")
    (current,) = held(member.user)
    r = client.post(
        f"/annotate/{member.project.slug}/label/", {"assignment_id": current.pk, "choice": "b", "strength": "3"}
    )
    assert r.status_code == 302 and r["Location"] == f"/annotate/{member.project.slug}/"
    label = Label.objects.get()
    assert (label.annotator, label.strength, label.assignment_id) == (member.user, 3, current.pk)
    assert label.shown_left_id == current.display_order[0]
    assert label.time_spent_ms is not None


def test_no_js_invalid_label_shows_why_and_stores_nothing(client, member):
    member.project.rationale_mode = "required"
    member.project.save()
    make_pair(member.project)
    client.get(f"/annotate/{member.project.slug}/")
    (current,) = held(member.user)
    r = client.post(
        f"/annotate/{member.project.slug}/label/", {"assignment_id": current.pk, "choice": "a"}, follow=True
    )
    assert "this project asks for a short rationale" in r.content.decode()
    assert not Label.objects.exists()


def test_keyboard_script_gets_the_next_item_to_render_ahead(client, member):
    for _ in range(3):
        make_pair(member.project)
    client.get(f"/annotate/{member.project.slug}/")
    current, ahead = held(member.user)
    r = client.post(
        f"/annotate/{member.project.slug}/label/",
        {"assignment_id": current.pk, "choice": "a", "time_spent_ms": "1234", "showing": ahead.pk},
        headers={"X-Juror-Ahead": "1"},
    )
    assert r.status_code == 200
    third = Assignment.objects.exclude(pk__in=[current.pk, ahead.pk]).get(annotator=member.user)
    assert f'data-assignment="{third.pk}"' in r.content.decode()
    assert f'data-assignment="{ahead.pk}"' not in r.content.decode()
    assert Label.objects.get().time_spent_ms == 1234


def test_keyboard_script_error_is_json(client, member):
    make_pair(member.project)
    client.get(f"/annotate/{member.project.slug}/")
    (current,) = held(member.user)
    r = client.post(
        f"/annotate/{member.project.slug}/label/",
        {"assignment_id": current.pk, "choice": "maybe"},
        headers={"X-Juror-Ahead": "1"},
    )
    assert r.status_code == 400 and r.json()["field"] == "choice"


def test_someone_elses_assignment_is_404(client, member):
    make_pair(member.project)
    other = MembershipFactory(project=member.project)
    from feedback.assignment import assignment_claim

    theirs = assignment_claim(annotator=other.user, project=member.project)
    r = client.post(f"/annotate/{member.project.slug}/label/", {"assignment_id": theirs.pk, "choice": "a"})
    assert r.status_code == 404 and not Label.objects.exists()


def test_outsider_gets_404_for_the_project(client):
    make_pair()
    membership = MembershipFactory()
    client.force_login(membership.user)
    other = Comparison.objects.get().project
    assert client.get(f"/annotate/{other.slug}/").status_code == 404


def test_skip_with_reason_then_next_item(client, member):
    make_pair(member.project), make_pair(member.project)
    client.get(f"/annotate/{member.project.slug}/")
    current, _ = held(member.user)
    r = client.post(
        f"/annotate/{member.project.slug}/skip/",
        {"assignment_id": current.pk, "reason": "unsure"},
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 200 and 'id="workspace"' in r.content.decode()
    current.refresh_from_db()
    assert (current.status, current.skip_reason) == ("skipped", "unsure")


def test_undo_brings_the_item_back_first(client, member):
    make_pair(member.project), make_pair(member.project), make_pair(member.project)
    client.get(f"/annotate/{member.project.slug}/")
    current, ahead = held(member.user)
    client.post(f"/annotate/{member.project.slug}/label/", {"assignment_id": current.pk, "choice": "a"})
    r = client.post(f"/annotate/{member.project.slug}/undo/", headers={"HX-Request": "true"})
    page = r.content.decode()
    assert not Label.objects.exists()
    assert page.index(f'data-assignment="{current.pk}"') < page.index('id="ahead"')


def test_flag_records_and_skips(client, member):
    make_pair(member.project)
    client.get(f"/annotate/{member.project.slug}/")
    (current,) = held(member.user)
    client.post(
        f"/annotate/{member.project.slug}/flag/",
        {"assignment_id": current.pk, "reason": "harmful", "note": "dangerous advice"},
    )
    flag = Flag.objects.get()
    assert (flag.reason, flag.note, flag.annotator) == ("harmful", "dangerous advice", member.user)
    current.refresh_from_db()
    assert current.status == "skipped" and current.skip_reason == "flagged: harmful"


def test_write_a_better_answer_keeps_provenance(client, member):
    pair = make_pair(member.project)
    client.get(f"/annotate/{member.project.slug}/")
    (current,) = held(member.user)
    r = client.post(
        f"/annotate/{member.project.slug}/demonstration/",
        {"assignment_id": current.pk, "based_on": pair.response_b_id, "text": "A better answer."},
        headers={"HX-Request": "true"},
    )
    assert "Saved" in r.content.decode()
    demo = Demonstration.objects.get()
    assert (demo.prompt_id, demo.comparison_id, demo.based_on_id, demo.author, demo.text) == (
        pair.prompt_id,
        pair.pk,
        pair.response_b_id,
        member.user,
        "A better answer.",
    )


def test_ranking_item_by_form_fields(client, member):
    make_ranking(member.project)
    page = client.get(f"/annotate/{member.project.slug}/").content.decode()
    assert 'name="rank_d"' in page
    (current,) = held(member.user)
    client.post(
        f"/annotate/{member.project.slug}/label/",
        {"assignment_id": current.pk, "rank_a": "2", "rank_b": "1", "rank_c": "2", "rank_d": "3"},
    )
    label = Label.objects.get()
    shown = current.display_order
    assert label.choice == "ranking"
    assert label.ranking == [[shown[1]], [shown[0], shown[2]], [shown[3]]]


def test_annotate_home_lists_progress(client, member):
    make_pair(member.project), make_pair(member.project)
    page = client.get("/annotate/").content.decode()
    assert member.project.name in page and "2 waiting" in page


def test_waiting_count_is_capped_for_large_projects(client, member):
    from feedback.annotation import REMAINING_CAP, annotator_progress

    from .bulk import bulk_pairs

    bulk_pairs(member.project, REMAINING_CAP + 5)
    assert annotator_progress(annotator=member.user, project=member.project)["remaining"] == "1,000+"
