from rest_framework import serializers

from .catalog import submittable_kinds
from .models import Artifact, Job, RegisteredModel
from .selectors import evaluations_visible_to, job_log_tail, job_metric_series, model_metrics_visible_to


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
    kind = serializers.ChoiceField(choices=sorted(submittable_kinds()))
    project = serializers.SlugField()
    config = serializers.DictField(required=False, default=dict)


class RegisteredModelSerializer(serializers.ModelSerializer):
    """A registered model with its provenance and, for reward models, its evaluations. Evaluations (which quote
    a project's prompts and its annotators' agreement) are included only for projects the caller manages."""

    parent = serializers.SlugRelatedField(slug_field="name", read_only=True)
    metrics = serializers.SerializerMethodField(
        help_text="What its job measured; the evaluation inside only for managers of the project it was trained on."
    )
    provenance = serializers.SerializerMethodField(
        help_text="{job, project, dataset_sha256}: what made it (the full config is `config`)."
    )
    evaluations = serializers.SerializerMethodField(
        help_text="[{project, split, job, n, accuracy, accuracy_ci, ece, created_at, evaluation}], newest first."
    )

    class Meta:
        model = RegisteredModel
        fields = [
            "name", "kind", "parent", "path", "source", "quantisation", "parameter_count", "job", "config", "metrics",
            "dataset_sha256", "provenance", "evaluations", "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    def _user(self):
        request = self.context.get("request")
        return request.user if request is not None else None

    def get_metrics(self, model: RegisteredModel) -> dict:
        user = self._user()
        if user is None:
            return {k: v for k, v in (model.metrics or {}).items() if k != "evaluation"}
        return model_metrics_visible_to(user, model)

    def get_provenance(self, model: RegisteredModel) -> dict:
        return {
            "job": model.job_id,
            "project": model.job.project.slug if model.job_id else None,
            "dataset_sha256": model.dataset_sha256 or None,
        }

    def get_evaluations(self, model: RegisteredModel) -> list[dict]:
        user = self._user()
        if user is None or model.kind != RegisteredModel.Kind.REWARD:
            return []
        return [
            {
                "project": row.project.slug,
                "split": row.split,
                "job": row.job_id,
                "n": row.n,
                "accuracy": row.accuracy,
                "accuracy_ci": (row.evaluation or {}).get("accuracy_ci"),
                "ece": row.ece,
                "created_at": row.created_at,
                "evaluation": row.evaluation,
            }
            for row in evaluations_visible_to(user, model)
        ]
