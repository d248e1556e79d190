from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from annotators import views as annotator_views
from feedback.api import router as feedback_router
from feedback.views import annotate as annotate_views
from feedback.views import pages as feedback_views
from training import model_views
from training import views as training_views
from training.api import router as training_router

api_v1 = [
    path("", include(feedback_router.urls)),
    path("", include(training_router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]

urlpatterns = [
    path("", feedback_views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("projects/<slug:slug>/", feedback_views.project_dashboard, name="project-dashboard"),
    path("projects/<slug:slug>/export/", feedback_views.project_export, name="project-export-form"),
    path("projects/<slug:slug>/members/", annotator_views.members, name="members"),
    path("projects/<slug:slug>/members/add/", annotator_views.member_add_view, name="member-add"),
    path("projects/<slug:slug>/members/<int:membership_id>/", annotator_views.member_update_view, name="member-update"),
    path("projects/<slug:slug>/invitations/", annotator_views.invitation_create_view, name="invitation-create"),
    path("invite/<str:token>/", annotator_views.invitation, name="invitation"),
    path("annotate/", annotate_views.annotate_home, name="annotate-home"),
    path("annotate/<slug:slug>/", annotate_views.annotate, name="annotate"),
    path("annotate/<slug:slug>/label/", annotate_views.annotate_label, name="annotate-label"),
    path("annotate/<slug:slug>/skip/", annotate_views.annotate_skip, name="annotate-skip"),
    path("annotate/<slug:slug>/undo/", annotate_views.annotate_undo, name="annotate-undo"),
    path("annotate/<slug:slug>/flag/", annotate_views.annotate_flag, name="annotate-flag"),
    path("annotate/<slug:slug>/demonstration/", annotate_views.annotate_demonstration, name="annotate-demonstration"),
    path("jobs/", training_views.jobs, name="jobs"),
    path("jobs/new/", training_views.job_new, name="job-new"),
    path("jobs/<int:pk>/", training_views.job_detail, name="job-page"),
    path("jobs/<int:pk>/artifacts/<int:artifact_id>/", training_views.job_artifact, name="job-artifact"),
    path("jobs/<int:pk>/cancel/", training_views.job_cancel_view, name="job-page-cancel"),
    path("jobs/<int:pk>/retry/", training_views.job_retry_view, name="job-page-retry"),
    path("models/", model_views.models_list, name="models"),
    path("models/<slug:name>/", model_views.model_detail, name="model-page"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
]

# Under /api/ these answer JSON (config/api_errors.py); elsewhere, Django's usual pages.
handler400 = "config.api_errors.bad_request"
handler403 = "config.api_errors.permission_denied"
handler404 = "config.api_errors.page_not_found"
handler500 = "config.api_errors.server_error"
