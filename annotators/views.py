"""The project's members page (managers) and the invitation link (anyone holding it)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from feedback.selectors import project_role, project_visible_or_404

from .forms import InvitationForm, MemberAddForm, MembershipForm, SignUpForm
from .models import Invitation, Membership
from .services import (
    invitation_accept,
    invitation_create,
    invitation_open,
    member_add,
    membership_update,
    parse_attributes,
)

TEMPLATE = "annotators/members.html"


def _managed_project(request: HttpRequest, slug: str):
    project = project_visible_or_404(request.user, slug)
    if project_role(request.user, project) != "manager":
        raise PermissionDenied("Only the project's managers manage its members.")
    return project


def _attributes_text(membership: Membership) -> str:
    return "\n".join(f"{k}={v}" for k, v in membership.attributes.items())


def _members_context(request: HttpRequest, project, **extra) -> dict:
    memberships = project.memberships.select_related("user").order_by("user__username")
    rows = [{"membership": m, "attributes": _attributes_text(m)} for m in memberships]
    invitations = Invitation.objects.filter(project=project, used_at__isnull=True).order_by("-created_at")
    return {
        "project": project,
        "rows": rows,
        "roles": Membership.Role.choices,
        "add_form": extra.pop("add_form", None) or MemberAddForm(),
        "invitation_form": InvitationForm(),
        "invitations": [
            {"invitation": i, "url": request.build_absolute_uri(reverse("invitation", args=[i.token]))}
            for i in invitations
        ],
        **extra,
    }


@login_required
def members(request: HttpRequest, slug: str) -> HttpResponse:
    project = _managed_project(request, slug)
    return render(request, TEMPLATE, _members_context(request, project))


@login_required
@require_POST
def member_add_view(request: HttpRequest, slug: str) -> HttpResponse:
    project = _managed_project(request, slug)
    form = MemberAddForm(request.POST)
    if form.is_valid():
        try:
            attributes = parse_attributes(form.cleaned_data["attributes"])
            membership, created = member_add(
                project=project,
                username=form.cleaned_data["username"],
                role=form.cleaned_data["role"],
                by=request.user,
                password=form.cleaned_data["password"],
                attributes=attributes or None,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            verb = "Created and added" if created else "Added"
            messages.success(request, f"{verb} {membership.user.username} as {membership.role}.")
            return redirect("members", slug=slug)
    # Invalid forms re-render with 200 so htmx swaps them too.
    return render(request, TEMPLATE, _members_context(request, project, add_form=form))


@login_required
@require_POST
def member_update_view(request: HttpRequest, slug: str, membership_id: int) -> HttpResponse:
    project = _managed_project(request, slug)
    membership = get_object_or_404(Membership, pk=membership_id, project=project)
    form = MembershipForm(request.POST)
    error = None
    if form.is_valid():
        try:
            membership_update(
                membership=membership,
                role=form.cleaned_data["role"],
                attributes=parse_attributes(form.cleaned_data["attributes"]),
            )
        except ValidationError as exc:
            error = " ".join(exc.messages)
    else:
        error = "choose a role"
    if request.htmx:
        row = {"membership": membership, "attributes": request.POST.get("attributes", "")}
        return render(
            request,
            f"{TEMPLATE}#member-row",
            {"project": project, "row": row, "roles": Membership.Role.choices, "error": error, "saved": error is None},
        )
    if error:
        messages.error(request, f"{membership.user.username}: {error}")
    else:
        messages.success(request, f"Saved {membership.user.username}.")
    return redirect("members", slug=slug)


@login_required
@require_POST
def invitation_create_view(request: HttpRequest, slug: str) -> HttpResponse:
    project = _managed_project(request, slug)
    form = InvitationForm(request.POST)
    if form.is_valid():
        invitation_create(project=project, role=form.cleaned_data["role"], created_by=request.user)
        messages.success(request, "Invitation link created: copy it from the list below and send it.")
    return redirect("members", slug=slug)


def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """Signed in: join the project. Signed out: create an account (or sign in first), then join."""
    invite = invitation_open(token)
    if invite is None:
        return render(request, "annotators/invitation.html", {"invalid": True}, status=404)
    form = SignUpForm(request.POST or None)
    if request.method == "POST":
        user = request.user if request.user.is_authenticated else None
        if user is None and form.is_valid():
            user = form.save()
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        if user is not None:
            try:
                invitation_accept(invitation=invite, user=user)
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
                return redirect("home")
            messages.success(request, f"Welcome to {invite.project.name}!")
            return redirect("annotate", slug=invite.project.slug)
    return render(request, "annotators/invitation.html", {"invite": invite, "form": form})
