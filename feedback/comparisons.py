"""Creating comparisons in bulk, for imports and generation jobs alike."""

from __future__ import annotations

from .hashing import members_key
from .models import Comparison, Project, RankingItem, Response

RANKING_MAX = 6
"""Most responses one ranking shows at once: beyond six, annotators stop reading them all."""

IDS_PER_QUERY = 10_000
"""PostgreSQL takes at most 65,535 parameters in one statement."""


def comparisons_create(*, project: Project, wanted: list[tuple[int, list[int]]]) -> list[Comparison]:
    """One comparison per (prompt id, sorted response ids): a pair for two, a ranking (with its items) for more.

    A comparison with an empty response among its members (an empty answer from an imported judged pair) is
    stored unservable: its imported judgement counts, but no annotator is asked to read an empty answer. Every
    writer comes through here, so a later import or generation that pairs that response never serves it either.

    The caller has left out member sets the prompt already has; the database's unique key would refuse them."""
    empty = _empty_responses({rid for _, ids in wanted for rid in ids})
    created = Comparison.objects.bulk_create(
        [
            Comparison(
                project=project,
                prompt_id=pid,
                kind=Comparison.Kind.PAIR if len(ids) == 2 else Comparison.Kind.RANKING,
                response_a_id=ids[0] if len(ids) == 2 else None,
                response_b_id=ids[1] if len(ids) == 2 else None,
                members_key=members_key(ids),
                servable=empty.isdisjoint(ids),
            )
            for pid, ids in wanted
        ],
        batch_size=1000,
    )
    RankingItem.objects.bulk_create(
        [
            RankingItem(comparison_id=obj.id, response_id=rid, position=n)
            for obj, (_, ids) in zip(created, wanted, strict=True)
            if len(ids) > 2
            for n, rid in enumerate(ids)
        ],
        batch_size=1000,
    )
    return created


def _empty_responses(ids: set[int]) -> set[int]:
    """Which of these responses are empty: one query (per 10,000 ids)."""
    ordered = sorted(ids)
    empty: set[int] = set()
    for start in range(0, len(ordered), IDS_PER_QUERY):
        chunk = ordered[start : start + IDS_PER_QUERY]
        empty.update(Response.objects.filter(id__in=chunk, text="").values_list("id", flat=True))
    return empty
