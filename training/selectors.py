"""Reads for the job pages, the API and commands."""

from __future__ import annotations

from collections import defaultdict

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.http import Http404

from annotators.models import Membership
from feedback.models import Project

from .models import Job, RegisteredModel, RewardEvaluation

LOG_TAIL = 200


def projects_managed_by(user: AbstractBaseUser) -> QuerySet[Project]:
    """Jobs belong to the people who run a project: staff and its managers (annotators never see them: a job's
    config names the models they are judging)."""
    if not user.is_authenticated:
        return Project.objects.none()
    if user.is_staff:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user, memberships__role=Membership.Role.MANAGER)


def jobs_visible_to(user: AbstractBaseUser) -> QuerySet[Job]:
    return Job.objects.filter(project__in=projects_managed_by(user)).select_related("project", "created_by")


def job_visible_or_404(user: AbstractBaseUser, pk: int) -> Job:
    job = jobs_visible_to(user).filter(pk=pk).first()
    if job is None:
        raise Http404("No such job")
    return job


def models_visible_to(user: AbstractBaseUser) -> QuerySet[RegisteredModel]:
    if not projects_managed_by(user).exists():
        return RegisteredModel.objects.none()
    return RegisteredModel.objects.select_related("parent", "job")


def job_metric_series(job: Job) -> dict[str, list[list[float]]]:
    """{metric name: [[step, value], ...]} in step order, the shape the charts read."""
    series: dict[str, list[list[float]]] = defaultdict(list)
    for name, step, value in job.metrics.order_by("name", "step", "id").values_list("name", "step", "value"):
        series[name].append([step, value])
    return dict(series)


def job_log_tail(job: Job, lines: int = LOG_TAIL) -> list[str]:
    tail = list(job.log_lines.order_by("-id").values_list("line", flat=True)[:lines])
    return tail[::-1]


# ---- the model registry's pages --------------------------------------------------------------------------


def model_visible_or_404(user: AbstractBaseUser, name: str) -> RegisteredModel:
    model = models_visible_to(user).filter(name=name).first()
    if model is None:
        raise Http404("No such model")
    return model


def evaluations_visible_to(user: AbstractBaseUser, model: RegisteredModel) -> list[RewardEvaluation]:
    """The model's evaluations on projects the user manages, newest first, one per project and split.

    An evaluation quotes the project's prompts and answers and lists its annotators' agreement, so a manager of
    another project sees that the model exists, but not how it did on data that is not theirs."""
    rows = (
        RewardEvaluation.objects.filter(model=model, project__in=projects_managed_by(user))
        .select_related("project", "job")
        .order_by("-created_at", "-id")
    )
    seen: set[tuple[int, str]] = set()
    latest = []
    for row in rows:
        if (row.project_id, row.split) not in seen:
            seen.add((row.project_id, row.split))
            latest.append(row)
    return latest


def model_metrics_visible_to(user: AbstractBaseUser, model: RegisteredModel) -> dict:
    """A trained model's metrics only for managers of the project it was trained on: they are measured on that
    project's labels (held-out accuracy, pair counts, the evaluation quoting its prompts), which another project's
    manager has no business reading. Models registered by hand (no job) keep theirs visible."""
    if model.job_id and not projects_managed_by(user).filter(pk=model.job.project_id).exists():
        return {}
    return dict(model.metrics or {})


def reward_models_for_project(project: Project) -> list[dict]:
    """The reward models evaluated on this project (trained on it, or checked on it by a reward_eval job), each
    with its latest evaluation there, best held-out accuracy first: the project page's and the model page's
    comparison table."""
    rows = (
        RewardEvaluation.objects.filter(project=project, model__kind=RegisteredModel.Kind.REWARD)
        .select_related("model", "job")
        .order_by("-created_at", "-id")
    )
    latest: dict[int, RewardEvaluation] = {}
    for row in rows:
        current = latest.get(row.model_id)
        # The held-out evaluation made at training is the fair one; a reward_eval on "all" pairs includes the
        # pairs the model was trained on.
        if current is None or (current.split != "test" and row.split == "test"):
            latest[row.model_id] = row
    table = [
        {
            "name": row.model.name,
            "mode": (row.model.config or {}).get("mode", ""),
            "split": row.split,
            "n": row.n,
            "accuracy": row.accuracy,
            "accuracy_ci": (row.evaluation or {}).get("accuracy_ci"),
            "ece": row.ece,
            "trained_here": bool(row.model.job_id and row.model.job.project_id == project.pk),
            "trained_at": row.model.created_at,
            "evaluated_at": row.created_at,
            "job": row.job_id,
        }
        for row in latest.values()
    ]
    table.sort(key=lambda r: (r["accuracy"] is None, -(r["accuracy"] or 0), r["name"]))
    return table


def active_learning_effect(project: Project) -> dict | None:
    """What the last score job that set priorities did: by which model, how many unlabelled pairs, and the mean
    uncertainty of the next pairs the queue serves (before and after) against all of them. None: never done."""
    job = (
        Job.objects.filter(project=project, kind="score", status=Job.Status.SUCCEEDED, result__has_key="prioritised")
        .order_by("-finished_at", "-id")
        .first()
    )
    if job is None:
        return None
    effect = dict(job.result["prioritised"])
    effect["job"] = job.pk
    effect["finished_at"] = job.finished_at
    effect["waiting"] = project.comparisons.filter(
        priority__gt=0, label_count=0, servable=True, gold_choice="", kind="pair"
    ).count()
    return effect
