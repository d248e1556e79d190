"""Input every view may trust: what gets past these is something the database can store and Python can parse.

Each guard answers a 4xx that would otherwise have been a 500 wherever the value first met a query or a parser:
PostgreSQL text holds no NUL character and no lone surrogate, Python's JSON parser recurses (a body of 100,000
`[` is a RecursionError), and a LIMIT beyond 64 bits is an OverflowError in the database driver.
"""

from __future__ import annotations

import codecs

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from rest_framework import parsers
from rest_framework.exceptions import APIException, ParseError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.utils import json

API_PREFIX = "/api/"
MAX_JSON_DEPTH = 64
MAX_PAGE_SIZE = 1000
NUL_MESSAGE = "NUL characters (\\u0000) are not allowed"


def is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


def json_error(detail: str, status_code: int) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status_code)


class RequestTooLarge(APIException):
    status_code = 413
    default_detail = "The request body is too large."
    default_code = "request_too_large"


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
    """DRF's JSON parser, plus: a body over DATA_UPLOAD_MAX_MEMORY_SIZE is a 413 (Django checks that for forms
    only), and nesting, NUL characters and lone surrogates are refused with a 400 naming the problem."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise RequestTooLarge(f"The request body is larger than {limit:,} bytes.")
        encoding = parsers.get_encoding(parser_context or {})
        try:
            text = codecs.decode(raw, encoding)
            data = json.loads(text, parse_constant=json.strict_constant if self.strict else None)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels") from None
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise ParseError(f"JSON parse error - {exc}") from None
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
        try:
            bad = _has_nul(request.POST)
        except RequestDataTooBig:
            if not is_api(request):
                raise  # Django's own 400 page
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            return json_error(f"The request body is larger than {limit:,} bytes.", 413)
        return _refuse(request) if bad else None


def _has_nul(data) -> bool:
    return any("\x00" in key or any("\x00" in v for v in values) for key, values in data.lists())


def _refuse(request: HttpRequest) -> HttpResponse:
    if is_api(request):
        return json_error(NUL_MESSAGE, 400)
    return HttpResponseBadRequest(NUL_MESSAGE, content_type="text/plain; charset=utf-8")
