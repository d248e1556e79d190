"""Managing who works on a project: members, roles, segment attributes, invitations."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import SEGMENT_KEY, SEGMENT_KEY_HELP, Invitation, Membership

INVITATION_DAYS = 7


def parse_attributes(text: str) -> dict[str, str]:
    """ "expertise=expert\\naudience=child" → {"expertise": "expert", "audience": "child"}."""
    attributes = {}
    for n, line in enumerate((text or "").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ValidationError(f"line {n}: write attributes as key=value (e.g. expertise=expert)")
        if not SEGMENT_KEY.match(key):
            raise ValidationError(f"line {n}: {SEGMENT_KEY_HELP}")
        attributes[key] = value
    return attributes


def username_clean(username: str) -> str:
    """The user model's own rules (length, Django's username validator), so a manager cannot create a name that
    the sign-up form or the admin would refuse."""
    User = get_user_model()
    username = User.normalize_username((username or "").strip())
    if not username:
        raise ValidationError({"username": ["Give a username."]})
    try:
        User._meta.get_field(User.USERNAME_FIELD).run_validators(username)
    except ValidationError as exc:
        raise ValidationError({"username": exc.messages}) from exc
    return username


def _may_add_directly(*, by: AbstractBaseUser, username: str) -> bool:
    """Staff may add any account; a manager only people already in a project they manage, whom they see there
    anyway. Anyone else would tell the manager that the account exists. Looked up by name, so a name with no
    account and one outside the manager's projects cost the same queries."""
    User = get_user_model()
    if by.is_staff:
        return User.objects.filter(**{User.USERNAME_FIELD: username}).exists()
    managed = Membership.objects.filter(user=by, role=Membership.Role.MANAGER).values("project_id")
    return Membership.objects.filter(**{f"user__{User.USERNAME_FIELD}": username}, project_id__in=managed).exists()


@transaction.atomic
def member_add(
    *,
    project,
    username: str,
    role: str,
    by: AbstractBaseUser,
    password: str = "",
    attributes: dict[str, str] | None = None,
) -> tuple[Membership, bool]:
    """Adds an account `by` may add directly, or creates one when a password is given; returns (membership,
    user_created). `attributes` are this project's segments of the person (None leaves them as they are).

    Whether an account exists outside `by`'s projects is never revealed: without a password, "exists" and
    "does not exist" give the same refusal, which suggests an invitation link."""
    User = get_user_model()
    username = username_clean(username)
    if role not in Membership.Role.values:
        raise ValidationError(f"role must be one of {', '.join(Membership.Role.values)}")
    created = False
    if _may_add_directly(by=by, username=username):
        if password:
            raise ValidationError(f"'{username}' already has an account: leave the password empty to add it.")
        user = User.objects.get(**{User.USERNAME_FIELD: username})
    elif not password:
        raise ValidationError(
            f"Cannot add '{username}' directly: send an invitation link, "
            "or give a password to create a new account with this username."
        )
    else:
        # A new account's name must be free, which every sign-up form tells too; case-insensitively, as
        # Django's UserCreationForm checks.
        taken = ValidationError(
            {"username": [f"The username '{username}' is taken: choose another, or send an invitation link."]}
        )
        if User.objects.filter(**{f"{User.USERNAME_FIELD}__iexact": username}).exists():
            raise taken
        user = User(**{User.USERNAME_FIELD: username})
        validate_password(password, user)
        user.set_password(password)
        try:
            with transaction.atomic():
                user.save()
        except IntegrityError as exc:  # created by someone else a moment ago
            raise taken from exc
        created = True
    membership, new = Membership.objects.get_or_create(
        user=user, project=project, defaults={"role": role, "attributes": attributes or {}}
    )
    if not new:
        membership.role = role
        if attributes is not None:
            membership.attributes = attributes
        membership.save(update_fields=["role", "attributes"])
    return membership, created


def membership_update(*, membership: Membership, role: str, attributes: dict[str, str]) -> Membership:
    """Role and segments of one person in one project; their other projects keep theirs."""
    if role not in Membership.Role.values:
        raise ValidationError(f"role must be one of {', '.join(Membership.Role.values)}")
    membership.role = role
    membership.attributes = attributes
    membership.save(update_fields=["role", "attributes"])
    return membership


def invitation_create(*, project, role: str, created_by: AbstractBaseUser, now: datetime | None = None) -> Invitation:
    if role not in Membership.Role.values:
        raise ValidationError(f"role must be one of {', '.join(Membership.Role.values)}")
    now = now or timezone.now()
    return Invitation.objects.create(
        project=project,
        role=role,
        token=secrets.token_urlsafe(24),
        created_by=created_by,
        expires_at=now + timedelta(days=INVITATION_DAYS),
    )


def invitation_open(token: str, now: datetime | None = None) -> Invitation | None:
    """The invitation if it can still be used; None when unknown, used or expired."""
    now = now or timezone.now()
    return (
        Invitation.objects.filter(token=token, used_at__isnull=True, expires_at__gt=now)
        .select_related("project")
        .first()
    )


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user: AbstractBaseUser, now: datetime | None = None) -> Membership:
    """Joins `user` to the project once; an invitation cannot be used twice."""
    now = now or timezone.now()
    updated = Invitation.objects.filter(pk=invitation.pk, used_at__isnull=True, expires_at__gt=now).update(
        used_by=user, used_at=now
    )
    if not updated:
        raise ValidationError("this invitation was already used or has expired")
    membership, _ = Membership.objects.get_or_create(
        user=user, project=invitation.project, defaults={"role": invitation.role}
    )
    return membership
