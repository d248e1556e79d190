"""Admin for jobs and the model registry. Jobs are created here like anywhere else: through job_submit, so the
config is validated against its kind's dataclass."""

from django import forms
from django.contrib import admin, messages

from .catalog import submittable_kinds
from .configs import ConfigError, config_dict, config_from
from .jobs import JobStateError, job_cancel, job_retry
from .models import Artifact, Job, JobLog, JobMetric, RegisteredModel, ResponseScore, RewardEvaluation


class JobForm(forms.ModelForm):
    kind = forms.ChoiceField(choices=[(k, k) for k in submittable_kinds()])

    class Meta:
        model = Job
        fields = ["kind", "project", "config", "max_attempts"]

    def clean(self):
        data = super().clean()
        if data.get("kind"):
            try:
                data["config"] = config_dict(config_from(data["kind"], data.get("config") or {}))
            except ConfigError as exc:
                self.add_error("config", str(exc))
        return data


class ArtifactInline(admin.TabularInline):
    model = Artifact
    extra = 0
    readonly_fields = ["name", "kind", "path", "size_bytes", "created_at"]
    can_delete = False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    form = JobForm
    list_display = ["id", "kind", "project", "status", "attempt", "progress_percent", "worker", "created_at"]
    list_filter = ["kind", "status", "project"]
    search_fields = ["kind", "project__slug", "error"]
    inlines = [ArtifactInline]
    actions = ["cancel_jobs", "retry_jobs"]
    readonly_fields = [
        "status", "attempt", "requeues", "worker", "lease_expires_at", "heartbeat_at", "cancel_requested",
        "progress_current", "progress_total", "progress_message", "error", "result", "created_by", "created_at",
        "started_at", "finished_at", "run_after",
    ]  # fmt: skip

    def get_readonly_fields(self, request, obj=None):
        # A job's kind and config are what it ran with; changing them afterwards would falsify its provenance.
        return self.readonly_fields + (["kind", "project", "config"] if obj else [])

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
            obj.config = form.cleaned_data["config"]
        super().save_model(request, obj, form, change)

    def _each(self, request, queryset, action, verb):
        done = 0
        for job in queryset:
            try:
                action(job)
                done += 1
            except JobStateError as exc:
                self.message_user(request, str(exc), messages.WARNING)
        if done:
            self.message_user(request, f"{verb} {done} job(s).")

    @admin.action(description="Cancel selected jobs")
    def cancel_jobs(self, request, queryset):
        self._each(request, queryset, job_cancel, "Cancelled (or asked to stop)")

    @admin.action(description="Retry selected failed or cancelled jobs")
    def retry_jobs(self, request, queryset):
        self._each(request, queryset, job_retry, "Queued again")


@admin.register(JobLog)
class JobLogAdmin(admin.ModelAdmin):
    list_display = ["job", "attempt", "created_at", "line"]
    list_filter = ["job__kind"]
    search_fields = ["line"]
    raw_id_fields = ["job"]


@admin.register(JobMetric)
class JobMetricAdmin(admin.ModelAdmin):
    list_display = ["job", "attempt", "step", "name", "value"]
    list_filter = ["name"]
    search_fields = ["name"]
    raw_id_fields = ["job"]


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    list_display = ["job", "name", "kind", "path", "size_bytes"]
    search_fields = ["name", "path"]
    raw_id_fields = ["job"]


@admin.register(RegisteredModel)
class RegisteredModelAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "parent", "quantisation", "parameter_count", "source", "job"]
    list_filter = ["kind"]
    search_fields = ["name", "source"]
    readonly_fields = [
        "path", "source", "parameter_count", "job", "config", "metrics", "dataset_sha256", "created_at",
    ]  # fmt: skip


@admin.register(RewardEvaluation)
class RewardEvaluationAdmin(admin.ModelAdmin):
    """Written by reward and reward_eval jobs; read-only here, as their figures are what the job measured."""

    list_display = ["model", "project", "split", "n", "accuracy", "ece", "job", "created_at"]
    list_filter = ["split", "project"]
    search_fields = ["model__name", "project__slug"]
    raw_id_fields = ["model", "project", "job"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ResponseScore)
class ResponseScoreAdmin(admin.ModelAdmin):
    """Written by score jobs; read-only here."""

    list_display = ["response", "model", "score", "job", "created_at"]
    list_filter = ["model"]
    search_fields = ["model__name", "response__text"]
    raw_id_fields = ["response", "model", "job"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
