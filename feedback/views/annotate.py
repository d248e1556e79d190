"""The annotator's pages. Each view validates, calls one service, renders; htmx and the keyboard script get
partials, plain form posts get a redirect back to the page, so everything works without JavaScript."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from feedback.annotation import (
    annotator_progress,
    assignment_mark_shown,
    assignment_skip,
    demonstration_create,
    flag_create,
    item_view,
)
from feedback.assignment import assignment_queue
from feedback.forms import judgement_from_post, small_int
from feedback.labels import LabelRejected, label_submit, label_undo
from feedback.models import Assignment, Flag, Project
from feedback.selectors import project_list_for, project_visible_or_404

TEMPLATE = "feedback/annotate.html"


def _project(request: HttpRequest, slug: str) -> Project:
    return project_visible_or_404(request.user, slug)


def _assignment(request: HttpRequest, project: Project) -> Assignment:
    pk = small_int(request.POST.get("assignment_id", ""))
    if pk is None:
        raise Http404("No such item")
    return get_object_or_404(
        Assignment.objects.select_related("comparison__project", "comparison__prompt"),
        pk=pk,
        annotator=request.user,
        comparison__project=project,
    )


def _workspace_context(request: HttpRequest, project: Project) -> dict:
    queue = assignment_queue(annotator=request.user, project=project)
    current = assignment_mark_shown(queue[0]) if queue else None
    return {
        "project": project,
        "current": _item_context(current),
        "ahead": _item_context(queue[1]) if len(queue) > 1 else None,
        "progress": annotator_progress(annotator=request.user, project=project),
        "flag_reasons": Flag.Reason.choices,
    }


def _item_context(assignment: Assignment | None) -> dict | None:
    if assignment is None:
        return None
    view = item_view(assignment)
    return {"view": view, "earlier": view.messages[:-1], "question": view.messages[-1]}


@login_required
def annotate_home(request: HttpRequest) -> HttpResponse:
    rows = [
        {"project": p, "progress": annotator_progress(annotator=request.user, project=p)}
        for p in project_list_for(request.user).order_by("name")
    ]
    return render(request, "feedback/annotate_home.html", {"rows": rows})


@login_required
def annotate(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project(request, slug)
    return render(request, TEMPLATE, _workspace_context(request, project))


@login_required
@require_POST
def annotate_label(request: HttpRequest, slug: str) -> HttpResponse:
    """The keyboard script has already put the item it pre-rendered on screen; it sends `showing` (that item's
    assignment) and gets back the one to pre-render next."""
    project = _project(request, slug)
    assignment = _assignment(request, project)
    wants_next = request.headers.get("X-Juror-Ahead") == "1"
    try:
        judgement = judgement_from_post(
            request.POST, kind=assignment.comparison.kind, n_responses=len(assignment.display_order)
        )
        label_submit(
            assignment=assignment,
            annotator=request.user,
            judgement=judgement,
            idempotency_key=request.POST.get("idempotency_key") or None,
        )
    except LabelRejected as exc:
        if wants_next:
            return JsonResponse({"field": exc.field, "detail": exc.message}, status=400)
        messages.error(request, exc.message)
        return redirect("annotate", slug=slug)
    if not wants_next:
        return redirect("annotate", slug=slug)
    showing = request.POST.get("showing", "")
    queue = assignment_queue(annotator=request.user, project=project, size=3)
    ahead = next((a for a in queue if str(a.pk) != showing), None)
    # With `showing` the answer fills the hidden slot (nothing when the queue is dry); without it, the script
    # had nothing ahead and shows the answer directly, so an empty queue says "all done".
    context = {"project": project, "item": _item_context(ahead), "ahead_slot": bool(showing)}
    return render(request, f"{TEMPLATE}#item", {**context, "flag_reasons": Flag.Reason.choices})


def _back(request: HttpRequest, project: Project) -> HttpResponse:
    if request.htmx:
        return render(request, f"{TEMPLATE}#workspace", _workspace_context(request, project))
    return redirect("annotate", slug=project.slug)


@login_required
@require_POST
def annotate_skip(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project(request, slug)
    try:
        assignment_skip(
            assignment=_assignment(request, project), annotator=request.user, reason=request.POST.get("reason", "")
        )
    except LabelRejected as exc:
        messages.error(request, exc.message)
    return _back(request, project)


@login_required
@require_POST
def annotate_undo(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project(request, slug)
    # The undone item's lease is the oldest the annotator holds, so the queue shows it first.
    if label_undo(annotator=request.user, project=project) is None:
        messages.warning(request, "Nothing to undo: only your last label of the past minute can be taken back.")
    return _back(request, project)


@login_required
@require_POST
def annotate_flag(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project(request, slug)
    try:
        flag_create(
            assignment=_assignment(request, project),
            annotator=request.user,
            reason=request.POST.get("reason", ""),
            note=request.POST.get("note", ""),
        )
    except LabelRejected as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Flagged for the project managers. Thank you.")
    return _back(request, project)


@login_required
@require_POST
def annotate_demonstration(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project(request, slug)
    assignment = _assignment(request, project)
    try:
        demonstration_create(
            assignment=assignment,
            annotator=request.user,
            text=request.POST.get("text", ""),
            based_on=small_int(request.POST.get("based_on")),
        )
    except LabelRejected as exc:
        status, note = 200, exc.message  # htmx swaps 200s only; the message says what to fix
    else:
        status, note = 200, "Saved. Thank you — this answer can teach the model."
    if request.htmx:
        return render(request, f"{TEMPLATE}#demo-status", {"note": note}, status=status)
    messages.info(request, note)
    return redirect("annotate", slug=slug)
