"""Scripts and load tests drive exactly what the browser drives: next item, then a label."""

import pytest
from rest_framework.test import APIClient

from feedback.models import Label
from tests.factories import MembershipFactory, make_pair, make_ranking

pytestmark = pytest.mark.django_db


@pytest.fixture
def member():
    return MembershipFactory(project__slug="p", project__hide_model_names=False)


@pytest.fixture
def api(member):
    client = APIClient()
    client.force_authenticate(member.user)
    return client


def test_next_then_label_a_pair(api, member):
    pair = make_pair(member.project)
    item = api.get("/api/v1/projects/p/next/").json()
    assert item["comparison"] == pair.pk and item["kind"] == "pair"
    assert item["messages"] == pair.prompt.messages
    assert set(item["responses"]) == {"a", "b"}
    texts = {pair.response_a.text, pair.response_b.text}
    assert {r["text"] for r in item["responses"].values()} == texts
    assert {r["model"] for r in item["responses"].values()} == {"model-x"}
    r = api.post(
        f"/api/v1/assignments/{item['assignment_id']}/label/",
        {"choice": "b", "strength": 2, "rationale": "clearer", "time_spent_ms": 4100},
        format="json",
    )
    assert r.status_code == 201 and r.json()["created"] is True
    label = Label.objects.get()
    winner = label.comparison.response_a if label.choice == "a" else label.comparison.response_b
    assert winner.text == item["responses"]["b"]["text"]
    assert (label.strength, label.rationale, label.time_spent_ms) == (2, "clearer", 4100)


def test_next_returns_the_same_lease_until_labelled(api, member):
    make_pair(member.project), make_pair(member.project)
    first = api.get("/api/v1/projects/p/next/").json()
    assert api.get("/api/v1/projects/p/next/").json()["assignment_id"] == first["assignment_id"]


def test_next_is_204_when_nothing_is_left(api, member):
    assert api.get("/api/v1/projects/p/next/").status_code == 204


def test_model_names_are_null_when_hidden(api, member):
    member.project.hide_model_names = True
    member.project.save()
    make_pair(member.project)
    item = api.get("/api/v1/projects/p/next/").json()
    assert {r["model"] for r in item["responses"].values()} == {None}


def test_idempotency_key_stores_one_label(api, member):
    make_pair(member.project)
    item = api.get("/api/v1/projects/p/next/").json()
    url = f"/api/v1/assignments/{item['assignment_id']}/label/"
    first = api.post(url, {"choice": "a"}, format="json", headers={"Idempotency-Key": "abc-1"})
    retry = api.post(url, {"choice": "a"}, format="json", headers={"Idempotency-Key": "abc-1"})
    assert (first.status_code, retry.status_code) == (201, 200)
    assert first.json()["label_id"] == retry.json()["label_id"]
    assert Label.objects.count() == 1


def test_bad_choice_is_400_naming_the_field(api, member):
    make_pair(member.project)
    item = api.get("/api/v1/projects/p/next/").json()
    r = api.post(f"/api/v1/assignments/{item['assignment_id']}/label/", {"choice": "c"}, format="json")
    assert r.status_code == 400 and "choice" in r.json()
    r = api.post(f"/api/v1/assignments/{item['assignment_id']}/label/", {"choice": "a", "strength": 7}, format="json")
    assert r.status_code == 400 and "strength" in r.json()
    assert not Label.objects.exists()


def test_rank_a_four_way_item(api, member):
    ranking = make_ranking(member.project)
    responses = [i.response for i in ranking.ranking_items.select_related("response")]
    item = api.get("/api/v1/projects/p/next/").json()
    assert item["kind"] == "ranking" and list(item["responses"]) == ["a", "b", "c", "d"]
    url = f"/api/v1/assignments/{item['assignment_id']}/label/"
    bad = api.post(url, {"choice": ["a", "b", "c"]}, format="json")
    assert bad.status_code == 400 and "exactly once" in bad.json()["choice"][0]
    r = api.post(url, {"choice": ["c", ["a", "d"], "b"]}, format="json")
    assert r.status_code == 201
    by_text = {r.id: r.text for r in responses}
    ranked = [[by_text[i] for i in group] for group in Label.objects.get().ranking]
    shown = item["responses"]
    assert ranked == [[shown["c"]["text"]], [shown["a"]["text"], shown["d"]["text"]], [shown["b"]["text"]]]


def test_stats_hide_model_names_from_annotators_when_the_project_does(api, member):
    make_pair(member.project)
    member.project.hide_model_names = True
    member.project.save()
    assert "models" not in api.get("/api/v1/projects/p/stats/").json()
    manager = MembershipFactory(project=member.project, role="manager").user
    client = APIClient()
    client.force_authenticate(manager)
    assert client.get("/api/v1/projects/p/stats/").json()["models"] == ["model-x"]


def test_label_with_next_returns_the_following_item(api, member):
    make_pair(member.project), make_pair(member.project)
    first = api.get("/api/v1/projects/p/next/").json()
    r = api.post(f"/api/v1/assignments/{first['assignment_id']}/label/?next=1", {"choice": "a"}, format="json")
    assert r.status_code == 201
    following = r.json()["next"]
    assert following["assignment_id"] != first["assignment_id"] and set(following["responses"]) == {"a", "b"}
    r = api.post(f"/api/v1/assignments/{following['assignment_id']}/label/?next=1", {"choice": "b"}, format="json")
    assert r.json()["next"] is None
    assert Label.objects.count() == 2
