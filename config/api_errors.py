"""Every API error is a JSON body with a 4xx status, never an HTML 500 page.

DRF's views answer JSON by themselves; the handlers below cover what happens outside them under /api/ (a URL
that matches no route, a body Django refuses before the view runs) and map Django's own request errors to the
status codes the API documents: 400 bad input, 404, 405, 409, 413 body too large.
"""

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.views import defaults
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from feedback.imports.errors import ImportFailed

from .inputs import is_api, json_error, too_large_detail


def exception_handler(exc, context):
    if isinstance(exc, ImportFailed):
        return Response(exc.as_dict(), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DjangoValidationError):
        return Response({"detail": exc.messages}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": too_large_detail()}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, SuspiciousOperation):  # too many fields or files, a malformed multipart body
        return Response({"detail": str(exc) or "Bad request."}, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)


# Django's error views (config/urls.py: handler400 …), answering JSON under /api/ and the usual pages elsewhere.


def bad_request(request, exception, template_name=defaults.ERROR_400_TEMPLATE_NAME):
    if is_api(request):
        if isinstance(exception, RequestDataTooBig):
            return json_error(too_large_detail(), status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        return json_error("Bad request.", status.HTTP_400_BAD_REQUEST)
    return defaults.bad_request(request, exception, template_name)


def permission_denied(request, exception, template_name=defaults.ERROR_403_TEMPLATE_NAME):
    if is_api(request):
        return json_error("You do not have permission to perform this action.", status.HTTP_403_FORBIDDEN)
    return defaults.permission_denied(request, exception, template_name)


def page_not_found(request, exception, template_name=defaults.ERROR_404_TEMPLATE_NAME):
    if is_api(request):
        return json_error("Not found.", status.HTTP_404_NOT_FOUND)
    return defaults.page_not_found(request, exception, template_name)


def server_error(request, template_name=defaults.ERROR_500_TEMPLATE_NAME):
    if is_api(request):
        return json_error("Server error.", status.HTTP_500_INTERNAL_SERVER_ERROR)
    return defaults.server_error(request, template_name)
