from django.http import HttpRequest

from .selectors import projects_managed_by


def nav(request: HttpRequest) -> dict:
    """`manages_projects` for the top bar's Jobs link; a callable, so pages that do not ask run no query."""
    return {"manages_projects": lambda: projects_managed_by(request.user).exists()}
