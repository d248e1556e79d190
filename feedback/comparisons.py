"""Creating comparisons in bulk, for imports and generation jobs alike."""

from __future__ import annotations

from .hashing import members_key
from .models import Comparison, Project, RankingItem

RANKING_MAX = 6
"""Most responses one ranking shows at once: beyond six, annotators stop reading them all."""


def comparisons_create(*, project: Project, wanted: list[tuple[int, list[int]]]) -> list[Comparison]:
    """One comparison per (prompt id, sorted response ids): a pair for two, a ranking (with its items) for more.

    The caller has left out member sets the prompt already has; the database's unique key would refuse them."""
    created = Comparison.objects.bulk_create(
        [
            Comparison(
                project=project,
                prompt_id=pid,
                kind=Comparison.Kind.PAIR if len(ids) == 2 else Comparison.Kind.RANKING,
                response_a_id=ids[0] if len(ids) == 2 else None,
                response_b_id=ids[1] if len(ids) == 2 else None,
                members_key=members_key(ids),
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
