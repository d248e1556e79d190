from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from feedback.exports.requests import export_zip_response, options_from
from feedback.selectors import project_list_for, project_role, project_stats, project_visible_or_404
from feedback.serializers import ExportRequestSerializer
from training.selectors import active_learning_effect, reward_models_for_project


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
    project = project_visible_or_404(request.user, slug)
    role = project_role(request.user, project)
    context = {"project": project, "stats": project_stats(project), "role": role}
    if role == "manager":  # reward models and their figures are for the people who run the project
        context["reward_models"] = reward_models_for_project(project)
        context["active_learning"] = active_learning_effect(project)
    return render(request, "feedback/project_dashboard.html", context)


@login_required
def project_export(request: HttpRequest, slug: str) -> HttpResponse:
    """Managers pick what to export; the options are validated by the API's serializer, so both agree."""
    project = project_visible_or_404(request.user, slug)
    if project_role(request.user, project) != "manager":
        raise PermissionDenied("Only the project's managers may export.")
    errors: dict = {}
    if request.method == "POST":
        data = request.POST.copy()
        for key in [k for k, v in data.items() if v == ""]:
            del data[key]  # an empty box means "no limit", as if the field were not sent
        for key in ("models", "sources", "exclude"):
            data.setlist(key, [v.strip() for v in data.get(key, "").split(",") if v.strip()])
        form = ExportRequestSerializer(data=data)
        if form.is_valid():
            values = form.validated_data
            try:
                options = options_from(values)
            except ValueError as exc:
                errors = {"options": [str(exc)]}
            else:
                return export_zip_response(project=project, options=options)
        else:
            errors = form.errors
    sources = ["annotators", *sorted(project_stats(project)["labels"]["by_source"].keys() - {"annotators"})]
    return render(
        request,
        "feedback/project_export.html",
        {"project": project, "errors": errors, "sources": sources, "values": request.POST},
    )
