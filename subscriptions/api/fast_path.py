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
import weakref
from types import MappingProxyType

from django.conf import settings
from django.core import signals
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.http import HttpResponse
from django.http.request import HttpHeaders
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import URLResolver, get_resolver
from django.urls.resolvers import RoutePattern
from rest_framework.exceptions import APIException

from monetization.api.authentication import (
    ApiClient,
    ApiKeyAuthentication,
    AuthFailed,
    api_client_for,
    api_key_cache_key,
    api_key_credentials,
)
from monetization.api.throttling import (
    COUNTED_ENVIRON_KEY,
    CUSTOMER_ENVIRON_KEY,
    ClientThrottle,
    count_if_cached,
    uncount,
    window_clock,
)
from monetization.middleware import request_id_for
from monetization.services.cache_invalidation import cache_trust_check_due, cache_trusted
from subscriptions.api.views import EntitlementsView
from subscriptions.entitlements import entitlements_cache_key

logger = logging.getLogger(__name__)

# The external ids served: a conservative subset of what the route's ``<str:external_id>`` takes.
EXTERNAL_ID = r"[A-Za-z0-9._:@-]{1,255}"

# API key ids by prefix kept per process, a bound on the memory of keys seen.
KEY_IDS_KEPT = 10_000

# The environ values Django's host check and scheme and DRF's negotiation read (with the
# SECURE_PROXY_SSL_HEADER's, when set): their verdict is kept by these values, as a bounded
# number of verdicts, since judging costs more than the rest of a hit's own work.
JUDGED_BY = (
    "HTTP_HOST",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "SERVER_NAME",
    "SERVER_PORT",
    "wsgi.url_scheme",
    "HTTP_ACCEPT",
)
VERDICTS_KEPT = 1_000
_UNJUDGED = object()

# The receivers Django itself connects to request_started and request_finished. Each acts on what
# the request used: its database connections and their queries log, the caches' connections (a
# no-op for Redis), the URLconf. A hit that made no query (the invalidation check was not due)
# used none of them, so it skips both signals (a fifth of a hit's own CPU) while these are all
# the receivers; with any other receiver connected, every hit sends them.
DJANGOS_REQUEST_RECEIVERS = {
    "django.db.reset_queries",
    "django.db.close_old_connections",
    "django.core.cache.close_caches",
    "django.core.handlers.base.reset_urlconf",
}


def _receiver_names(signal) -> set[str]:
    names = set()
    for entry in signal.receivers:
        receiver = entry[1]
        if isinstance(receiver, weakref.ReferenceType):
            receiver = receiver()
        if receiver is not None:
            names.add(f"{getattr(receiver, '__module__', '')}.{getattr(receiver, '__qualname__', '')}")
    return names


# What each middleware does to a GET of that path without a query string or cookie. Any other
# middleware in settings.MIDDLEWARE turns the fast path off: its effect would be missing here.
UNDERSTOOD_MIDDLEWARE = {
    "django.middleware.security.SecurityMiddleware": "SSL redirect (falls through here); its headers",
    "whitenoise.middleware.WhiteNoiseMiddleware": "serves STATIC_URL only (WHITENOISE_ROOT unset)",
    "monetization.middleware.RequestIdMiddleware": "X-Request-ID",
    "monetization.middleware.ApiErrorBodyMiddleware": "nothing: it rewrites non-JSON errors; a hit is a JSON 200",
    "monetization.middleware.OutageMiddleware": "nothing: a cache hit meets no outage",
    "monetization.middleware.RequestGuardMiddleware": "nothing: a GET with no query string, a path without NUL",
    "django.contrib.sessions.middleware.SessionMiddleware": "nothing: no cookie, the session is never read",
    "django.middleware.common.CommonMiddleware": "host check, Content-Length (user agents, PREPEND_WWW: off)",
    "django.middleware.csrf.CsrfViewMiddleware": "nothing: no cookie, DRF views are csrf-exempt",
    "django.contrib.auth.middleware.AuthenticationMiddleware": "nothing: a lazy user DRF replaces",
    "django.contrib.messages.middleware.MessageMiddleware": "nothing: no message is read or added",
    "django.middleware.clickjacking.XFrameOptionsMiddleware": "X-Frame-Options",
    "django_otp.middleware.OTPMiddleware": "nothing: a lazy user's verification, never read by the API",
    "csp.middleware.CSPMiddleware": "nothing: /api/ is excluded from the policy (checked at start)",
    "axes.middleware.AxesMiddleware": "nothing: it acts only on a sign-in's lockout",
    # Request metrics for /metrics: a fast-path hit is not counted in them (README, Metrics).
    "django_prometheus.middleware.PrometheusBeforeMiddleware": "nothing to the response: request metrics",
    "django_prometheus.middleware.PrometheusAfterMiddleware": "nothing to the response: request metrics",
}


