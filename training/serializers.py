from rest_framework import serializers

from .configs import SUBMITTABLE
from .models import Artifact, Job, RegisteredModel
from .selectors import job_log_tail, job_metric_series


class ArtifactSerializer(serializers.ModelSerializer):
    class Meta:
        model = Artifact
        fields = ["name", "kind", "path", "size_bytes", "created_at"]


class JobSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    progress = serializers.SerializerMethodField()
    artifacts = ArtifactSerializer(many=True, read_only=True)

    class Meta:
        model = Job
        fields = [
            "id", "kind", "project", "status", "config", "attempt", "max_attempts", "worker", "heartbeat_at",
            "lease_expires_at", "cancel_requested", "progress", "error", "result", "artifacts", "created_by",
            "created_at", "started_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_progress(self, job: Job) -> dict:
        return {
            "current": job.progress_current,
            "total": job.progress_total,
            "percent": job.progress_percent,
            "message": job.progress_message,
        }


class JobDetailSerializer(JobSerializer):
    metrics = serializers.SerializerMethodField(help_text="{name: [[step, value], ...]}")
    log_tail = serializers.SerializerMethodField()

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "metrics", "log_tail"]
        read_only_fields = fields

    def get_metrics(self, job: Job) -> dict[str, list[list[float]]]:
        return job_metric_series(job)

    def get_log_tail(self, job: Job) -> list[str]:
        return job_log_tail(job)


class JobCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=sorted(SUBMITTABLE))
    project = serializers.SlugField()
    config = serializers.DictField(required=False, default=dict)


class RegisteredModelSerializer(serializers.ModelSerializer):
    parent = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = RegisteredModel
        fields = [
            "name", "kind", "parent", "path", "source", "quantisation", "parameter_count", "job", "config", "metrics",
            "created_at",
        ]  # fmt: skip
        read_only_fields = fields
