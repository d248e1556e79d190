import random
from datetime import timedelta

import pytest
from django.utils import timezone

from feedback.annotation import annotator_progress, assignment_skip
from feedback.assignment import assignment_claim, assignment_queue
from feedback.labels import Judgement, LabelRejected, label_submit, label_undo
from feedback.models import Assignment, Comparison, Label
from tests.factories import ProjectFactory, UserFactory, make_pair

pytestmark = pytest.mark.django_db


def submit(assignment, user, choice="a", **kw):
    return label_submit(assignment=assignment, annotator=user, judgement=Judgement(choice=choice, **kw))


def test_each_comparison_gets_k_distinct_annotators():
    project = ProjectFactory(labels_per_item=2)
    c = make_pair(project)
    users = [UserFactory() for _ in range(3)]
    first = assignment_claim(annotator=users[0], project=project)
    second = assignment_claim(annotator=users[1], project=project)
    assert first.comparison == second.comparison == c
    assert assignment_claim(annotator=users[2], project=project) is None  # k slots are taken by live leases
    assert assignment_claim(annotator=users[0], project=project) is None  # never the same item twice


def test_order_is_priority_then_closest_to_completion_then_oldest():
    project = ProjectFactory(labels_per_item=3)
    old, newer, urgent, almost = (make_pair(project) for _ in range(4))
    Comparison.objects.filter(pk=urgent.pk).update(priority=5)
    Comparison.objects.filter(pk=almost.pk).update(label_count=2)
    user = UserFactory()
    got = [assignment_claim(annotator=user, project=project).comparison_id for _ in range(4)]
    assert got == [urgent.pk, almost.pk, old.pk, newer.pk]


def test_expired_lease_frees_the_slot_without_a_sweeper():
    project = ProjectFactory(labels_per_item=1, lease_minutes=10)
    make_pair(project)
    alice, bob = UserFactory(), UserFactory()
    t0 = timezone.now()
    lease = assignment_claim(annotator=alice, project=project, now=t0)
    assert assignment_claim(annotator=bob, project=project, now=t0 + timedelta(minutes=9)) is None
    taken = assignment_claim(annotator=bob, project=project, now=t0 + timedelta(minutes=11))
    assert taken.comparison_id == lease.comparison_id


def test_late_submit_after_expiry_is_stored():
    project = ProjectFactory(labels_per_item=1, lease_minutes=1)
    make_pair(project)
    alice = UserFactory()
    t0 = timezone.now()
    lease = assignment_claim(annotator=alice, project=project, now=t0)
    label, created = label_submit(
        assignment=lease, annotator=alice, judgement=Judgement(choice="b"), now=t0 + timedelta(hours=2)
    )
    assert created and Label.objects.filter(pk=label.pk).exists()
    assert Comparison.objects.get().label_count == 1


def test_skip_releases_the_lease_and_is_never_offered_again():
    project = ProjectFactory(labels_per_item=1)
    make_pair(project)
    alice, bob = UserFactory(), UserFactory()
    lease = assignment_claim(annotator=alice, project=project)
    assignment_skip(assignment=lease, annotator=alice, reason="not my language")
    assert Assignment.objects.get(pk=lease.pk).skip_reason == "not my language"
    assert assignment_claim(annotator=alice, project=project) is None
    assert assignment_claim(annotator=bob, project=project) is not None
    with pytest.raises(LabelRejected, match="you skipped this item"):
        submit(lease, alice)


def test_double_submit_keeps_one_label():
    project = ProjectFactory()
    make_pair(project)
    user = UserFactory()
    lease = assignment_claim(annotator=user, project=project)
    first, created1 = submit(lease, user, "a")
    second, created2 = submit(lease, user, "b")
    assert (created1, created2) == (True, False) and first.pk == second.pk
    assert Label.objects.count() == 1 and Comparison.objects.get().label_count == 1


def test_same_idempotency_key_returns_the_first_label():
    project = ProjectFactory()
    make_pair(project)
    user = UserFactory()
    lease = assignment_claim(annotator=user, project=project)
    first, _ = label_submit(assignment=lease, annotator=user, judgement=Judgement(choice="a"), idempotency_key="k1")
    again, created = label_submit(
        assignment=lease, annotator=user, judgement=Judgement(choice="a"), idempotency_key="k1"
    )
    assert not created and again.pk == first.pk


def test_display_choice_maps_to_the_canonical_pair():
    project = ProjectFactory()
    c = make_pair(project)
    user = UserFactory()
    lease = assignment_claim(annotator=user, project=project)
    label, _ = submit(lease, user, "a")  # "a" is whatever was shown on the left
    left = lease.display_order[0]
    assert label.shown_left_id == left
    assert label.choice == ("a" if left == c.response_a_id else "b")


