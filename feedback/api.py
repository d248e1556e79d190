"""API v1 for projects: list, read, import, stats. Querysets are scoped to the requester's projects, so a
foreign project is a 404 whatever the endpoint."""

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from .annotation import item_view
from .assignment import assignment_queue
from .exports.requests import export_zip_response, options_from
from .imports.uploads import upload_import
from .labels import IdempotencyConflict, Judgement, LabelRejected, label_submit
from .models import Assignment
from .permissions import IsProjectManagerOrReadOnly
from .selectors import project_list_for, project_role, project_stats
from .serializers import (
    ExportRequestSerializer,
    ImportRequestSerializer,
    ImportSummarySerializer,
    LabelRequestSerializer,
    LabelResultSerializer,
    NextItemSerializer,
    ProjectSerializer,
)

IMPORT_QUEUED = inline_serializer(
    "ImportQueued",
    {
        "job": serializers.IntegerField(),
        "status": serializers.CharField(),
        "url": serializers.URLField(help_text="The job in the API; its `result` is the import's summary."),
        "page": serializers.URLField(help_text="The job's page on the site."),
    },
)


class ProjectViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = ProjectSerializer
    permission_classes = [IsAuthenticated, IsProjectManagerOrReadOnly]
    lookup_field = "slug"

    def get_queryset(self):
        return project_list_for(self.request.user).order_by("slug")

    @extend_schema(request=ImportRequestSerializer, responses={201: ImportSummarySerializer, 202: IMPORT_QUEUED})
    @action(detail=True, methods=["post"], url_path="import", parser_classes=[MultiPartParser, FormParser])
    def import_file(self, request, slug=None):
        """A file up to JUROR_IMPORT_SYNC_MAX_BYTES (2 MB, unpacked) is imported in the request: 201 with the
        summary. A larger one is stored and imported by an `import` job: 202 at once with the job's id, its API
        `url` (also the Location header) and its `page`; the job's result is the summary."""
        project = self.get_object()
        form = ImportRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        outcome = upload_import(
            project=project,
            upload=form.validated_data["file"],
            fmt=form.validated_data.get("format"),
            skip_invalid=form.validated_data["skip_invalid"],
            source=form.validated_data.get("source"),
            user=request.user,
        )
        if outcome.job is None:
            return Response(outcome.summary.as_dict(), status=status.HTTP_201_CREATED)
        job = outcome.job
        url = request.build_absolute_uri(reverse("job-detail", args=[job.pk]))
        body = {
            "job": job.pk,
            "status": job.status,
            "url": url,
            "page": request.build_absolute_uri(reverse("job-page", args=[job.pk])),
        }
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": url})

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def stats(self, request, slug=None):
        project = self.get_object()
        stats = project_stats(project)
        if project.hide_model_names and project_role(request.user, project) != "manager":
            stats.pop("models")  # annotators must not learn which models they are judging
        return Response(stats)

    @extend_schema(request=ExportRequestSerializer, responses={(200, "application/zip"): bytes})
    @action(detail=True, methods=["post"])
    def export(self, request, slug=None):
        """Exports the project's dataset (managers) and answers with a zip: data, README.md card, manifest."""
        project = self.get_object()  # IsProjectManagerOrReadOnly: a POST here is for managers only
        form = ExportRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        try:
            options = options_from(data)
        except ValueError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return export_zip_response(project=project, options=options)

    @extend_schema(responses={200: NextItemSerializer, 204: None})
    @action(detail=True, methods=["get"], url_path="next")
    def next_item(self, request, slug=None):
        """Leases the next item for the requester (or returns the one they already hold); 204 when none is left."""
        queue = assignment_queue(annotator=request.user, project=self.get_object(), size=1)
        if not queue:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(_item_json(queue[0]))


class AssignmentViewSet(viewsets.GenericViewSet):
    """Only the requester's own assignments exist here; anyone else's is a 404."""

    permission_classes = [IsAuthenticated]
    serializer_class = LabelRequestSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Assignment.objects.none()
        return Assignment.objects.filter(annotator=self.request.user).select_related("comparison__project")

    @extend_schema(
        request=LabelRequestSerializer,
        responses={201: LabelResultSerializer, 200: LabelResultSerializer, 400: dict, 409: dict},
        parameters=[
            OpenApiParameter("next", bool, description="Also lease the next item and return it as `next`."),
            OpenApiParameter(
                "Idempotency-Key",
                str,
                location=OpenApiParameter.HEADER,
                description="Up to 100 characters; a retry with the same key returns the first label.",
            ),
        ],
    )
    @action(detail=True, methods=["post"])
    def label(self, request, pk=None):
        """Records the judgement. Honours the Idempotency-Key header: a retry returns the first label (200); the
        same key on another assignment is a 409, a key over 100 characters a 400.

        With `?next=1` the answer also carries the next item (or null), as the annotate page gets it: one round
        trip per item instead of two."""
        assignment = self.get_object()
        form = LabelRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            label, created = label_submit(
                assignment=assignment,
                annotator=request.user,
                judgement=Judgement(**form.validated_data),
                idempotency_key=request.headers.get("Idempotency-Key") or None,
            )
        except IdempotencyConflict as exc:
            return Response({exc.field: [exc.message]}, status=status.HTTP_409_CONFLICT)
        except LabelRejected as exc:
            return Response({exc.field: [exc.message]}, status=status.HTTP_400_BAD_REQUEST)
        body = {
            "label_id": label.pk,
            "assignment_id": assignment.pk,
            "comparison": label.comparison_id,
            "created": created,
        }
        if request.query_params.get("next") in ("1", "true"):
            queue = assignment_queue(annotator=request.user, project=assignment.comparison.project, size=1)
            body["next"] = _item_json(queue[0]) if queue else None
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _item_json(assignment: Assignment) -> dict:
    view = item_view(assignment)
    return {
        "assignment_id": view.assignment_id,
        "comparison": view.comparison_id,
        "kind": view.kind,
        "messages": view.messages,
        "responses": {r.key: {"text": r.text, "reasoning": r.reasoning, "model": r.model} for r in view.responses},
        "lease_expires_at": view.expires_at,
    }


router = DefaultRouter()
router.register("projects", ProjectViewSet, basename="project")
router.register("assignments", AssignmentViewSet, basename="assignment")
