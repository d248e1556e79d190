"""API v1 for projects: list, read, import, stats. Querysets are scoped to the requester's projects, so a
foreign project is a 404 whatever the endpoint."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from .imports.uploads import upload_import
from .permissions import IsProjectManagerOrReadOnly
from .selectors import project_list_for, project_stats
from .serializers import ImportRequestSerializer, ImportSummarySerializer, ProjectSerializer


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

    @extend_schema(request=ImportRequestSerializer, responses={201: ImportSummarySerializer})
    @action(detail=True, methods=["post"], url_path="import", parser_classes=[MultiPartParser, FormParser])
    def import_file(self, request, slug=None):
        project = self.get_object()
        form = ImportRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        summary = upload_import(
            project=project,
            upload=form.validated_data["file"],
            fmt=form.validated_data.get("format"),
            skip_invalid=form.validated_data["skip_invalid"],
            source=form.validated_data.get("source"),
        )
        return Response(summary.as_dict(), status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def stats(self, request, slug=None):
        return Response(project_stats(self.get_object()))


router = DefaultRouter()
router.register("projects", ProjectViewSet, basename="project")
