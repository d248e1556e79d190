from django.contrib import admin

from .models import Invitation, Membership


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role", "attributes", "excluded_from_exports", "created_at"]
    list_editable = ["excluded_from_exports"]
    list_filter = ["role", "project", "excluded_from_exports"]
    search_fields = ["user__username", "project__slug", "project__name"]
    autocomplete_fields = ["user"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["project", "role", "created_by", "expires_at", "used_by", "used_at"]
    list_filter = ["role", "project"]
    search_fields = ["project__slug", "used_by__username"]
