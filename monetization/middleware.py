import contextvars
import logging
import re
import uuid
from http import HTTPStatus

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import JsonResponse

from monetization.cache import CACHE_ERRORS
from monetization.errors import ErrorCode

logger = logging.getLogger(__name__)

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


def current_request_id() -> str:
    return request_id_var.get()


def request_id_for(incoming: str) -> str:
    """The id of a request: the caller's X-Request-ID (at most 64 characters) or a fresh one."""
    return incoming[:64] if incoming else uuid.uuid4().hex


class RequestIdMiddleware:
    """Gives each request an id (or keeps the caller's X-Request-ID) for logs and the audit trail."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        rid = request_id_for(request.headers.get("X-Request-ID", ""))
        request.request_id = rid
        token = request_id_var.set(rid)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = rid
        return response


# --- bad input and outages: a clear 4xx or a JSON 503, never a 500 ------------------------------

JSON_CONTENT_TYPES = ("application/json", "application/x-ndjson")
_NUL = re.compile(rb"\x00|\\u0000", re.IGNORECASE)
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]")


def _error(status: int, code: str, detail: str, **headers) -> JsonResponse:
    response = JsonResponse({"code": code, "detail": detail}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON (or JSON-lines) body."""
    if body.count(b"[") + body.count(b"{") <= 1:
        return body.count(b"[") + body.count(b"{")
    brackets = _NOT_BRACKET.sub(b"", _JSON_STRING.sub(b"", body))
    depth = deepest = 0
    for char in brackets:
        if char in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def body_limit(path: str) -> int:
    for prefix, limit in settings.REQUEST_BODY_LIMITS.items():
        if path.startswith(prefix):
            return limit
    return settings.REQUEST_BODY_MAX_BYTES


class RequestGuardMiddleware:
    """Refuses what the views below would choke on, before they see it: NUL bytes (PostgreSQL
    stores none), JSON nested deeper than ``REQUEST_JSON_MAX_DEPTH`` (Python's parser recurses),
    bodies over the limit (413) and webhooks that are not JSON (415). Each answer is JSON with a
    stable code and changes nothing."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        refused = self.refuse(request)
        return refused if refused is not None else self.get_response(request)

    def refuse(self, request):
        if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", ""):
            return _error(400, ErrorCode.INVALID_INPUT, "NUL bytes are not accepted.")
        if request.method not in ("POST", "PUT", "PATCH", "DELETE"):
            return None
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _error(400, ErrorCode.INVALID_INPUT, "Invalid Content-Length.")
        limit = body_limit(request.path)
        if length > limit:
            return _error(413, ErrorCode.PAYLOAD_TOO_LARGE, f"The body is larger than {limit} bytes.")
        content_type = request.content_type or ""
        if request.path.startswith(settings.WEBHOOK_PATH_PREFIX) and content_type != "application/json":
            return _error(415, ErrorCode.UNSUPPORTED_MEDIA_TYPE, "Webhook bodies are application/json.")
        if content_type not in JSON_CONTENT_TYPES or length == 0 or length > settings.REQUEST_BODY_MAX_BYTES:
            return None  # streamed bulk bodies are validated row by row by their view
        body = request.body
        if _NUL.search(body):
            return _error(400, ErrorCode.INVALID_INPUT, "NUL bytes are not accepted.")
        if json_depth(body) > settings.REQUEST_JSON_MAX_DEPTH:
            return _error(
                400, ErrorCode.INVALID_INPUT, f"JSON nested deeper than {settings.REQUEST_JSON_MAX_DEPTH} levels."
            )
        return None


# Codes for the error answers Django gives by itself (no URL matched, method not allowed, ...).
_STATUS_CODES = {
    400: ErrorCode.INVALID_INPUT,
    401: ErrorCode.NOT_AUTHENTICATED,
    403: ErrorCode.PERMISSION_DENIED,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    429: ErrorCode.THROTTLED,
    503: ErrorCode.SERVICE_UNAVAILABLE,
}


class ApiErrorBodyMiddleware:
    """Under ``/api/`` every error answer is JSON with a code: Django's own answers (an HTML 404 for a
    path no URL matches, such as a non-numeric id; the empty 405 of ``require_POST``; an HTML 403 or
    500) are rewritten, keeping their status and headers (``Allow``, ``Retry-After``)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code < 400
            or not request.path.startswith("/api/")
            or response.get("Content-Type", "").startswith("application/json")
            or response.streaming
        ):
            return response
        status = response.status_code
        code = _STATUS_CODES.get(status, ErrorCode.SERVER_ERROR if status >= 500 else ErrorCode.INVALID_INPUT)
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        detail = f"{phrase}."
        rewritten = JsonResponse({"code": code, "detail": detail}, status=status)
        for name in ("Allow", "Retry-After", "X-Request-ID", "WWW-Authenticate"):
            if name in response:
                rewritten[name] = response[name]
        return rewritten


OUTAGE_ERRORS = (OperationalError, InterfaceError, *CACHE_ERRORS)


def outage_response() -> JsonResponse:
    return _error(
        503,
        ErrorCode.SERVICE_UNAVAILABLE,
        "A backing service is unavailable; retry shortly.",
        Retry_After=str(settings.OUTAGE_RETRY_AFTER),
    )


class OutageMiddleware:
    """A database or cache outage met by a view answers JSON 503 with Retry-After, not an HTML 500
    (outages met outside views reach ``handler500``: monetization.views.server_error)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, OUTAGE_ERRORS):
            logger.error("Outage answered 503: %s", exception, exc_info=exception)
            return outage_response()
        return None
