"""Job pages: the list, the new-job form, and a job's live page (htmx polls its `live` partial while it runs)."""

import json
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from .catalog import submittable_kinds
from .configs import config_flat
from .forms import JobForm, job_initial, kind_choices
from .jobs import JobStateError, job_cancel, job_retry, job_submit
from .selectors import job_log_tail, job_metric_series, job_visible_or_404, jobs_visible_to, projects_managed_by

PAGE = 100


@login_required
def jobs(request: HttpRequest) -> HttpResponse:
    rows = jobs_visible_to(request.user).order_by("-id")
    project = request.GET.get("project")
    if project:
        rows = rows.filter(project__slug=project)
    rows = list(rows[:PAGE])
    template = "training/jobs.html#rows" if request.htmx else "training/jobs.html"
    return render(
        request,
        template,
        {
            "jobs": rows,
            "project": project,
            "live": any(not j.is_finished for j in rows),
        },
    )


@login_required
def job_new(request: HttpRequest) -> HttpResponse:
    projects = projects_managed_by(request.user).order_by("name")
    if not projects.exists():
        raise Http404("You manage no project")
    kind = request.POST.get("kind") or request.GET.get("kind") or "generate"
    if kind not in submittable_kinds():
        kind = "generate"
    initial = job_initial(request.GET, kind) or None
    form = JobForm(request.POST or None, kind=kind, projects=projects, initial=initial)
    if request.method == "POST" and form.is_valid():
        job = job_submit(kind=kind, project=form.cleaned_data["project"], config=form.config, user=request.user)
        messages.success(request, f"Queued {kind} job #{job.pk}; a worker will pick it up.")
        return redirect("job-page", pk=job.pk)
    template = "training/job_new.html#config" if request.htmx and request.method == "GET" else "training/job_new.html"
    return render(request, template, {"form": form, "kind": kind, "kinds": kind_choices()})


RESULT_PARTIALS = {"reward_eval": ("training/_reward_eval_result.html", {"models_table", "disagreement", "comparison"})}
"""Kinds whose result has its own partial on the job page, and the result keys that partial shows (the figures
list leaves them out)."""


@login_required
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = job_visible_or_404(request.user, pk)
    metrics = job_metric_series(job)
    partial, shown = RESULT_PARTIALS.get(job.kind, (None, set()))
    result = job.result or {}
    context = {
        "job": job,
        "metrics": metrics,
        "metrics_json": json.dumps(metrics),
        "log": job_log_tail(job),
        "artifacts": list(job.artifacts.order_by("name")),
        # Nested settings as dotted keys (lora.r), sorted so each group's settings stand together.
        "config": [(key, json.dumps(value)) for key, value in sorted(config_flat(job.config).items())],
        "result": [(key.replace("_", " "), _figure(value)) for key, value in result.items() if key not in shown],
        "result_partial": partial if result and partial else None,
    }
    if job.kind == "reward_eval":
        context["reward_eval"] = reward_eval_figures(result)
    template = "training/job_detail.html#live" if request.htmx else "training/job_detail.html"
    return render(request, template, context)


def reward_eval_figures(result: dict) -> dict:
    """A reward_eval job's result as its partial shows it: the models table, and for every two models the
    disagreement rate, Spearman and the items where they part ways, each item with both models' P(chosen) and
    which answer each prefers (a template cannot look a dict up by a model's name)."""
    table = result.get("models_table")
    if table is None and isinstance(result.get("comparison"), list):
        table = result["comparison"]  # jobs finished before the table had its own name
    pairs = []
    for pair in (result.get("disagreement") or {}).get("pairs") or []:
        names = pair.get("models") or []
        if len(names) != 2:
            continue
        first, second = names
        items = []
        for item in pair.get("items") or []:
            p = item.get("p_chosen") or {}
            p_first, p_second = p.get(first), p.get(second)
            # compare() lists only items where the two prefer different answers: whoever gives the (people's)
            # chosen answer more than even odds prefers it, the other prefers the rejected one.
            prefers_chosen = first if (p_first or 0) > (p_second or 0) else second
            prefers_rejected = second if prefers_chosen == first else first
            items.append(
                {
                    **item,
                    "p_first": p_first,
                    "p_second": p_second,
                    "prefers_chosen": prefers_chosen,
                    "prefers_rejected": prefers_rejected,
                }
            )
        pairs.append({**pair, "first": first, "second": second, "items": items})
    return {"table": table or [], "pairs": pairs}


def _figure(value, depth: int = 0) -> str:
    """A result value as a person reads it: 134,515,008 rather than 134515008, four significant digits; a
    dict as "name: value" pairs; a list one item a line (an import's skipped rows), a list of numbers on one line.
    Below the first level a nested dict or list is counted, not spelled out: a result that needs more has its
    own partial."""
    if isinstance(value, dict):
        if depth:
            return f"{len(value):,} entries"
        return ", ".join(f"{k}: {_figure(v, depth + 1)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            return ", ".join(_figure(v, depth + 1) for v in value)
        if depth:
            return f"{len(value):,} items"
        return "\n".join(_figure(v, depth + 1) if not isinstance(v, dict) else _figure(v) for v in value) or "none"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"  # 0.02581 rather than 0.025813324367263
    return "—" if value is None else str(value)


@login_required
def job_artifact(request: HttpRequest, pk: int, artifact_id: int) -> FileResponse:
    """Downloads one of the job's files (folders are zipped by the job itself, never in a request)."""
    job = job_visible_or_404(request.user, pk)
    artifact = job.artifacts.filter(pk=artifact_id).first()
    root = Path(settings.JUROR_DATA_DIR).resolve()
    path = (root / artifact.path).resolve() if artifact else None
    if path is None or not path.is_relative_to(root) or not path.is_file():
        raise Http404("No such file")
    return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name)  # noqa: SIM115 — closed by Django


@login_required
@require_POST
def job_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _change(request, pk, job_cancel, "Cancel asked for: the worker stops the job within seconds.")


@login_required
@require_POST
def job_retry_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _change(request, pk, job_retry, "Queued again; it resumes from its last checkpoint.")


def _change(request: HttpRequest, pk: int, action, done: str) -> HttpResponse:
    job = job_visible_or_404(request.user, pk)
    try:
        job = action(job)
    except JobStateError as exc:
        messages.warning(request, str(exc))
    else:
        messages.success(request, "Cancelled." if job.status == "cancelled" else done)
    return redirect("job-page", pk=job.pk)
