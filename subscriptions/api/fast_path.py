"""A WSGI fast path, ahead of Django, for cache hits of the entitlement endpoint.

Why it exists: served by gunicorn, a cache hit of ``EntitlementsView`` costs little of its own;
Django's middleware stack and DRF's request machinery cost most of each request, and the
endpoint must serve 1.2x the requests/s of a bare Django view (bench/bench_entitlements*.py).

It answers only the requests it can show Django would answer with a 200 from the cache, with the
same status, body and headers, counted once on the same throttle counter. Everything else (cache
misses, 401/403/404/406/429, other methods, query strings, cookies, bad hosts, SSL redirects, an
error talking to Redis) goes to Django untouched. Each decision is made by the code Django's path
uses (Django's host and scheme, DRF's content negotiation, our key check, scope permission and
throttle), and nothing is kept between requests: the key row and the body are read from Redis
every time, so a revoked key or a changed entitlement is seen at once.
"""

from __future__ import annotations

import logging
import re
from types import MappingProxyType

from django.conf import settings
from django.core import signals
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.http import HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import Resolver404, resolve
from rest_framework.exceptions import APIException

from monetization.api.authentication import (
    ApiKeyAuthentication,
    AuthFailed,
    api_client_for,
    api_key_cache_key,
    api_key_credentials,
)
from monetization.api.throttling import COUNTED_ENVIRON_KEY, ClientThrottle
from monetization.middleware import request_id_for
from subscriptions.api.views import EntitlementsView
from subscriptions.entitlements import entitlements_cache_key

logger = logging.getLogger(__name__)

# A conservative subset of the paths ``customers/<str:external_id>/entitlements`` matches; a
# match is still resolved through the URLconf.
PATH = re.compile(r"/api/v1/customers/[A-Za-z0-9._:@-]{1,255}/entitlements")
SAMPLE_PATH = "/api/v1/customers/x/entitlements"

# What each middleware does to a GET of that path without a query string or cookie. Any other
# middleware in settings.MIDDLEWARE turns the fast path off: its effect would be missing here.
UNDERSTOOD_MIDDLEWARE = {
    "django.middleware.security.SecurityMiddleware": "SSL redirect (falls through here); its headers",
    "whitenoise.middleware.WhiteNoiseMiddleware": "serves STATIC_URL only (WHITENOISE_ROOT unset)",
    "monetization.middleware.RequestIdMiddleware": "X-Request-ID",
    "django.contrib.sessions.middleware.SessionMiddleware": "nothing: no cookie, the session is never read",
    "django.middleware.common.CommonMiddleware": "host check, Content-Length (user agents, PREPEND_WWW: off)",
    "django.middleware.csrf.CsrfViewMiddleware": "nothing: no cookie, DRF views are csrf-exempt",
    "django.contrib.auth.middleware.AuthenticationMiddleware": "nothing: a lazy user DRF replaces",
    "django.contrib.messages.middleware.MessageMiddleware": "nothing: no message is read or added",
    "django.middleware.clickjacking.XFrameOptionsMiddleware": "X-Frame-Options",
}


class _Peek(WSGIRequest):
    """Just enough of a request, over the raw environ, for Django's and DRF's own code to judge
    it: ``get_host``, ``is_secure``, ``headers`` (Accept, X-Request-ID), and ``user`` once known."""

    query_params = MappingProxyType({})  # only requests without a query string get that far

    def __init__(self, environ):  # unlike WSGIRequest: no body stream, no content-type parsing
        self.environ = self.META = environ


def _unsupported() -> str | None:
    """Why the fast path cannot stand in for Django's path under these settings, if it cannot."""
    unknown = [m for m in settings.MIDDLEWARE if m not in UNDERSTOOD_MIDDLEWARE]
    if unknown:
        return f"middleware it does not reproduce: {unknown}"
    common = "django.middleware.common.CommonMiddleware" in settings.MIDDLEWARE
    if common and (settings.PREPEND_WWW or settings.DISALLOWED_USER_AGENTS):
        return "PREPEND_WWW or DISALLOWED_USER_AGENTS is set (CommonMiddleware redirects or refuses)"
    if settings.CSRF_USE_SESSIONS or getattr(settings, "WHITENOISE_ROOT", None):
        return "CSRF_USE_SESSIONS or WHITENOISE_ROOT is set"
    try:
        view = resolve(SAMPLE_PATH).func
    except Resolver404:
        view = None
    if getattr(view, "view_class", None) is not EntitlementsView:
        return "the entitlements path does not resolve to EntitlementsView"
    if (
        EntitlementsView.authentication_classes[:1] != [ApiKeyAuthentication]
        or list(EntitlementsView.throttle_classes) != [ClientThrottle]
        or not all(hasattr(p, "required_scope") for p in EntitlementsView.permission_classes)
        or EntitlementsView.versioning_class is not None
    ):
        return "EntitlementsView's authentication, permissions, throttles or versioning changed"
    return None


