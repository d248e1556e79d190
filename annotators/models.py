import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

# Segment names become JSON key lookups in exports: letters, digits, - and _, starting with a letter (a name of
# digits would be read as a list index), and no "__" that could chain lookups (see feedback/exports/options.py).
SEGMENT_KEY = re.compile(r"^(?!.*__)[A-Za-z][A-Za-z0-9_-]*$")
SEGMENT_KEY_HELP = "a segment name starts with a letter and has only letters, digits, - and _ (e.g. expertise)"


def validate_attributes(value) -> None:
    """Segments are a flat {name: text} object, whoever edits them (members page, admin)."""
    if not isinstance(value, dict):
        raise ValidationError('Segments are an object of name: text, e.g. {"expertise": "expert"}.')
    for key, text in value.items():
        if not SEGMENT_KEY.match(key):
            raise ValidationError(f"{key!r}: {SEGMENT_KEY_HELP}.")
        if not isinstance(text, str) or not text.strip():
            raise ValidationError(f"{key!r}: the value is a non-empty text.")


class Membership(models.Model):
    """One person in one project: their role and their segments there.

    Segments live here, not on a profile shared by every project, because preferences depend on who is asked
    *in this project*, and one project's manager must not change another project's segmented exports.
    """

    class Role(models.TextChoices):
        ANNOTATOR = "annotator", "Annotator"
        REVIEWER = "reviewer", "Reviewer"
        MANAGER = "manager", "Manager"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    project = models.ForeignKey("feedback.Project", on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)
    attributes = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_attributes],
        help_text='Segments in this project, e.g. {"expertise": "expert"}; exports can be split by any key.',
    )
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
