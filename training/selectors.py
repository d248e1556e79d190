"""Reads for the job pages, the API and commands."""

from __future__ import annotations

from collections import defaultdict

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.http import Http404

from annotators.models import Membership
from feedback.models import Project

from .models import Job, RegisteredModel

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
