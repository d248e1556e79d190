"""API v1 for jobs and the model registry. Only a project's managers (and staff) see its jobs; anyone else gets
a 404, so job ids do not reveal which projects exist."""

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from .configs import ConfigError
from .jobs import JobStateError, job_cancel, job_retry, job_submit
from .models import Job, RegisteredModel
from .score_api import SCHEMA as score_schema
from .score_api import score_queue
from .selectors import jobs_visible_to, models_visible_to, projects_managed_by
from .serializers import JobCreateSerializer, JobDetailSerializer, JobSerializer, RegisteredModelSerializer

# Allowlisted query parameters and the field each filters: no relation walks from the query string.
FILTERS = {"project": "project__slug", "status": "status", "kind": "kind"}


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    permission_classes = [IsAuthenticated]
    serializer_class = JobSerializer

    def get_queryset(self) -> QuerySet[Job]:
        if getattr(self, "swagger_fake_view", False):
            return Job.objects.none()
        jobs = jobs_visible_to(self.request.user).prefetch_related("artifacts").order_by("-id")
        for name, field in FILTERS.items():
            if value := self.request.query_params.get(name):
                jobs = jobs.filter(**{field: value})
        return jobs

    @extend_schema(
        parameters=[OpenApiParameter(name, str, description=f"Only jobs with this {name}.") for name in FILTERS]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def get_serializer_class(self):
        return JobDetailSerializer if self.action == "retrieve" else JobSerializer

    @extend_schema(request=JobCreateSerializer, responses={201: JobSerializer})
    def create(self, request):
        """Queues a job. The config is checked against the kind's dataclass; a bad key or value is a 400 naming it."""
        form = JobCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        project = projects_managed_by(request.user).filter(slug=form.validated_data["project"]).first()
        if project is None:
            return Response(
                {"project": ["No project with this slug that you manage."]}, status=status.HTTP_400_BAD_REQUEST
            )
        try:
            job = job_submit(
                kind=form.validated_data["kind"],
                project=project,
                config=form.validated_data["config"],
                user=request.user,
            )
        except ConfigError as exc:
            return Response({"config": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: JobSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Queued jobs are cancelled at once; a running job's worker stops it within a heartbeat."""
        return self._change(job_cancel)

    @extend_schema(request=None, responses={200: JobSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Queues a failed or cancelled job again; it resumes from its last checkpoint."""
        return self._change(job_retry)

    def _change(self, action_fn) -> Response:
        try:
            job = action_fn(self.get_object())
        except JobStateError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(JobSerializer(job).data)


class RegisteredModelViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The model registry, for people who run projects. Models are registered with `manage.py register_model`."""

    permission_classes = [IsAuthenticated]
    serializer_class = RegisteredModelSerializer
    lookup_field = "name"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return RegisteredModel.objects.none()
        return models_visible_to(self.request.user)

    @score_schema
    @action(detail=True, methods=["post"])
    def score(self, request, name=None):
        """Scores texts with this reward model: queues a `score` job and answers 202 with the job to poll (GET
        /api/v1/jobs/<id>/; the scores are its `result`). The web process never imports torch: the worker's
        child loads the model and scores, in batches. Only a project's managers; up to 1,000 items."""
        return score_queue(request, self.get_object())


router = DefaultRouter()
router.register("jobs", JobViewSet, basename="job")
router.register("models", RegisteredModelViewSet, basename="model")
