from django.contrib import admin

from .models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "project", "status", "created_at"]
    list_filter = ["kind", "status", "project"]
    search_fields = ["kind", "project__slug"]
