"""Segments move from the global Profile to each Membership, so one project's manager cannot change another's."""

from django.db import migrations, models

import annotators.models


def copy_profile_attributes(apps, schema_editor) -> None:
    """Each membership starts with the segments its person had on their profile (a non-object, which the old
    admin allowed, is left behind)."""
    Profile = apps.get_model("annotators", "Profile")
    Membership = apps.get_model("annotators", "Membership")
    for user_id, attributes in Profile.objects.values_list("user_id", "attributes").iterator():
        if attributes and isinstance(attributes, dict):  # the members page reads an object of name: text
            Membership.objects.filter(user_id=user_id).update(attributes=attributes)


def merge_membership_attributes(apps, schema_editor) -> None:
    """Backwards: one profile per person, merged from their memberships (a later membership wins a key)."""
    Profile = apps.get_model("annotators", "Profile")
    Membership = apps.get_model("annotators", "Membership")
    merged: dict[int, dict] = {}
    for user_id, attributes in (
        Membership.objects.exclude(attributes={}).order_by("id").values_list("user_id", "attributes")
    ):
        merged.setdefault(user_id, {}).update(attributes)
    for user_id, attributes in merged.items():
        Profile.objects.update_or_create(user_id=user_id, defaults={"attributes": attributes})


class Migration(migrations.Migration):
    dependencies = [("annotators", "0004_membership_excluded_from_exports")]

    operations = [
        migrations.AddField(
            model_name="membership",
            name="attributes",
            field=models.JSONField(
                blank=True,
                default=dict,
                validators=[annotators.models.validate_attributes],
                help_text='Segments in this project, e.g. {"expertise": "expert"}; exports can be split by any key.',
            ),
        ),
        migrations.RunPython(copy_profile_attributes, merge_membership_attributes),
    ]
