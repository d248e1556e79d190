"""Recording and undoing judgements. The browser, the no-JS form and the API all call these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .models import Assignment, Comparison, Label, Project

UNDO_WINDOW = timedelta(seconds=60)
KEY_TAKEN = "this Idempotency-Key belongs to another label: send a new key for each item"
MAX_TIME_SPENT_MS = 24 * 3600 * 1000


class LabelRejected(ValueError):
    """The judgement does not fit the item or the project's rules; `field` names what to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class IdempotencyConflict(LabelRejected):
    """The Idempotency-Key already names another of the annotator's labels (the API answers 409)."""


IDEMPOTENCY_KEY_MAX = Label._meta.get_field("idempotency_key").max_length


def _checked_idempotency_key(key: str) -> str:
    # Checked here, not by the column: a longer key or a NUL would be a database error on PostgreSQL.
    if len(key) > IDEMPOTENCY_KEY_MAX or not key.isprintable():
        raise LabelRejected("Idempotency-Key", f"a key is 1–{IDEMPOTENCY_KEY_MAX} printable characters")
    return key


@dataclass(frozen=True)
class Judgement:
    """What the annotator chose, in display terms: `a` is the left (or first shown) response."""

    choice: str | list = ""
    """"a", "b", "tie", "both_bad"; for rankings a list of display keys, best first, a nested list a tie."""
    strength: int | None = None
    rationale: str = ""
    time_spent_ms: int | None = None


def display_keys(n: int) -> list[str]:
    return [chr(ord("a") + i) for i in range(n)]


def _canonical_pair_choice(judgement: Judgement, assignment: Assignment, project: Project) -> str:
    choice = judgement.choice
    allowed = ["a", "b"] + (["tie"] if project.allow_tie else []) + (["both_bad"] if project.allow_both_bad else [])
    if choice not in allowed:
        raise LabelRejected("choice", f"choose one of {', '.join(allowed)}")
    if choice in ("tie", "both_bad"):
        return choice
    winner = assignment.display_order[0 if choice == "a" else 1]
    return Label.Choice.A if winner == assignment.comparison.response_a_id else Label.Choice.B


def _ranking_groups(judgement: Judgement, assignment: Assignment) -> list[list[int]]:
    keys = dict(zip(display_keys(len(assignment.display_order)), assignment.display_order, strict=True))
    if not isinstance(judgement.choice, list) or not judgement.choice:
        raise LabelRejected("choice", "a ranking is a list of response keys, best first")
    groups, seen = [], []
    for entry in judgement.choice:
        group = entry if isinstance(entry, list) else [entry]
        if not group or any(not isinstance(k, str) or k not in keys for k in group):
            raise LabelRejected("choice", f"rank only the shown responses: {', '.join(keys)}")
        groups.append([keys[k] for k in group])
        seen.extend(group)
    if sorted(seen) != sorted(keys):
        raise LabelRejected("choice", f"rank every shown response exactly once: {', '.join(keys)}")
    return groups


def _check_extras(judgement: Judgement, project: Project, is_pair: bool) -> tuple[int | None, str]:
    strength = judgement.strength
    if strength in ("", None):
        strength = None
    if is_pair and project.strength_mode == Project.Mode.OFF:
        strength = None
    if strength is not None:
        try:
            strength = int(strength)
        except (TypeError, ValueError):
            raise LabelRejected("strength", "strength is 1 (slightly), 2 (clearly) or 3 (much)") from None
        if strength not in (1, 2, 3):
            raise LabelRejected("strength", "strength is 1 (slightly), 2 (clearly) or 3 (much)")
    needs_strength = is_pair and judgement.choice in ("a", "b") and project.strength_mode == Project.Mode.REQUIRED
    if needs_strength and strength is None:
        raise LabelRejected("strength", "say how much better: slightly, clearly or much")
    rationale = (judgement.rationale or "").strip()
    if project.rationale_mode == Project.Mode.REQUIRED and not rationale:
        raise LabelRejected("rationale", "this project asks for a short rationale")
    if project.rationale_mode == Project.Mode.OFF:
        rationale = ""
    return strength, rationale


