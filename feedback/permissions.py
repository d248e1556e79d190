from rest_framework.permissions import SAFE_METHODS, BasePermission

from .selectors import project_role


class IsProjectManagerOrReadOnly(BasePermission):
    """Members read; managers (and staff) change the project and import into it."""

    message = "Only the project's managers may do this."

    def has_permission(self, request, view) -> bool:
        if view.action == "create":
            return bool(request.user and request.user.is_staff)
        return True

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return project_role(request.user, obj) == "manager"
