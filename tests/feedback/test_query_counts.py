"""Leasing and labelling cost the same, small number of queries in a tiny project and a large one."""

import pytest
from rest_framework.test import APIClient

from tests.factories import MembershipFactory

from .bulk import bulk_pairs

pytestmark = pytest.mark.django_db

MAX_QUERIES = 10


@pytest.mark.slow
@pytest.mark.parametrize("size", [10, 10_000])
def test_next_and_label_query_counts_do_not_grow_with_the_project(size, django_assert_max_num_queries):
    member = MembershipFactory(project__labels_per_item=2)
    bulk_pairs(member.project, size)
    client = APIClient()
    client.force_authenticate(member.user)
    counts = []
    for _ in range(3):  # a fresh claim each round, deeper into the queue
        with django_assert_max_num_queries(MAX_QUERIES) as next_q:
            item = client.get(f"/api/v1/projects/{member.project.slug}/next/").json()
        with django_assert_max_num_queries(MAX_QUERIES) as label_q:
            r = client.post(f"/api/v1/assignments/{item['assignment_id']}/label/", {"choice": "a"}, format="json")
        assert r.status_code == 201
        counts.append((len(next_q), len(label_q)))
    assert len(set(counts)) == 1, counts  # the same every round
