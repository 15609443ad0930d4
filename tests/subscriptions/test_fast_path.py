"""The WSGI fast path for entitlement cache hits (subscriptions/api/fast_path.py).

Each test calls the WSGI applications directly: ``fast`` (the fast path around a Django
application that records its calls) and ``django`` (Django alone, the reference), built after
the test's settings, as at process start. Real PostgreSQL and Redis throughout.
"""

import re
from dataclasses import dataclass
from wsgiref.util import setup_testing_defaults

import pytest
from django.conf import settings as django_settings
from django.core import signals
from django.core.cache import cache, caches
from django.core.handlers.wsgi import WSGIHandler
from redis.connection import Connection

from monetization.api.authentication import api_key_cache_key
from monetization.api.throttling import ClientThrottle
from monetization.services import cache_invalidation
from monetization.services.api_keys import api_key_create, api_key_revoke
from subscriptions.api.fast_path import EntitlementsFastPath
from subscriptions.entitlements import entitlements_cache_key
from subscriptions.services.grants import grant_create, grant_revoke
from tests.monetization.factories import CustomerFactory
from tests.subscriptions.factories import EntitlementFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),  # services' on_commit cache writes run, as in production
    pytest.mark.skipif("Redis" not in django_settings.CACHES["default"]["BACKEND"], reason="the fast path needs Redis"),
]

URL = "/api/v1/customers/{}/entitlements"


@dataclass
class Result:
    status: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return dict(self.headers).get(name)

    def without_request_id(self) -> tuple:
        return self.status, sorted(h for h in self.headers if h[0] != "X-Request-ID"), self.body


class Recording:
    """The Django application, counting the requests that reach it (the test's seam)."""

    def __init__(self, app):
        self.app, self.calls = app, 0

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.app(environ, start_response)


@dataclass
class Apps:
    fast: EntitlementsFastPath
    inner: Recording
    django: WSGIHandler


@pytest.fixture
def apps():
    def build() -> Apps:
        inner = Recording(WSGIHandler())
        return Apps(fast=EntitlementsFastPath(inner), inner=inner, django=WSGIHandler())

    return build


def call(app, path: str, method: str = "GET", **extra) -> Result:
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, **extra}
    setup_testing_defaults(environ)  # Host 127.0.0.1, http, port 80, an empty body
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen.update(status=status, headers=headers)

    iterable = app(environ, start_response)
    try:
        body = b"".join(iterable)
    finally:
        getattr(iterable, "close", lambda: None)()  # as a WSGI server does: request_finished
    return Result(seen["status"], seen["headers"], body)


@pytest.fixture
def customer():
    customer = CustomerFactory()
    grant_create(customer=customer, entitlement=EntitlementFactory(key="ad_free"), reason="goodwill", granted_by=None)
    return customer


@pytest.fixture
def key():
    return api_key_create(name="ios", scopes=["entitlements:read"])  # (full key, row); its row cached on commit


