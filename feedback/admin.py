from django.conf import settings
from django.contrib import admin, messages
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from annotators.models import Membership

from .forms import ImportForm
from .imports.errors import ImportFailed
from .imports.uploads import upload_import
from .models import Assignment, Comparison, Demonstration, Flag, Label, Project, Prompt, RankingItem, Response


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "labels_per_item", "comparison_mode", "hide_model_names", "created_at"]
    search_fields = ["slug", "name"]
    list_filter = ["comparison_mode", "hide_model_names"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]
    actions = ["export_dataset"]
    change_form_template = "admin/feedback/project/change_form.html"

    @admin.action(description="Export a dataset (one project)")
    def export_dataset(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one project to export.", level=messages.WARNING)
            return None
        return redirect("project-export-form", slug=queryset.get().slug)

    def get_urls(self):
        extra = [path("<int:pk>/import/", self.admin_site.admin_view(self.import_view), name="feedback_project_import")]
        return extra + super().get_urls()

    def import_view(self, request, pk: int):
        project = get_object_or_404(Project, pk=pk)
        if not self.has_change_permission(request, project):
            return redirect("admin:index")
        form = ImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                outcome = upload_import(
                    project=project,
                    upload=form.cleaned_data["file"],
                    fmt=form.cleaned_data["format"] or None,
                    skip_invalid=form.cleaned_data["skip_invalid"],
                    source=form.cleaned_data["source"] or None,
                    user=request.user,
                )
            except ImportFailed as exc:
                form.add_error("file", exc.message)
            else:
                if outcome.job is not None:
                    messages.success(
                        request,
                        f"Import queued as job #{outcome.job.pk}: a worker imports the file; this page shows its "
                        "progress and, when it ends, what was imported.",
                    )
                    return redirect("job-page", pk=outcome.job.pk)
                summary = outcome.summary
                messages.success(request, f"Import finished: {str(summary).splitlines()[0]}")
                for line in str(summary).splitlines()[1:]:
                    messages.warning(request, line.strip())
                return redirect(reverse("admin:feedback_project_change", args=[project.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Import into {project.name}",
            "project": project,
            "form": form,
            "sync_max_bytes": settings.JUROR_IMPORT_SYNC_MAX_BYTES,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/feedback/project/import.html", context)


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ["id", "__str__", "project", "created_at"]
    list_filter = ["project"]
    search_fields = ["content_hash", "messages"]
    readonly_fields = ["content_hash"]


@admin.register(Response)
class ResponseAdmin(admin.ModelAdmin):
    list_display = ["id", "__str__", "model", "prompt", "created_at"]
    list_filter = ["prompt__project", "model"]
    search_fields = ["text", "model", "content_hash"]
    raw_id_fields = ["prompt", "job"]
    readonly_fields = ["content_hash"]


class RankingItemInline(admin.TabularInline):
    model = RankingItem
    extra = 0
    raw_id_fields = ["response"]


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "project", "prompt", "priority", "gold_choice", "created_at"]
    list_filter = ["project", "kind"]
    search_fields = ["prompt__messages", "members_key"]
    raw_id_fields = ["prompt", "response_a", "response_b"]
    inlines = [RankingItemInline]


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ["id", "comparison", "choice", "strength", "annotator", "source", "created_at"]
    list_filter = ["comparison__project", "choice", "source"]
    search_fields = ["rationale", "source", "annotator__username"]
    raw_id_fields = ["comparison", "annotator"]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "comparison", "annotator", "status", "leased_at", "expires_at", "finished_at"]
    list_filter = ["status", "comparison__project"]
    search_fields = ["annotator__username", "skip_reason"]
    raw_id_fields = ["comparison", "annotator"]


@admin.register(Demonstration)
class DemonstrationAdmin(admin.ModelAdmin):
    list_display = ["id", "__str__", "author", "prompt", "based_on", "created_at"]
    list_filter = ["prompt__project"]
    search_fields = ["text", "author__username"]
    raw_id_fields = ["prompt", "comparison", "based_on", "author"]


@admin.register(Flag)
class FlagAdmin(admin.ModelAdmin):
    list_display = ["id", "comparison", "reason", "annotator", "note", "created_at"]
    list_filter = ["reason", "comparison__project"]
    search_fields = ["note", "annotator__username"]
    raw_id_fields = ["comparison", "annotator"]
