"""POST /api/v1/models/<name>/score/: scores texts with a registered reward model, through a `score` job.

The web process never imports torch (nor loads a model: seconds to minutes, and gigabytes, per request). A
request queues a `score` job with the items and answers 202 at once; a worker scores them in its child process
and the caller reads the scores from the job (GET /api/v1/jobs/<id>/, `result`). Batching is the job's: one
request carries up to 1,000 items, scored `batch_size` at a time.
"""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from .configs import ConfigError
from .jobs import job_submit
from .models import RegisteredModel
from .selectors import projects_managed_by

MAX_ITEMS = 1000


class ScoreRequestSerializer(serializers.Serializer):
    project = serializers.SlugField(help_text="A project you manage; the job runs in it.")
    items = serializers.ListField(
        child=serializers.DictField(),
        min_length=1,
        max_length=MAX_ITEMS,
        help_text='{"prompt": text or chat messages, "response": text}, or a pair {"prompt", "a", "b"}.',
    )
    batch_size = serializers.IntegerField(required=False, min_value=1, max_value=256, help_text="Texts per pass.")


ScoreQueued = inline_serializer(
    "ScoreQueued",
    {
        "job": serializers.IntegerField(),
        "status": serializers.CharField(),
        "url": serializers.CharField(help_text="GET it until status is succeeded; the scores are in `result`."),
    },
)

SCHEMA = extend_schema(
    request=ScoreRequestSerializer,
    responses={202: ScoreQueued},
    examples=[
        OpenApiExample(
            "one answer and one pair",
            value={
                "project": "demo",
                "items": [
                    {"prompt": "Why is the sky blue?", "response": "Rayleigh scattering."},
                    {"prompt": "2+2?", "a": "4", "b": "5"},
                ],
            },
            request_only=True,
        )
    ],
)


def score_queue(request: Request, model: RegisteredModel) -> Response:
    """Validates the request and queues the `score` job; 400 names the field, 202 gives the job to poll."""
    form = ScoreRequestSerializer(data=request.data)
    if not form.is_valid():
        return Response(form.errors, status=status.HTTP_400_BAD_REQUEST)
    if model.kind != RegisteredModel.Kind.REWARD:
        return Response(
            {"model": [f"{model.name} is a {model.get_kind_display().lower()}, not a reward model."]},
            status=status.HTTP_400_BAD_REQUEST,
        )
    project = projects_managed_by(request.user).filter(slug=form.validated_data["project"]).first()
    if project is None:
        return Response({"project": ["No project with this slug that you manage."]}, status=status.HTTP_400_BAD_REQUEST)
    config = {"model": model.name, "responses": "none", "items": form.validated_data["items"]}
    if "batch_size" in form.validated_data:
        config["batch_size"] = form.validated_data["batch_size"]
    try:
        job = job_submit(kind="score", project=project, config=config, user=request.user)
    except ConfigError as exc:
        message = str(exc)
        field = "items" if message.startswith("items") else "config"
        return Response({field: [message]}, status=status.HTTP_400_BAD_REQUEST)
    url = request.build_absolute_uri(reverse("job-detail", args=[job.pk]))
    return Response(
        {"job": job.pk, "status": job.status, "url": url}, status=status.HTTP_202_ACCEPTED, headers={"Location": url}
    )
