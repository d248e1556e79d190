"""Managing who works on a project: members, roles, segment attributes, invitations."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .models import Invitation, Membership, Profile

INVITATION_DAYS = 7


def parse_attributes(text: str) -> dict[str, str]:
    """ "expertise=expert\\naudience=child" → {"expertise": "expert", "audience": "child"}."""
    attributes = {}
    for n, line in enumerate((text or "").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValidationError(f"line {n}: write attributes as key=value (e.g. expertise=expert)")
        attributes[key.strip()] = value.strip()
    return attributes


@transaction.atomic
def member_add(
    *, project, username: str, role: str, password: str = "", attributes: dict | None = None
) -> tuple[Membership, bool]:
    """Adds an existing account, or creates one when a password is given; returns (membership, user_created)."""
    User = get_user_model()
    username = (username or "").strip()
    if not username:
        raise ValidationError("username is required")
    if role not in Membership.Role.values:
        raise ValidationError(f"role must be one of {', '.join(Membership.Role.values)}")
    user = User.objects.filter(username=username).first()
    created = False
    if user is None:
        if not password:
            raise ValidationError(f"no account '{username}': give a password to create it, or send an invitation")
        user = User(username=username)
        validate_password(password, user)
        user.set_password(password)
        user.save()
        created = True
    membership, _ = Membership.objects.update_or_create(user=user, project=project, defaults={"role": role})
    if attributes is not None:
        profile_set_attributes(user=user, attributes=attributes)
    return membership, created


def profile_set_attributes(*, user: AbstractBaseUser, attributes: dict[str, str]) -> Profile:
    profile, _ = Profile.objects.get_or_create(user=user)
    profile.attributes = attributes
    profile.save(update_fields=["attributes"])
    return profile


def membership_update(*, membership: Membership, role: str, attributes: dict[str, str]) -> Membership:
    if role not in Membership.Role.values:
        raise ValidationError(f"role must be one of {', '.join(Membership.Role.values)}")
    membership.role = role
    membership.save(update_fields=["role"])
    profile_set_attributes(user=membership.user, attributes=attributes)
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
