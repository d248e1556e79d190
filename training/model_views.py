"""The model registry's pages: the list, and a model's page (provenance; for a reward model its evaluations, with
plots, and how it compares with the project's other reward models). For the people who run projects."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from .models import RegisteredModel, RewardEvaluation
from .selectors import (
    evaluations_visible_to,
    model_metrics_visible_to,
    model_visible_or_404,
    models_visible_to,
    projects_managed_by,
    reward_models_for_project,
)

SPLITS = {"test": "held-out prompts", "all": "every pair"}


@login_required
def models_list(request: HttpRequest) -> HttpResponse:
    if not projects_managed_by(request.user).exists():
        raise Http404("You manage no project")
    models = list(models_visible_to(request.user).order_by("kind", "name"))
    return render(request, "training/model_list.html", {"models": models})


@login_required
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    model = model_visible_or_404(request.user, name)
    evaluations = [_evaluation(row) for row in evaluations_visible_to(request.user, model)]
    metrics = model_metrics_visible_to(request.user, model)
    metrics.pop("evaluation", None)  # shown from its RewardEvaluation row, with the others
    job_project = model.job.project if model.job_id else None
    context = {
        "model": model,
        "mode": (model.config or {}).get("mode", ""),
        "evaluations": evaluations,
        "metrics": [(key.replace("_", " "), _figure(value)) for key, value in metrics.items()],
        "config_json": json.dumps(model.config, indent=2, sort_keys=True) if model.config else "",
        "job_visible": bool(job_project and projects_managed_by(request.user).filter(pk=job_project.pk).exists()),
        "children": list(model.children.order_by("name").values_list("name", flat=True)),
        "eval_jobs": _eval_jobs(request.user, model),
    }
    return render(request, "training/model_detail.html", context)


def _eval_jobs(user, model: RegisteredModel) -> list[dict]:
    """The reward_eval jobs, on projects the user manages, that included this model, newest first: each with the
    other models it was compared with and how often they prefer different answers (from the job's result)."""
    rows = (
        RewardEvaluation.objects.filter(
            model=model, project__in=projects_managed_by(user), job__kind="reward_eval", job__status="succeeded"
        )
        .select_related("job", "project")
        .order_by("-created_at", "-id")
    )
    jobs = []
    for row in rows:
        others = []
        for pair in ((row.job.result or {}).get("disagreement") or {}).get("pairs") or []:
            names = pair.get("models") or []
            if model.name in names and len(names) == 2:
                other = names[1] if names[0] == model.name else names[0]
                others.append({"name": other, "disagreement": pair.get("disagreement"), "n": pair.get("n")})
        jobs.append({"job": row.job, "project": row.project, "accuracy": row.accuracy, "others": others})
    return jobs


def _evaluation(row: RewardEvaluation) -> dict:
    ev = row.evaluation or {}
    charts = {"reliability": ev.get("reliability") or [], "scores": ev.get("scores") or {}}
    return {
        "row": row,
        "project": row.project,
        "split": SPLITS.get(row.split, row.split),
        "ev": ev,
        "ci": ev.get("accuracy_ci"),
        "confidence": round(100 * (ev.get("confidence") or 0.95)),
        "by_segment": ev.get("by_segment") or {},
        "charts_json": json.dumps(charts),
        "wrong": ev.get("confidently_wrong", len(ev.get("disagreements") or [])),
        "others": reward_models_for_project(row.project),
    }


def _figure(value) -> str:
    """A metric as a person reads it: 4 significant digits, lists joined, nested dicts as key: value."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        return ", ".join(_figure(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_figure(v)}" for k, v in value.items())
    return str(value)