class EntitlementsFastPath:
    """WSGI middleware: ``EntitlementsFastPath(get_wsgi_application())`` (monetization/wsgi.py)."""

    def __init__(self, app):
        self.app = app
        self.enabled = settings.ENTITLEMENTS_FAST_PATH and isinstance(caches["default"], RedisCache)
        if not self.enabled:  # off, or the demo's in-process cache
            return
        why_not = _unsupported()
        if why_not:
            logger.warning("Entitlements fast path off: %s.", why_not)
            self.enabled = False
            return
        self.view_func = resolve(SAMPLE_PATH).func
        view = self.view_func.view_class(**self.view_func.view_initkwargs)
        view.setup(None)  # as as_view() does: it adds HEAD, which DRF's Allow header lists
        self.view = view
        self.negotiator = view.get_content_negotiator()
        self.renderers = view.get_renderers()
        self.permissions = view.get_permissions()
        # The headers by request.is_secure(), made by the code that makes them on Django's path.
        self.headers = {secure: self._static_headers(secure) for secure in (False, True)}
        self.ssl_redirect = "django.middleware.security.SecurityMiddleware" in settings.MIDDLEWARE and bool(
            settings.SECURE_SSL_REDIRECT
        )
        self.cache = caches["default"]

    def _static_headers(self, secure: bool) -> dict[str, str]:
        """The 200's headers in the order Django's path adds them: the view's, then each middleware's,
        innermost first. Content-Length and X-Request-ID hold their places, filled per request."""
        response = HttpResponse(content_type=EntitlementsView.response_content_type)
        self.view.headers = self.view.default_response_headers
        self.view.finalize_response(None, response)  # DRF's Allow and Vary
        peek = _Peek({"wsgi.url_scheme": "https" if secure else "http"})
        for middleware in reversed(settings.MIDDLEWARE):
            if middleware == "django.middleware.clickjacking.XFrameOptionsMiddleware":
                XFrameOptionsMiddleware(lambda r: response).process_response(peek, response)
            elif middleware == "django.middleware.common.CommonMiddleware":
                response.headers["Content-Length"] = ""
            elif middleware == "monetization.middleware.RequestIdMiddleware":
                response.headers["X-Request-ID"] = ""
            elif middleware == "django.middleware.security.SecurityMiddleware":
                SecurityMiddleware(lambda r: response).process_response(peek, response)
        return dict(response.items())

    def __call__(self, environ, start_response):
        response = self._serve(environ) if self.enabled else None
        if response is None:
            return self.app(environ, start_response)
        signals.request_started.send(sender=WSGIHandler, environ=environ)  # request_finished: response.close()
        start_response(f"{response.status_code} {response.reason_phrase}", list(response.items()))
        return response

    def _serve(self, environ) -> HttpResponse | None:
        """Django's response to this request if it is a cache hit the fast path may serve, else None."""
        if (
            environ.get("REQUEST_METHOD") != "GET"
            or environ.get("QUERY_STRING")  # ?format= and friends: DRF's negotiation reads them
            or "HTTP_COOKIE" in environ  # session and CSRF cookies may make Django set or vary on cookies
            or not PATH.fullmatch(environ.get("PATH_INFO", ""))
        ):
            return None
        try:
            credentials = api_key_credentials(environ.get("HTTP_AUTHORIZATION", ""))
        except AuthFailed:
            return None
        if credentials is None:
            return None
        request = _Peek(environ)
        if not self._django_would_reach_view(request):
            return None
        try:
            match = resolve(environ["PATH_INFO"])
        except Resolver404:
            return None
        if match.func is not self.view_func:
            return None
        token, prefix = credentials
        row_key, body_key = api_key_cache_key(prefix), entitlements_cache_key(match.kwargs["external_id"])
        # Anything unexpected from here on (Redis down, ...): Django meets it too and answers it its
        # way. (Should the counter's round trip fail after Redis applied it, Django counts again.)
        try:
            found = self.cache.get_many([row_key, body_key])  # round trip 1
            row, body = found.get(row_key), found.get(body_key)
            if row is None or not isinstance(body, bytes):
                return None  # an uncached key (Django loads it) or an entitlements miss
            request.user = api_client_for(row, token)
            if not all(p.has_permission(request, self.view) for p in self.permissions):
                return None
            response = self._response(request, body)
            throttle = ClientThrottle()
            if not throttle.allow_request(request, None):  # round trip 2: counts this request
                # Django answers the 429 in its format, counting on what was counted here.
                environ[COUNTED_ENVIRON_KEY] = throttle.counted
                return None
        except Exception:
            return None
        return response

    def _django_would_reach_view(self, request: _Peek) -> bool:
        """Whether the request passes Django's middleware and DRF's negotiation (or when in doubt, not)."""
        try:
            request.get_host()  # CommonMiddleware: DisallowedHost -> 400
        except DisallowedHost:
            return False
        if self.ssl_redirect and not request.is_secure():
            return False  # SecurityMiddleware's redirect (SECURE_REDIRECT_EXEMPT aside: Django decides)
        try:
            self.negotiator.select_renderer(request, self.renderers)  # DRF: 406
        except APIException:
            return False
        return True

    def _response(self, request: _Peek, body: bytes) -> HttpResponse:
        """The 200 the view and middleware would send; BadHeaderError for an X-Request-ID Django refuses."""
        response = HttpResponse(body, headers=self.headers[request.is_secure()])
        response._handler_class = WSGIHandler
        if "X-Request-ID" in response:
            response["X-Request-ID"] = request_id_for(request.headers.get("X-Request-ID", ""))
        if "Content-Length" in response:
            response.headers["Content-Length"] = str(len(body))
        return response
