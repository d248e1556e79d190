"""Reads for pages, the API and commands; they return plain dicts, not querysets."""

from __future__ import annotations

from collections import Counter

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q, QuerySet
from django.http import Http404

from training.models import Job

from .models import Comparison, Label, Project, Prompt, Response


def project_list_for(user: AbstractBaseUser) -> QuerySet[Project]:
    """Projects the user may see: all for staff, their memberships otherwise."""
    if not user.is_authenticated:
        return Project.objects.none()
    if user.is_staff:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user)


def project_visible_or_404(user: AbstractBaseUser, slug: str) -> Project:
    """The project if the user may see it; 404 otherwise, so outsiders cannot tell it exists."""
    project = project_list_for(user).filter(slug=slug).first()
    if project is None:
        raise Http404("No such project")
    return project


def project_role(user: AbstractBaseUser, project: Project) -> str | None:
    """ "manager" for staff; the membership role otherwise; None for outsiders."""
    if not user.is_authenticated:
        return None
    if user.is_staff:
        return "manager"
    return project.memberships.filter(user=user).values_list("role", flat=True).first()


def project_stats(project: Project) -> dict:
    """Counts a manager watches: prompts, responses, comparisons by kind, labels by choice and source.

    "unlabelled" and "complete" read the comparisons' label_count (this project's annotators' labels, what k is
    about) rather than counting label rows per comparison, which would scan every label on every page load.
    """
    figures = Comparison.objects.filter(project=project).aggregate(
        total=Count("id"),
        pairs=Count("id", filter=Q(kind=Comparison.Kind.PAIR)),
        rankings=Count("id", filter=Q(kind=Comparison.Kind.RANKING)),
        # Pairs with an empty answer keep their imported judgements but are never served: not "waiting".
        unlabelled=Count("id", filter=Q(label_count=0, servable=True)),
        never_served=Count("id", filter=Q(servable=False)),
        complete=Count("id", filter=Q(label_count__gte=project.labels_per_item)),
    )
    by_choice: Counter = Counter()
    by_source: Counter = Counter()
    grouped = Label.objects.filter(comparison__project=project).values_list("choice", "source").annotate(n=Count("id"))
    for choice, source, n in grouped.order_by("choice", "source"):
        by_choice[Label.Choice(choice).label] += n
        by_source[source or "annotators"] += n
    jobs = dict(Job.objects.filter(project=project).values_list("status").annotate(n=Count("id")).order_by())
    return {
        "project": project.slug,
        "prompts": Prompt.objects.filter(project=project).count(),
        "responses": Response.objects.filter(prompt__project=project).count(),
        "comparisons": figures,
        "labels": {
            "total": sum(by_choice.values()),
            "by_choice": dict(sorted(by_choice.items())),
            "by_source": dict(sorted(by_source.items())),
        },
        "models": sorted(
            m for m in Response.objects.filter(prompt__project=project).values_list("model", flat=True).distinct() if m
        ),
        "jobs": jobs,
    }
