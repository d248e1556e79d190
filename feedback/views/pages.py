from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from feedback.selectors import project_list_for, project_role, project_stats


def home(request: HttpRequest) -> HttpResponse:
    projects = []
    if request.user.is_authenticated:
        for project in project_list_for(request.user).order_by("name"):
            projects.append(
                {"project": project, "stats": project_stats(project), "role": project_role(request.user, project)}
            )
    return render(request, "feedback/home.html", {"projects": projects})


@login_required
def project_dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_list_for(request.user).filter(slug=slug).first()
    if project is None:
        raise Http404("No such project")
    return render(
        request,
        "feedback/project_dashboard.html",
        {"project": project, "stats": project_stats(project), "role": project_role(request.user, project)},
    )