class _Headers:
    """``request.headers.get`` over the environ, as HttpHeaders answers it, without building an
    entry for every header first."""

    __slots__ = ("environ",)

    def __init__(self, environ):
        self.environ = environ

    def get(self, name: str, default=None):
        key = name.upper().replace("-", "_")
        return self.environ.get(key if key in HttpHeaders.UNPREFIXED_HEADERS else "HTTP_" + key, default)


class _Peek(WSGIRequest):
    """Just enough of a request, over the raw environ, for Django's and DRF's own code to judge
    it: ``get_host``, ``is_secure``, ``headers.get`` (Accept, X-Forwarded-For), and ``user`` once known."""

    query_params = MappingProxyType({})  # only requests without a query string get that far

    def __init__(self, environ):  # unlike WSGIRequest: no body stream, no content-type parsing
        self.environ = self.META = environ
        self.headers = _Headers(environ)


class _Body(list):
    """The WSGI iterable; the server closes it, which ends the request as Django's response does."""

    def close(self):
        signals.request_finished.send(sender=WSGIHandler)


class _Unsupported(Exception):
    """Why the fast path cannot stand in for Django's path under these settings and URLs."""


def _check_settings(view_class=EntitlementsView) -> None:
    unknown = [m for m in settings.MIDDLEWARE if m not in UNDERSTOOD_MIDDLEWARE]
    if unknown:
        raise _Unsupported(f"middleware it does not reproduce: {unknown}")
    common = "django.middleware.common.CommonMiddleware" in settings.MIDDLEWARE
    if common and (settings.PREPEND_WWW or settings.DISALLOWED_USER_AGENTS):
        raise _Unsupported("PREPEND_WWW or DISALLOWED_USER_AGENTS is set (CommonMiddleware redirects or refuses)")
    if "csp.middleware.CSPMiddleware" in settings.MIDDLEWARE and "/api/" not in getattr(
        settings, "CONTENT_SECURITY_POLICY", {}
    ).get("EXCLUDE_URL_PREFIXES", []):
        raise _Unsupported("the Content-Security-Policy covers /api/ (a header the fast path does not add)")
    if settings.CSRF_USE_SESSIONS or getattr(settings, "WHITENOISE_ROOT", None):
        raise _Unsupported("CSRF_USE_SESSIONS or WHITENOISE_ROOT is set")
    if (
        view_class.authentication_classes[:1] != [ApiKeyAuthentication]
        or list(view_class.throttle_classes) != [ClientThrottle]
        or not all(hasattr(p, "required_scope") for p in view_class.permission_classes)
        or view_class.versioning_class is not None
    ):
        raise _Unsupported(f"{view_class.__name__}'s authentication, permissions, throttles or versioning changed")


def _entitlements_route():
    """The entitlements URL pattern and the PATH_INFO regex of the paths certain to resolve to it.

    Certain because no pattern Django tries before it can match such a path: each earlier
    pattern's literal start (up to its first converter, or the prefix above a regex pattern)
    differs from the route's own. This spares a ``resolve()`` per request.
    """
    earlier: list[str] = []

    def walk(patterns, base: str, extra_kwargs: bool):
        for pattern in patterns:
            if not isinstance(pattern.pattern, RoutePattern):  # a regex: anything below ``base``
                earlier.append(base)
                continue
            route = base + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                found = walk(pattern.url_patterns, route, extra_kwargs or bool(pattern.default_kwargs))
                if found:
                    return found
            elif getattr(pattern.callback, "view_class", None) is EntitlementsView:
                return pattern, route, extra_kwargs or bool(pattern.default_args)
            else:
                earlier.append(route.split("<", 1)[0])
        return None

    found = walk(get_resolver().url_patterns, "", False)
    if found is None:
        raise _Unsupported("no URL pattern leads to EntitlementsView")
    pattern, route, extra_kwargs = found
    prefix, converter, suffix = route.partition("<str:external_id>")
    if not converter or "<" in prefix + suffix or extra_kwargs:
        raise _Unsupported(f"the entitlements route changed: {route!r}")
    clash = [literal for literal in earlier if literal.startswith(prefix) or prefix.startswith(literal)]
    if clash:
        raise _Unsupported(f"URL patterns tried before {route!r} may match its paths: {clash}")
    return pattern, re.compile(f"/{re.escape(prefix)}({EXTERNAL_ID}){re.escape(suffix)}")


