from django.db import models


class Job(models.Model):
    """Heavy work (generation, training, large exports) as a row a background worker picks up.

    The foundation only records what made a response; the worker, leases and progress come with the jobs
    issue.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    kind = models.CharField(max_length=20)
    project = models.ForeignKey("feedback.Project", on_delete=models.CASCADE, related_name="jobs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    config = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.kind} job #{self.pk} ({self.status})"