@transaction.atomic
def label_submit(
    *,
    assignment: Assignment,
    annotator: AbstractBaseUser,
    judgement: Judgement,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> tuple[Label, bool]:
    """Records one judgement; returns (label, created).

    A second submit of the same assignment (double click, retry, second tab) or of the same Idempotency-Key
    returns the first label unchanged. A key that already names a label of another assignment is refused
    (IdempotencyConflict): answering "already done" would store nothing and leave this item leased.
    A submit after the lease expired is still stored: the work was done.
    """
    now = now or timezone.now()
    if idempotency_key:
        _checked_idempotency_key(idempotency_key)
        earlier = Label.objects.filter(annotator=annotator, idempotency_key=idempotency_key).first()
        if earlier and earlier.assignment_id != assignment.pk:
            raise IdempotencyConflict("Idempotency-Key", KEY_TAKEN)
        if earlier:
            return earlier, False
    # Lock the assignment so concurrent submits of it queue here and the second finds the first's label.
    assignment = Assignment.objects.select_for_update().select_related("comparison__project").get(pk=assignment.pk)
    if assignment.annotator_id != annotator.pk:
        raise LabelRejected("assignment", "this item is not assigned to you")
    if assignment.status == Assignment.Status.SUBMITTED:
        return Label.objects.get(assignment=assignment), False
    if assignment.status == Assignment.Status.SKIPPED:
        raise LabelRejected("assignment", "you skipped this item")
    comparison, project = assignment.comparison, assignment.comparison.project
    is_pair = comparison.kind == Comparison.Kind.PAIR
    if is_pair:
        choice, ranking = _canonical_pair_choice(judgement, assignment, project), None
    else:
        choice, ranking = Label.Choice.RANKING, _ranking_groups(judgement, assignment)
    strength, rationale = _check_extras(judgement, project, is_pair)
    elapsed = judgement.time_spent_ms
    if not isinstance(elapsed, int) or not 0 <= elapsed <= MAX_TIME_SPENT_MS:
        since = assignment.shown_at or assignment.leased_at
        elapsed = min(int((now - since).total_seconds() * 1000), MAX_TIME_SPENT_MS)
    try:
        # No savepoint on the hot path: a conflict aborts the whole submit, which is what we want.
        label = Label.objects.create(
            comparison=comparison,
            annotator=annotator,
            choice=choice,
            ranking=ranking,
            strength=strength,
            rationale=rationale,
            assignment=assignment,
            shown_left_id=assignment.display_order[0],
            time_spent_ms=max(elapsed, 0),
            idempotency_key=idempotency_key or None,
        )
    except IntegrityError:  # the same Idempotency-Key on another assignment, submitted at the same moment
        raise IdempotencyConflict("Idempotency-Key", KEY_TAKEN) from None
    Assignment.objects.filter(pk=assignment.pk).update(status=Assignment.Status.SUBMITTED, finished_at=now)
    Comparison.objects.filter(pk=comparison.pk).update(label_count=F("label_count") + 1)
    return label, True


@transaction.atomic
def label_undo(*, annotator: AbstractBaseUser, project: Project, now: datetime | None = None) -> Assignment | None:
    """Takes back the annotator's last label in `project` if it is younger than UNDO_WINDOW.

    The item goes back to them as a fresh lease, so it is the next thing they see.
    """
    now = now or timezone.now()
    label = (
        Label.objects.select_for_update()
        .filter(
            annotator=annotator,
            comparison__project=project,
            assignment__isnull=False,
            created_at__gte=now - UNDO_WINDOW,
        )
        .order_by("-created_at", "-id")
        .first()
    )
    if label is None:
        return None
    assignment = label.assignment
    label.delete()
    Comparison.objects.filter(pk=assignment.comparison_id).update(label_count=F("label_count") - 1)
    assignment.status = Assignment.Status.LEASED
    assignment.finished_at = None
    # Its leased_at is older than anything else the annotator holds, so the queue shows it first.
    assignment.expires_at = now + timedelta(minutes=max(project.lease_minutes, 1))
    assignment.save(update_fields=["status", "finished_at", "expires_at"])
    return assignment


def ranking_pairs(ranking: list[list[int]]) -> list[tuple[int, int, str]]:
    """Expands a ranking (groups of response ids, best first) into pairwise preferences for analysis and
    export: (first, second, outcome) with outcome "first" when `first` ranked higher, "tie" within a group."""
    pairs: list[tuple[int, int, str]] = []
    for i, group in enumerate(ranking):
        for a_pos, a in enumerate(group):
            pairs.extend((a, b, "tie") for b in group[a_pos + 1 :])
            pairs.extend((a, b, "first") for lower in ranking[i + 1 :] for b in lower)
    return pairs