class EntitlementsFastPath:
    """WSGI middleware: ``EntitlementsFastPath(get_wsgi_application())`` (monetization/wsgi.py).

    A subclass serves another cached endpoint the same way (subscriptions/api/offerings_fast_path.py):
    it names its view and route and says which request it serves and how its body is read."""

    view_class = EntitlementsView
    name = "Entitlements"

    def __init__(self, app):
        self.app = app
        self.enabled = settings.ENTITLEMENTS_FAST_PATH and isinstance(caches["default"], RedisCache)
        if not self.enabled:  # off, or the demo's in-process cache
            return
        try:
            _check_settings(self.view_class)
            pattern, self.path = self._route()
        except _Unsupported as exc:
            logger.warning("%s fast path off: %s.", self.name, exc)
            self.enabled = False
            return
        view = self.view_class(**pattern.callback.view_initkwargs)
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
        self.key_ids: dict[str, int] = {}  # prefix -> the key's id: immutable, so safe to keep
        proxy_header = settings.SECURE_PROXY_SSL_HEADER
        self.judged_by = JUDGED_BY + ((proxy_header[0],) if proxy_header else ())
        self.verdicts: dict[tuple, bool | None] = {}  # judged_by's values -> is_secure, or None: not served
        self.receivers_seen: tuple[int, int] | None = None  # the receiver counts last looked at
        self.signals_skippable = False

    def _static_headers(self, secure: bool) -> dict[str, str]:
        """The 200's headers in the order Django's path adds them: the view's, then each middleware's,
        innermost first. Content-Length and X-Request-ID hold their places, filled per request."""
        response = HttpResponse(content_type=self.view_class.response_content_type)
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
        served = self._serve(environ) if self.enabled else None
        if served is None:
            return self.app(environ, start_response)
        headers, body, queried = served
        start_response("200 OK", headers)
        if not queried and self._signals_skippable():
            return [body]
        signals.request_started.send(sender=WSGIHandler, environ=environ)
        return _Body([body])

    def _signals_skippable(self) -> bool:
        """Whether Django's own receivers are all that request_started and request_finished have."""
        seen = (len(signals.request_started.receivers), len(signals.request_finished.receivers))
        if seen != self.receivers_seen:
            self.receivers_seen = seen
            self.signals_skippable = (
                _receiver_names(signals.request_started) | _receiver_names(signals.request_finished)
            ) <= DJANGOS_REQUEST_RECEIVERS
        return self.signals_skippable

    def _serve(self, environ) -> tuple[list[tuple[str, str]], bytes, bool] | None:
        """The headers and body of Django's 200 if this is a cache hit the fast path may serve, and
        whether serving it queried the database; else None."""
        if (
            environ.get("REQUEST_METHOD") != "GET"
            or "HTTP_COOKIE" in environ  # session and CSRF cookies may make Django set or vary on cookies
        ):
            return None
        matched = self._match(environ)
        if matched is None:
            return None
        body_key, customer = matched
        try:
            credentials = api_key_credentials(environ.get("HTTP_AUTHORIZATION", ""))
        except AuthFailed:
            return None
        if credentials is None:
            return None
        judged = tuple(map(environ.get, self.judged_by))
        secure = self.verdicts.get(judged, _UNJUDGED)
        if secure is _UNJUDGED:
            secure = self._judge(environ)
            if len(self.verdicts) >= VERDICTS_KEPT:
                self.verdicts.clear()
            self.verdicts[judged] = secure
        if secure is None:
            return None
        request_id = request_id_for(environ.get("HTTP_X_REQUEST_ID", ""))  # the X-Request-ID header
        if not (request_id.isascii() and request_id.isprintable()):
            return None  # Django's response headers may refuse (500) or encode it
        request = _Peek(environ)
        token, prefix = credentials
        row_key = api_key_cache_key(prefix)
        if customer is not None:
            environ[CUSTOMER_ENVIRON_KEY] = customer  # the customer bucket, as Django's view kwargs name it
        # Anything unexpected from here on (Redis down, ...): Django meets it too and answers it its
        # way. (Should the counter's round trip fail after Redis applied it, Django counts again.)
        try:
            queried = cache_trust_check_due()
            if not cache_trusted():
                return None  # invalidations wait to be applied: Django answers from the database
            key_id = self.key_ids.get(prefix)
            throttle = ClientThrottle()
            if key_id is None or throttle.rate is None:
                body = self._serve_in_two_trips(request, token, prefix, row_key, body_key, throttle)
            else:
                body = self._serve_in_one_trip(request, token, prefix, key_id, row_key, body_key, throttle)
        except Exception:
            return None
        if body is None:
            return None
        headers = dict(self.headers[secure])  # Django's order, placeholders filled in place
        if "X-Request-ID" in headers:
            headers["X-Request-ID"] = request_id
        if "Content-Length" in headers:
            headers["Content-Length"] = str(len(body))
        return list(headers.items()), body, queried

    def _serve_in_one_trip(self, request, token, prefix, key_id, row_key, body_key, throttle) -> bytes | None:
        """The body of a hit, read with the key row and counted in one Redis round trip, or None.

        The throttle's buckets are named by the key's id, known from an earlier request (a prefix
        names one key for good), and counted only when the row and body are both cached. The checks
        Django makes before it counts (the secret, revocation, the scope) come after: when one
        fails, the count is taken back and Django answers, uncounted, as it would have.
        """
        request.user = ApiClient(key_id=key_id, name="", scopes=frozenset())  # names the buckets only
        buckets = throttle.buckets(request, None, throttle.get_cache_key(request, None))
        now = window_clock()
        counters = throttle.counters(buckets, now)
        found = self._read_and_count(row_key, body_key, counters)
        if found is None:
            return None  # a miss (nothing counted): Django loads and counts
        (row, body), counts = found
        try:
            request.user = api_client_for(row, token)
        except AuthFailed:
            request.user = None
        if (
            request.user is None
            or request.user.key_id != key_id
            or not isinstance(body, bytes)
            or not all(p.has_permission(request, self.view) for p in self.permissions)
        ):
            if request.user is not None and request.user.key_id != key_id:
                self.key_ids.pop(prefix, None)  # another key under that prefix: learn it again
            uncount(self.cache, counters)
            return None
        if not throttle.judge(buckets, counts, now):
            # Django answers the 429 in its format, counting on what was counted here.
            request.META[COUNTED_ENVIRON_KEY] = throttle.counted
            return None
        return body

    def _serve_in_two_trips(self, request, token, prefix, row_key, body_key, throttle) -> bytes | None:
        """The body of a hit, with the key row and body read in one round trip and counted in another
        (the first request of a key in this process, whose id names the throttle's buckets), or None."""
        row, body = self._read(row_key, body_key)
        if row is None or not isinstance(body, bytes):
            return None  # an uncached key (Django loads it) or an entitlements miss
        request.user = api_client_for(row, token)
        if not all(p.has_permission(request, self.view) for p in self.permissions):
            return None
        if len(self.key_ids) >= KEY_IDS_KEPT:
            self.key_ids.clear()
        self.key_ids[prefix] = request.user.key_id
        if not throttle.allow_request(request, None):
            # Django answers the 429 in its format, counting on what was counted here.
            request.META[COUNTED_ENVIRON_KEY] = throttle.counted
            return None
        return body

    # What differs from one cached endpoint to another.

    def _route(self):
        return _entitlements_route()

    def _match(self, environ) -> tuple[object, str | None] | None:
        """The body's cache key and the customer bucket's name, if this is a request the path serves."""
        if environ.get("QUERY_STRING"):  # ?format= and friends: DRF's negotiation reads them
            return None
        path = self.path.fullmatch(environ.get("PATH_INFO", ""))
        if path is None:
            return None
        return entitlements_cache_key(path[1]), path[1]

    def _read_and_count(self, row_key: str, body_key, counters) -> tuple[list, list[int]] | None:
        """``([row, body], counts)`` in one round trip, or None (nothing counted) on a miss."""
        return count_if_cached(self.cache, [row_key, body_key], counters)

    def _read(self, row_key: str, body_key) -> tuple[object, object]:
        found = self.cache.get_many([row_key, body_key])
        return found.get(row_key), found.get(body_key)

    def _judge(self, environ) -> bool | None:
        """``request.is_secure()`` if the request passes Django's middleware and DRF's negotiation, else None."""
        request = _Peek(environ)
        return request.is_secure() if self._django_would_reach_view(request) else None

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