def test_left_right_order_is_randomised_per_assignment():
    project = ProjectFactory(labels_per_item=50)
    make_pair(project)
    lefts = {assignment_claim(annotator=UserFactory(), project=project).display_order[0] for _ in range(30)}
    assert len(lefts) == 2


def test_project_rules_are_enforced():
    project = ProjectFactory(allow_tie=False, strength_mode="required", rationale_mode="required")
    make_pair(project)
    user = UserFactory()
    lease = assignment_claim(annotator=user, project=project)
    with pytest.raises(LabelRejected, match="choose one of a, b, both_bad"):
        submit(lease, user, "tie")
    with pytest.raises(LabelRejected, match="how much better"):
        submit(lease, user, "a", rationale="because")
    with pytest.raises(LabelRejected, match="rationale"):
        submit(lease, user, "a", strength=2)
    label, _ = submit(lease, user, "a", strength=2, rationale="clearer")
    assert (label.strength, label.rationale) == (2, "clearer")
    assert Label.objects.count() == 1


def test_undo_within_the_window_gives_the_item_back():
    project = ProjectFactory()
    make_pair(project), make_pair(project)
    user = UserFactory()
    t0 = timezone.now()
    queue = assignment_queue(annotator=user, project=project, now=t0)
    label_submit(assignment=queue[0], annotator=user, judgement=Judgement(choice="a"), now=t0)
    assert Comparison.objects.get(pk=queue[0].comparison_id).label_count == 1
    back = label_undo(annotator=user, project=project, now=t0 + timedelta(seconds=5))
    assert back.pk == queue[0].pk and not Label.objects.exists()
    assert Comparison.objects.get(pk=queue[0].comparison_id).label_count == 0
    assert assignment_queue(annotator=user, project=project, now=t0 + timedelta(seconds=6))[0].pk == back.pk


def test_undo_after_the_window_does_nothing():
    project = ProjectFactory()
    make_pair(project)
    user = UserFactory()
    t0 = timezone.now()
    lease = assignment_claim(annotator=user, project=project, now=t0)
    label_submit(assignment=lease, annotator=user, judgement=Judgement(choice="a"), now=t0)
    Label.objects.update(created_at=t0 - timedelta(minutes=5))
    assert label_undo(annotator=user, project=project, now=t0) is None
    assert Label.objects.count() == 1


def test_gold_items_are_mixed_in_and_scored():
    project = ProjectFactory(gold_rate=1.0, show_gold_accuracy=True, labels_per_item=1)
    regular = make_pair(project)
    gold = make_pair(project)
    Comparison.objects.filter(pk=gold.pk).update(gold_choice="a")
    user = UserFactory()
    first = assignment_claim(annotator=user, project=project, rng=random.Random(0))
    assert first.comparison_id == gold.pk
    # Answer the gold item right: pick the display key whose response is canonical "a".
    right = "a" if first.display_order[0] == gold.response_a_id else "b"
    submit(first, user, right)
    assert assignment_claim(annotator=user, project=project).comparison_id == regular.pk
    progress = annotator_progress(annotator=user, project=project)
    assert progress["gold_accuracy"] == 1.0 and progress["gold_answered"] == 1


def test_gold_items_do_not_use_up_k():
    project = ProjectFactory(gold_rate=1.0, labels_per_item=1)
    gold = make_pair(project)
    Comparison.objects.filter(pk=gold.pk).update(gold_choice="b")
    users = [UserFactory() for _ in range(3)]
    assert all(assignment_claim(annotator=u, project=project).comparison_id == gold.pk for u in users)


def test_queue_returns_held_leases_before_claiming_more():
    project = ProjectFactory()
    for _ in range(4):
        make_pair(project)
    user = UserFactory()
    first = assignment_queue(annotator=user, project=project)
    again = assignment_queue(annotator=user, project=project)
    assert [a.pk for a in first] == [a.pk for a in again]
    assert Assignment.objects.filter(annotator=user).count() == 2


def test_a_ranking_expands_into_pairwise_preferences():
    from feedback.labels import ranking_pairs

    # c best; a and d tied; b last
    assert sorted(ranking_pairs([[3], [1, 4], [2]])) == sorted(
        [(3, 1, "first"), (3, 4, "first"), (3, 2, "first"), (1, 4, "tie"), (1, 2, "first"), (4, 2, "first")]
    )
