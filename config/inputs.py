"""Input every view may trust: what gets past these is something the database can store and Python can parse.

Each guard answers a 4xx that would otherwise have been a 500 wherever the value first met a query or a parser:
PostgreSQL text holds no NUL character and no lone surrogate, Python's JSON parser recurses (a body of 100,000
`[` is a RecursionError), and a LIMIT beyond 64 bits is an OverflowError in the database driver.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.pagination import LimitOffsetPagination

API_PREFIX = "/api/"
MAX_JSON_DEPTH = 64
MAX_PAGE_SIZE = 1000
NUL_MESSAGE = "NUL characters (\\u0000) are not allowed"


def is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


def json_error(detail: str, status_code: int) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status_code)


def too_large_detail() -> str:
    return f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes."


def text_problem(text: str) -> str | None:
    """Why PostgreSQL could not store this text, or None when it can."""
    if "\x00" in text:
        return NUL_MESSAGE
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "unpaired surrogates (\\ud800–\\udfff) are not valid text"
    return None


def _json_problem(data) -> str | None:
    """Walks parsed JSON without recursion (its depth is what is being checked)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if problem := text_problem(value):
                return problem
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                return f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
            if isinstance(value, dict):
                stack.extend((key, depth) for key in value)
                stack.extend((item, depth + 1) for item in value.values())
            else:
                stack.extend((item, depth + 1) for item in value)
    return None


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing with a 400 what would fail further in: nesting deeper than MAX_JSON_DEPTH, NUL
    characters and lone surrogates. (An oversized body never gets here: DRF reads it through Django's
    `request.body`, which raises RequestDataTooBig, a 413 in config.api_errors.)"""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels") from None
        if problem := _json_problem(data):
            raise ParseError(f"JSON parse error - {problem}")
        return data


class Pagination(LimitOffsetPagination):
    """`?limit=` is capped: an unbounded one (20 digits) overflowed the database's LIMIT."""

    max_limit = MAX_PAGE_SIZE


class RejectNulMiddleware:
    """A NUL character in the path, the query string or a posted form is a 400 on every page and API path.

    `/api/v1/projects/%00/`, `/jobs/?project=%00` or a flag's note with a NUL would each be a 500 on PostgreSQL
    in whichever lookup met the value first; refusing them here covers views written later too.

    Form bodies are checked only for views that CSRF protection reads anyway (it parses the body before the
    view runs): a csrf_exempt view may still set its own upload handlers before the body is read. DRF's views
    are such views; their serializers refuse NUL in text fields, and the JSON parser above refuses it anywhere.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path_info or _has_nul(request.GET):
            return _refuse(request)
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        if request.method != "POST" or getattr(view_func, "csrf_exempt", False):
            return None
        # A body over DATA_UPLOAD_MAX_MEMORY_SIZE raises RequestDataTooBig here, as it would in the CSRF check:
        # Django's 400 page, or a JSON 413 under /api/ (config.api_errors.bad_request).
        return _refuse(request) if _has_nul(request.POST) else None


def _has_nul(data) -> bool:
    return any("\x00" in key or any("\x00" in v for v in values) for key, values in data.lists())


def _refuse(request: HttpRequest) -> HttpResponse:
    if is_api(request):
        return json_error(NUL_MESSAGE, 400)
    return HttpResponseBadRequest(NUL_MESSAGE, content_type="text/plain; charset=utf-8")
