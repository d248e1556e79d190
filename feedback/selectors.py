"""Reads for pages, the API and commands; they return plain dicts, not querysets."""

from __future__ import annotations

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
    """Counts a manager watches: prompts, responses, comparisons by kind, labels by choice and source."""
    comparisons = Comparison.objects.filter(project=project)
    labels = Label.objects.filter(comparison__project=project)
    by_kind = dict(comparisons.values_list("kind").annotate(n=Count("id")).order_by())
    by_choice = {
        Label.Choice(choice).label: n
        for choice, n in labels.values_list("choice").annotate(n=Count("id")).order_by("choice")
    }
    by_source = {
        (src or "annotators"): n for src, n in labels.values_list("source").annotate(n=Count("id")).order_by("source")
    }
    labelled = comparisons.annotate(n=Count("labels")).aggregate(
        unlabelled=Count("id", filter=Q(n=0)),
        complete=Count("id", filter=Q(n__gte=project.labels_per_item)),
    )
    jobs = dict(Job.objects.filter(project=project).values_list("status").annotate(n=Count("id")).order_by())
    return {
        "project": project.slug,
        "prompts": Prompt.objects.filter(project=project).count(),
        "responses": Response.objects.filter(prompt__project=project).count(),
        "comparisons": {
            "total": sum(by_kind.values()),
            "pairs": by_kind.get(Comparison.Kind.PAIR, 0),
            "rankings": by_kind.get(Comparison.Kind.RANKING, 0),
            "unlabelled": labelled["unlabelled"] or 0,
            "complete": labelled["complete"] or 0,
        },
        "labels": {"total": sum(by_choice.values()), "by_choice": by_choice, "by_source": by_source},
        "models": sorted(
            m for m in Response.objects.filter(prompt__project=project).values_list("model", flat=True).distinct() if m
        ),
        "jobs": jobs,
    }
