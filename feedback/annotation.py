"""Everything an annotator does to an item besides labelling it: skip, flag, write a better answer; and the
plain data a page or the API needs to show an item."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from .labels import LabelRejected, display_keys
from .models import Assignment, Comparison, Demonstration, Flag, Label, Project, Response


def _own_leased(assignment: Assignment, annotator: AbstractBaseUser) -> Assignment:
    if assignment.annotator_id != annotator.pk:
        raise LabelRejected("assignment", "this item is not assigned to you")
    if assignment.status != Assignment.Status.LEASED:
        raise LabelRejected("assignment", "this item is already finished")
    return assignment


def assignment_mark_shown(assignment: Assignment, now: datetime | None = None) -> Assignment:
    """Starts the item's clock the first time a page shows it (the no-JS fallback for time spent)."""
    if assignment.shown_at is None:
        assignment.shown_at = now or timezone.now()
        Assignment.objects.filter(pk=assignment.pk, shown_at__isnull=True).update(shown_at=assignment.shown_at)
    return assignment


@transaction.atomic
def assignment_skip(
    *, assignment: Assignment, annotator: AbstractBaseUser, reason: str = "", now: datetime | None = None
) -> Assignment:
    """Gives the item back: the lease stops counting toward k at once, and this person never gets it again."""
    assignment = _own_leased(Assignment.objects.select_for_update().get(pk=assignment.pk), annotator)
    assignment.status = Assignment.Status.SKIPPED
    assignment.skip_reason = (reason or "").strip()[:200] or "skipped"
    assignment.finished_at = now or timezone.now()
    assignment.save(update_fields=["status", "skip_reason", "finished_at"])
    return assignment


@transaction.atomic
def flag_create(*, assignment: Assignment, annotator: AbstractBaseUser, reason: str, note: str = "") -> Flag:
    """Flags the item for the managers and skips it for this annotator."""
    if reason not in Flag.Reason.values:
        raise LabelRejected("reason", f"choose one of {', '.join(Flag.Reason.values)}")
    flag = Flag.objects.create(
        comparison_id=assignment.comparison_id, annotator=annotator, reason=reason, note=(note or "").strip()
    )
    assignment_skip(assignment=assignment, annotator=annotator, reason=f"flagged: {reason}")
    return flag


def demonstration_create(
    *, assignment: Assignment, annotator: AbstractBaseUser, text: str, based_on: int | None = None
) -> Demonstration:
    """Stores an ideal answer with its provenance: the item, and the response it was edited from."""
    if assignment.annotator_id != annotator.pk:
        raise LabelRejected("assignment", "this item is not assigned to you")
    if not (text or "").strip():
        raise LabelRejected("text", "write the answer first")
    if based_on is not None and based_on not in assignment.display_order:
        raise LabelRejected("based_on", "start from one of the shown responses, or from scratch")
    return Demonstration.objects.create(
        prompt_id=assignment.comparison.prompt_id,
        comparison_id=assignment.comparison_id,
        based_on_id=based_on,
        author=annotator,
        text=text,
    )


@dataclass(frozen=True)
class ShownResponse:
    key: str
    id: int
    text: str
    model: str | None
    reasoning: str = ""
    """Chain-of-thought responses: the reasoning before the answer, shown folded so either can be compared."""


@dataclass(frozen=True)
class ItemView:
    assignment_id: int
    comparison_id: int
    kind: str
    messages: list[dict]
    responses: list[ShownResponse]
    expires_at: datetime


def item_view(assignment: Assignment) -> ItemView:
    """The item as the annotator sees it: responses in display order keyed a, b, …; model names only when the
    project shows them."""
    comparison = assignment.comparison
    project = comparison.project
    by_id = {r.id: r for r in Response.objects.filter(id__in=assignment.display_order)}
    keys = display_keys(len(assignment.display_order))
    shown = [
        ShownResponse(
            key=k,
            id=rid,
            text=by_id[rid].text,
            model=None if project.hide_model_names else (by_id[rid].model or None),
            reasoning=by_id[rid].reasoning,
        )
        for k, rid in zip(keys, assignment.display_order, strict=True)
    ]
    return ItemView(
        assignment_id=assignment.pk,
        comparison_id=comparison.pk,
        kind=comparison.kind,
        messages=comparison.prompt.messages,
        responses=shown,
        expires_at=assignment.expires_at,
    )


REMAINING_CAP = 1000


def annotator_progress(*, annotator: AbstractBaseUser, project: Project, now: datetime | None = None) -> dict:
    """Done today, items still open to this annotator, and gold accuracy (when the project shows it)."""
    now = now or timezone.now()
    start_of_day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    done_today = Label.objects.filter(
        annotator=annotator, comparison__project=project, created_at__gte=start_of_day
    ).count()
    open_items = Comparison.objects.filter(
        project=project, servable=True, gold_choice="", label_count__lt=project.labels_per_item
    ).exclude(assignments__annotator=annotator)
    # Counting stops at the cap: a page load must not scan a million comparisons to print "1000+".
    remaining = open_items[: REMAINING_CAP + 1].count()
    progress = {
        "done_today": done_today,
        "remaining": f"{REMAINING_CAP:,}+" if remaining > REMAINING_CAP else remaining,
        "gold_accuracy": None,
        "gold_answered": 0,
    }
    if project.show_gold_accuracy:
        progress.update(gold_accuracy_for(annotator=annotator, project=project))
    return progress


def gold_accuracy_by_annotator(project: Project, annotator_id: int | None = None) -> dict[int, tuple[int, int]]:
    """annotator id → (right, answered) on the project's gold items; one definition for pages and exports."""
    gold = Label.objects.filter(comparison__project=project, annotator__isnull=False).exclude(
        comparison__gold_choice=""
    )
    if annotator_id is not None:
        gold = gold.filter(annotator_id=annotator_id)
    rows = gold.values("annotator_id").annotate(
        n=Count("id"), right=Count("id", filter=Q(choice=F("comparison__gold_choice")))
    )
    return {r["annotator_id"]: (r["right"], r["n"]) for r in rows}


def gold_accuracy_for(*, annotator: AbstractBaseUser, project: Project) -> dict:
    """Share of this annotator's labels on gold pairs that match the known answer."""
    right, n = gold_accuracy_by_annotator(project, annotator.pk).get(annotator.pk, (0, 0))
    return {"gold_answered": n, "gold_accuracy": (right / n) if n else None}
