"""Many annotators (and the same annotator in two tabs) lease and label at once, on PostgreSQL."""

import threading

import pytest
from django.db import connection
from django.db.models import Count, Q

from feedback.assignment import assignment_queue
from feedback.labels import Judgement, label_submit
from feedback.models import Assignment, Comparison, Label
from tests.factories import MembershipFactory, ProjectFactory

from .bulk import bulk_pairs

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

K = 3
ANNOTATORS = 15
TABS = 2  # 30 threads


def test_thirty_threads_never_over_assign_and_lose_no_label():
    project = ProjectFactory(labels_per_item=K)
    bulk_pairs(project, 40)
    users = [MembershipFactory(project=project).user for _ in range(ANNOTATORS)]
    created = []
    errors = []
    barrier = threading.Barrier(ANNOTATORS * TABS)

    def tab(user, n):
        try:
            barrier.wait()
            mine = 0
            while True:
                queue = assignment_queue(annotator=user, project=project, size=1)
                if not queue:
                    break
                # Both tabs may hold the same lease and submit it: one label must come of it.
                _, was_created = label_submit(
                    assignment=queue[0], annotator=user, judgement=Judgement(choice="a" if n else "b")
                )
                mine += was_created
            created.append(mine)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=tab, args=(u, n)) for u in users for n in range(TABS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    labels = Label.objects.filter(comparison__project=project)
    assert sum(created) == labels.count() == 40 * K  # every slot filled, every submit stored once
    per_item = Comparison.objects.filter(project=project).annotate(
        n=Count("labels"), distinct_people=Count("labels__annotator", distinct=True)
    )
    assert all(c.n == K and c.distinct_people == K for c in per_item)
    assert all(c.label_count == c.n for c in per_item)  # the counter did not drift
    over = (
        Assignment.objects.filter(comparison__project=project)
        .values("comparison")
        .annotate(live=Count("id", filter=~Q(status="skipped")))
        .filter(live__gt=K)
    )
    assert not over.exists()