def bearer(full: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {full}"}


PRODUCTION = {  # the production branch of settings.py, behind a TLS-terminating proxy
    "SECURE_SSL_REDIRECT": True,
    "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
    "SECURE_HSTS_SECONDS": 31536000,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
    "SECURE_HSTS_PRELOAD": True,
}


@pytest.mark.parametrize(
    ("overrides", "extra"),
    [
        ({}, {}),
        ({}, {"HTTP_X_REQUEST_ID": "req-" + "9" * 80, "HTTP_ACCEPT": "application/json"}),
        ({}, {"HTTP_ACCEPT": "text/html,application/xhtml+xml,*/*;q=0.8", "HTTP_USER_AGENT": "okhttp/4"}),
        (PRODUCTION, {"HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_REQUEST_ID": "abc"}),
        ({**PRODUCTION, "SECURE_SSL_REDIRECT": False}, {}),
        (
            {"ALLOWED_HOSTS": ["api.example.com"], "USE_X_FORWARDED_HOST": True},
            {"HTTP_X_FORWARDED_HOST": "api.example.com"},
        ),
    ],
    ids=["defaults", "caller-request-id", "browser-accept", "production-https", "production-http", "forwarded-host"],
)
def test_a_hit_is_answered_ahead_of_django_exactly_as_django_answers_it(
    apps, settings, customer, key, overrides, extra, django_assert_num_queries
):
    for name, value in overrides.items():
        setattr(settings, name, value)
    app = apps()
    path, auth = URL.format(customer.external_id), bearer(key[0])

    warm = call(app.fast, path, **auth, **extra)  # an entitlements miss: Django resolves and caches
    assert warm.status == "200 OK" and app.inner.calls == 1
    with django_assert_num_queries(0):
        fast = call(app.fast, path, **auth, **extra)
    assert app.inner.calls == 1  # Django never saw it
    django = call(app.django, path, **auth, **extra)

    assert fast.status == "200 OK" and b'"ad_free"' in fast.body
    assert fast.without_request_id() == django.without_request_id()
    assert [name for name, _ in fast.headers] == [name for name, _ in django.headers]  # even the order
    if "HTTP_X_REQUEST_ID" in extra:
        assert fast.header("X-Request-ID") == django.header("X-Request-ID") == extra["HTTP_X_REQUEST_ID"][:64]
    else:
        assert len(fast.header("X-Request-ID")) == 32 and fast.header("X-Request-ID") != django.header("X-Request-ID")
    if overrides is PRODUCTION:
        assert fast.header("Strict-Transport-Security") == "max-age=31536000; includeSubDomains; preload"


def _forged(full: str) -> str:
    prefix = full.split("_")[1]
    return f"bo_{prefix}_{'x' * 43}"


def _dropped_body(full, customer):
    cache.delete(entitlements_cache_key(customer.external_id))
    return "GET", URL.format(customer.external_id), bearer(full)


def _get(path_format=URL, **environ):
    """A GET of the customer's entitlements, with ``environ`` made from the full key."""
    return lambda full, customer: (
        "GET",
        path_format.format(customer.external_id),
        {name: value.format(full=full, forged=_forged(full)) for name, value in environ.items()},
    )


FALL_THROUGH = {  # name: (Django's status, the request: (full key, customer) -> (method, path, environ))
    "entitlements-miss": ("200", _dropped_body),
    "unknown-customer": ("404", _get(URL.format("999"), HTTP_AUTHORIZATION="Bearer {full}")),
    "wrong-secret": ("401", _get(HTTP_AUTHORIZATION="Bearer {forged}")),
    "no-header": ("401", _get()),
    "malformed-header": ("401", _get(HTTP_AUTHORIZATION="Bearer {full} extra")),
    "bare-bearer": ("401", _get(HTTP_AUTHORIZATION="Bearer")),
    "not-our-format": ("401", _get(HTTP_AUTHORIZATION="Bearer nonsense")),
    "other-scheme": ("401", _get(HTTP_AUTHORIZATION="Token {full}")),
    "post": ("405", lambda full, customer: ("POST", URL.format(customer.external_id), bearer(full))),
    "head": ("200", lambda full, customer: ("HEAD", URL.format(customer.external_id), bearer(full))),
    "bad-host": ("400", _get(HTTP_AUTHORIZATION="Bearer {full}", HTTP_HOST="evil.example.com")),
    "query-string": ("404", _get(HTTP_AUTHORIZATION="Bearer {full}", QUERY_STRING="format=xml")),
    "session-cookie": ("200", _get(HTTP_AUTHORIZATION="Bearer {full}", HTTP_COOKIE="sessionid=x")),
    "not-acceptable": ("406", _get(HTTP_AUTHORIZATION="Bearer {full}", HTTP_ACCEPT="text/xml")),
    "request-id-django-refuses": ("500", _get(HTTP_AUTHORIZATION="Bearer {full}", HTTP_X_REQUEST_ID="a\nb")),
    "trailing-slash": ("404", _get(URL + "/", HTTP_AUTHORIZATION="Bearer {full}")),
}


@pytest.mark.parametrize("case", FALL_THROUGH)
def test_everything_but_a_servable_hit_goes_to_django_unchanged(apps, customer, key, case):
    app = apps()
    full = key[0]
    assert call(app.fast, URL.format(customer.external_id), **bearer(full)).status == "200 OK"  # warm
    calls = app.inner.calls
    expected, make = FALL_THROUGH[case]
    method, path, environ = make(full, customer)

    fast = call(app.fast, path, method, **environ)
    assert app.inner.calls == calls + 1
    django = call(app.django, path, method, **environ)
    assert fast.status.split()[0] == django.status.split()[0] == expected
    assert fast.body == django.body
    assert sorted(n for n, _ in fast.headers) == sorted(n for n, _ in django.headers)


def test_an_uncached_key_row_goes_to_django_which_caches_it(apps, customer, key):
    app = apps()
    full, row = key
    path = URL.format(customer.external_id)
    call(app.fast, path, **bearer(full))
    cache.delete(api_key_cache_key(row.prefix))
    assert call(app.fast, path, **bearer(full)).status == "200 OK"
    assert app.inner.calls == 2
    assert call(app.fast, path, **bearer(full)).status == "200 OK"
    assert app.inner.calls == 2  # Django cached the row again: a hit


def test_a_revoked_key_is_refused_at_the_next_request(apps, customer, key):
    app = apps()
    full, row = key
    path = URL.format(customer.external_id)
    call(app.fast, path, **bearer(full))
    assert call(app.fast, path, **bearer(full)).status == "200 OK" and app.inner.calls == 1

    api_key_revoke(key=row, revoked_by=None, reason="leaked")

    response = call(app.fast, path, **bearer(full))
    assert response.status.startswith("401") and b'"api_key_revoked"' in response.body
    assert app.inner.calls == 2


def test_a_key_without_the_scope_is_refused_by_django(apps, customer):
    app = apps()
    full, _ = api_key_create(name="web", scopes=["catalog:read"])
    other, _ = api_key_create(name="ios", scopes=["entitlements:read"])
    path = URL.format(customer.external_id)
    call(app.fast, path, **bearer(other))  # the entitlements are cached
    for _ in range(2):
        response = call(app.fast, path, **bearer(full))
        assert response.status.startswith("403") and b'"api_key_scope_missing"' in response.body
    assert app.inner.calls == 3


def test_an_ssl_redirect_is_left_to_django(apps, settings, customer, key):
    settings.SECURE_SSL_REDIRECT = True
    app = apps()
    path, auth = URL.format(customer.external_id), bearer(key[0])
    https = {"wsgi.url_scheme": "https", "SERVER_PORT": "443"}
    call(app.fast, path, **auth, **https)  # warms the entitlements
    assert call(app.fast, path, **auth, **https).status == "200 OK" and app.inner.calls == 1

    response = call(app.fast, path, **auth)  # plain http
    assert response.status.startswith("301") and response.header("Location") == f"https://127.0.0.1{path}"
    assert app.inner.calls == 2


def test_entitlement_changes_are_never_served_stale(apps, customer, key):
    app = apps()
    path, auth = URL.format(customer.external_id), bearer(key[0])
    assert b'"ad_free"' in call(app.fast, path, **auth).body
    assert b'"ad_free"' in call(app.fast, path, **auth).body
    assert app.inner.calls == 1

    grant = grant_create(
        customer=customer, entitlement=EntitlementFactory(key="edit_post"), reason="beta", granted_by=None
    )
    assert b'"edit_post"' in call(app.fast, path, **auth).body
    assert app.inner.calls == 2  # the change dropped the cached body: Django resolved it again
    assert b'"edit_post"' in call(app.fast, path, **auth).body
    assert app.inner.calls == 2

    grant_revoke(grant=grant, revoked_by=None, reason="beta over")
    assert b'"edit_post"' not in call(app.fast, path, **auth).body
    assert app.inner.calls == 3


def _throttle_count() -> int:
    redis = caches["default"]._cache.get_client(write=True)
    keys = list(redis.keys("*throttle*"))
    assert len(keys) == 1
    return int(redis.get(keys[0]))


def test_fast_path_and_django_share_one_throttle_counter_and_count_each_request_once(apps, monkeypatch, customer, key):
    # A day's window: the test cannot straddle two windows.
    monkeypatch.setattr(ClientThrottle, "THROTTLE_RATES", {"client": "4/day"})
    app = apps()
    path, auth = URL.format(customer.external_id), bearer(key[0])

    assert call(app.fast, path, **auth).status == "200 OK"  # 1: a miss, counted by Django
    assert call(app.fast, path, **auth).status == "200 OK"  # 2: a hit, counted by the fast path
    assert call(app.django, path, **auth).status == "200 OK"  # 3: Django alone
    assert call(app.fast, path, **auth).status == "200 OK"  # 4: a hit
    assert app.inner.calls == 1 and _throttle_count() == 4

    over = call(app.fast, path, **auth)  # 5: counted by the fast path, answered by Django
    assert app.inner.calls == 2 and _throttle_count() == 5
    reference = call(app.django, path, **auth)  # 6: Django alone
    assert _throttle_count() == 6
    for response in (over, reference):
        assert response.status == "429 Too Many Requests"
        assert b'"code":"throttled"' in response.body and b"Expected available in" in response.body
        assert int(response.header("Retry-After")) > 0
    assert sorted(n for n, _ in over.headers) == sorted(n for n, _ in reference.headers)


@pytest.mark.parametrize(
    "overrides",
    [
        {"ENTITLEMENTS_FAST_PATH": False},
        {"PREPEND_WWW": True},
        {"DISALLOWED_USER_AGENTS": [re.compile("bot")]},
        {"CSRF_USE_SESSIONS": True},
        {"MIDDLEWARE": [*django_settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]},
        {"ROOT_URLCONF": "tests.subscriptions.shadowing_urls"},
    ],
    ids=[
        "setting-off",
        "prepend-www",
        "disallowed-user-agents",
        "csrf-in-sessions",
        "unknown-middleware",
        "shadowing-url-pattern",
    ],
)
def test_the_fast_path_is_off_when_told_or_unsure(settings, overrides):
    for name, value in overrides.items():
        setattr(settings, name, value)
    assert EntitlementsFastPath(WSGIHandler()).enabled is False


def test_the_benchmark_urlconf_keeps_it(settings):
    settings.ROOT_URLCONF = "bench.urls"
    assert EntitlementsFastPath(WSGIHandler()).enabled is True


def test_the_wsgi_application_has_the_fast_path():
    from backoffice.wsgi import application

    assert isinstance(application, EntitlementsFastPath) and application.enabled


class RedisTrips:
    """Counts the commands or pipelines the process sends to Redis: its round trips."""

    def __init__(self, monkeypatch):
        self.count = 0
        send = Connection.send_packed_command

        def counted(connection, *args, **kwargs):
            self.count += 1
            return send(connection, *args, **kwargs)

        monkeypatch.setattr(Connection, "send_packed_command", counted)


def test_a_hit_of_a_key_seen_before_costs_one_redis_round_trip_and_one_count(apps, monkeypatch, customer, key):
    monkeypatch.setattr(ClientThrottle, "THROTTLE_RATES", {"client": "100/day"})
    app = apps()
    path, auth = URL.format(customer.external_id), bearer(key[0])
    call(app.fast, path, **auth)  # a miss: Django resolves, caches and counts
    call(app.fast, path, **auth)  # the first hit learns the key's id (two round trips)
    trips = RedisTrips(monkeypatch)

    for served in range(1, 4):
        assert call(app.fast, path, **auth).status == "200 OK"
        assert trips.count == served  # key row, entitlements and the throttle count together
    assert app.inner.calls == 1 and _throttle_count() == 5


@pytest.mark.parametrize("refusal", ["wrong-secret", "revoked"])
def test_a_refused_request_is_not_counted_by_the_fast_path(apps, monkeypatch, customer, key, refusal):
    monkeypatch.setattr(ClientThrottle, "THROTTLE_RATES", {"client": "100/day"})
    app = apps()
    full, row = key
    path = URL.format(customer.external_id)
    call(app.fast, path, **bearer(full))
    call(app.fast, path, **bearer(full))  # the key's id is known: the next requests take one round trip
    assert _throttle_count() == 2
    if refusal == "revoked":
        api_key_revoke(key=row, revoked_by=None, reason="leaked")
        request = bearer(full)
    else:
        request = bearer(_forged(full))

    response = call(app.fast, path, **request)
    assert response.status.startswith("401") and app.inner.calls == 2
    assert _throttle_count() == 2  # as Django alone: authentication fails before the throttle counts


class RequestSignals:
    """Records the request_started and request_finished signals sent (their receivers still run)."""

    def __init__(self, monkeypatch):
        self.sent = []
        for name in ("request_started", "request_finished"):
            signal = getattr(signals, name)

            def recorded(*args, _send=signal.send, _name=name, **kwargs):
                self.sent.append(_name)
                return _send(*args, **kwargs)

            monkeypatch.setattr(signal, "send", recorded)


def test_a_hit_sends_the_request_signals_when_it_queried_the_database_or_others_listen(
    apps, monkeypatch, settings, customer, key, django_assert_num_queries
):
    settings.CACHE_INVALIDATION_CHECK_INTERVAL = 60
    app = apps()
    path, auth = URL.format(customer.external_id), bearer(key[0])
    call(app.fast, path, **auth)  # a miss: Django resolves and caches
    sent = RequestSignals(monkeypatch)

    cache_invalidation._recheck_soon()  # the invalidation check is due: this hit queries
    assert call(app.fast, path, **auth).status == "200 OK"
    assert sent.sent == ["request_started", "request_finished"]  # closes what the query used, as Django

    with django_assert_num_queries(0):  # the check is not due: nothing used that the signals close
        assert call(app.fast, path, **auth).status == "200 OK"
    assert sent.sent == ["request_started", "request_finished"]

    finished = []

    def ours(**kwargs):
        finished.append(kwargs)

    signals.request_finished.connect(ours)
    try:
        assert call(app.fast, path, **auth).status == "200 OK"
    finally:
        signals.request_finished.disconnect(ours)
    assert len(finished) == 1 and app.inner.calls == 1  # a receiver not Django's hears every hit
