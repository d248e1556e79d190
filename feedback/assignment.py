"""The assignment engine: who labels what next.

Each comparison needs k labels from k distinct annotators. A claim picks, in one query, the best comparison
the annotator may take — highest priority, then closest to completion, then oldest — counting submitted
labels and unexpired leases against k. Expiry is part of that query, so an abandoned lease frees its slot by
itself, with no sweeper.

Concurrency: on PostgreSQL the candidate row is locked with FOR UPDATE SKIP LOCKED and, holding the lock, its
active assignments are counted again in a new statement (READ COMMITTED gives each statement a fresh
snapshot), so two claimers can never both take the last slot. On SQLite every transaction takes the write
lock at BEGIN (settings: transaction_mode IMMEDIATE), which serialises claims outright.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import Assignment, Comparison, Project, RankingItem

CLAIM_ATTEMPTS = 5


def _active(now: datetime) -> Q:
    return Q(status=Assignment.Status.SUBMITTED) | Q(status=Assignment.Status.LEASED, expires_at__gt=now)


def _candidates(project: Project, annotator: AbstractBaseUser, now: datetime, *, gold: bool):
    mine = Assignment.objects.filter(comparison=OuterRef("pk"), annotator=annotator)
    qs = Comparison.objects.filter(project=project, servable=True).exclude(Exists(mine))
    if gold:
        # Gold items are answered by everyone once; k does not apply.
        return qs.exclude(gold_choice="").order_by("?")
    active = (
        Assignment.objects.filter(_active(now), comparison=OuterRef("pk"))
        .values("comparison")
        .annotate(n=Count("id"))
        .values("n")
    )
    k = project.labels_per_item
    return (
        qs.filter(gold_choice="", label_count__lt=k)
        .annotate(active=Coalesce(Subquery(active), 0))
        .filter(active__lt=k)
        .order_by("-priority", "-label_count", "id")
    )


def _lease(comparison: Comparison, annotator, project: Project, now: datetime, rng: random.Random) -> Assignment:
    if comparison.kind == Comparison.Kind.PAIR:
        order = [comparison.response_a_id, comparison.response_b_id]
    else:
        order = list(RankingItem.objects.filter(comparison=comparison).values_list("response_id", flat=True))
    rng.shuffle(order)
    return Assignment.objects.create(
        comparison=comparison,
        annotator=annotator,
        display_order=order,
        leased_at=now,
        # Never a lease that is over as it is made (the settings refuse 0; this covers an unsaved project).
        expires_at=now + timedelta(minutes=max(project.lease_minutes, 1)),
    )


def _claim_from(project, annotator, now, rng, *, gold: bool) -> Assignment | None:
    skip: list[int] = []
    postgres = connection.vendor == "postgresql"
    for _ in range(CLAIM_ATTEMPTS):
        qs = _candidates(project, annotator, now, gold=gold).exclude(pk__in=skip)
        if postgres:
            # skip_locked: two annotators must never wait on, or both take, the same row.
            qs = qs.select_for_update(skip_locked=True, of=("self",))
        comparison = qs.select_related("prompt").first()
        if comparison is None:
            return None
        comparison.project = project  # already loaded: saves a query when the item is shown
        if postgres and not gold:
            taken = Assignment.objects.filter(_active(now), comparison=comparison).count()
            if taken >= project.labels_per_item:
                skip.append(comparison.pk)
                continue
        return _lease(comparison, annotator, project, now, rng)
    return None


def assignment_claim(
    *, annotator: AbstractBaseUser, project: Project, now: datetime | None = None, rng: random.Random | None = None
) -> Assignment | None:
    """Leases one new comparison to `annotator`, or returns None when nothing is left for them."""
    now = now or timezone.now()
    rng = rng or random.Random()  # noqa: S311 (display order and gold mixing, not secrets)
    gold_first = project.gold_rate > 0 and rng.random() < project.gold_rate
    for attempt in range(2):
        try:
            with transaction.atomic():
                found = _claim_from(project, annotator, now, rng, gold=True) if gold_first else None
                return found or _claim_from(project, annotator, now, rng, gold=False)
        except IntegrityError:
            # The same person claiming from two tabs at once can race to the same row; the unique
            # (comparison, annotator) constraint refuses the second, and a fresh attempt finds another.
            if attempt:
                raise
    return None


def assignment_queue(
    *, annotator: AbstractBaseUser, project: Project, size: int = 2, now: datetime | None = None
) -> list[Assignment]:
    """The annotator's next `size` items: their unexpired leases first (oldest first), then new claims.

    The page shows the first and renders the second ahead, so the next item is already leased and drawn
    when the current one is submitted.
    """
    now = now or timezone.now()
    held = list(
        Assignment.objects.filter(
            annotator=annotator, comparison__project=project, status=Assignment.Status.LEASED, expires_at__gt=now
        )
        .select_related("comparison__project", "comparison__prompt")
        .order_by("leased_at", "id")[:size]
    )
    while len(held) < size:
        claimed = assignment_claim(annotator=annotator, project=project, now=now)
        if claimed is None:
            break
        held.append(claimed)
    return held
