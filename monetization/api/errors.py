"""Every API error is JSON ``{"code": "<stable code>", "detail": ..., ["fields": {...}]}``."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django_fsm import TransitionNotAllowed
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from monetization.errors import DomainError, ErrorCode


def _code_for(exc: exceptions.APIException) -> str:
    if isinstance(exc, exceptions.ValidationError):
        return ErrorCode.INVALID_INPUT
    if isinstance(exc, exceptions.NotAuthenticated):
        return ErrorCode.NOT_AUTHENTICATED
    if isinstance(exc, exceptions.AuthenticationFailed):
        codes = exc.get_codes()
        return codes if isinstance(codes, str) and codes != "authentication_failed" else ErrorCode.API_KEY_INVALID
    if isinstance(exc, exceptions.PermissionDenied):
        codes = exc.get_codes()
        return codes if isinstance(codes, str) and codes != "permission_denied" else ErrorCode.PERMISSION_DENIED
    if isinstance(exc, exceptions.NotFound):
        return ErrorCode.NOT_FOUND
    if isinstance(exc, exceptions.Throttled):
        return ErrorCode.THROTTLED
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else ErrorCode.INVALID_INPUT


def api_exception_handler(exc, context):
    if isinstance(exc, DomainError):
        body = {"code": exc.code, "detail": exc.detail, **exc.extra}
        return Response(body, status=exc.status)
    if isinstance(exc, TransitionNotAllowed):
        return Response({"code": ErrorCode.ILLEGAL_TRANSITION, "detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"code": ErrorCode.INVALID_INPUT, "detail": "Invalid input.", "fields": exc.detail}
    else:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        response.data = {"code": _code_for(exc), "detail": detail}
    return response
