from django.conf import settings
from django.db import models


class Profile(models.Model):
    """Segment attributes of one person, because preferences depend on who is asked.

    `attributes` is free key/value (e.g. {"expertise": "expert", "audience": "adult"}); agreement, exports
    and reward models can later be split by any key.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    attributes = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"profile of {self.user}"


class Membership(models.Model):
    class Role(models.TextChoices):
        ANNOTATOR = "annotator", "Annotator"
        REVIEWER = "reviewer", "Reviewer"
        MANAGER = "manager", "Manager"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    project = models.ForeignKey("feedback.Project", on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)
    excluded_from_exports = models.BooleanField(
        default=False, help_text="A manager's call: this person's labels stay out of exported datasets."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "project"], name="membership_unique_user_project")]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} as {self.role}"


class Invitation(models.Model):
    """A link a manager shares; whoever opens it (before it expires) joins the project with `role`."""

    project = models.ForeignKey("feedback.Project", on_delete=models.CASCADE, related_name="invitations")
    role = models.CharField(max_length=16, choices=Membership.Role.choices, default=Membership.Role.ANNOTATOR)
    token = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"invitation to {self.project} as {self.role}"
