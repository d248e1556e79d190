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
from .forms import JobForm, kind_choices
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
    initial = {"project": request.GET.get("project")} if request.GET.get("project") else None
    form = JobForm(request.POST or None, kind=kind, projects=projects, initial=initial)
    if request.method == "POST" and form.is_valid():
        job = job_submit(kind=kind, project=form.cleaned_data["project"], config=form.config, user=request.user)
        messages.success(request, f"Queued {kind} job #{job.pk}; a worker will pick it up.")
        return redirect("job-page", pk=job.pk)
    template = "training/job_new.html#config" if request.htmx and request.method == "GET" else "training/job_new.html"
    return render(request, template, {"form": form, "kind": kind, "kinds": kind_choices()})


@login_required
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = job_visible_or_404(request.user, pk)
    metrics = job_metric_series(job)
    context = {
        "job": job,
        "metrics": metrics,
        "metrics_json": json.dumps(metrics),
        "log": job_log_tail(job),
        "artifacts": list(job.artifacts.order_by("name")),
        # Nested settings as dotted keys (lora.r), sorted so each group's settings stand together.
        "config": [(key, json.dumps(value)) for key, value in sorted(config_flat(job.config).items())],
        "result": [(key.replace("_", " "), _figure(value)) for key, value in job.result.items()],
    }
    template = "training/job_detail.html#live" if request.htmx else "training/job_detail.html"
    return render(request, template, context)


def _figure(value) -> str:
    """A result value as a person reads it: 134,515,008 rather than 134515008; a dict as "name: value" pairs; a
    list one item a line (an import's skipped rows)."""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_figure(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "\n".join(_figure(v) for v in value) or "none"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
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
