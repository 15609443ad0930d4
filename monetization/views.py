import sys

from django.db import connection
from django.http import JsonResponse
from django.views import defaults

from monetization.errors import ErrorCode
from monetization.middleware import OUTAGE_ERRORS, outage_response


def health(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def not_found(request, exception=None):
    """handler404: JSON with a code under /api/ (a non-numeric id in a path matches no URL), Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"code": ErrorCode.NOT_FOUND, "detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """handler500: an outage met outside a view is a JSON 503 with Retry-After; any other error
    a JSON 500 for API clients, Django's page elsewhere."""
    exc = sys.exc_info()[1]
    if isinstance(exc, OUTAGE_ERRORS):
        return outage_response()
    if request.path.startswith("/api/"):
        return JsonResponse({"code": ErrorCode.SERVER_ERROR, "detail": "Server error."}, status=500)
    return defaults.server_error(request)
