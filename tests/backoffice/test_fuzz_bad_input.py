"""Bad input is a 4xx, never a 5xx: every URL pattern, walked from Django's resolver, gets NUL bytes,
10,000-deep JSON, a 10 MB body, wrong content types and non-numeric ids, as a client app, a superuser
and nobody; under /api/ every error answer is JSON with a code, never an HTML page."""

from __future__ import annotations

import logging
import re

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError
from django.test import Client
from django.urls import URLResolver, get_resolver, resolve
from django.urls.resolvers import RoutePattern

from monetization.middleware import body_limit
from monetization.models import ApiKey

pytestmark = pytest.mark.django_db

DEEP = b"[" * 10_000 + b"]" * 10_000
BODIES = {
    "nul-json": (b'{"customer": "a\\u0000b", "reason": "x\\u0000", "token": "\\u0000"}', "application/json"),
    "nul-raw": (b'{"customer": "a\x00b"}', "application/json"),
    "deep-json": (DEEP, "application/json"),
    "deep-object": (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "application/json"),
    "ndjson-nul": (b'{"customer": "\\u0000", "day": "2026-01-01"}\n', "application/x-ndjson"),
    "10mb": (b"{" + b" " * (10 * 1024 * 1024) + b"}", "application/json"),
    "wrong-type-xml": (b"<a>\x00</a>", "application/xml"),
    "wrong-type-text": (b"\x00\x01\x02", "text/plain"),
    "form-nul": (b"customer=%00&reason=%00&token=%00", "application/x-www-form-urlencoded"),
}
_GROUP = re.compile(r"\(\?P<(\w+)>([^)]*)\)")


def _fill_regex(regex: str) -> str:
    def group(match):
        name, body = match.groups()
        if re.fullmatch(r"[\w|-]+", body):
            return body.split("|")[0]
        return "1" if name in ("pk", "id", "object_id") or "0-9" in body or r"\d" in body else "x1"

    path = _GROUP.sub(group, regex.lstrip("^").rstrip("$"))
    return path.replace("\\", "")


def _fill_route(route: str) -> str:
    return re.sub(r"<(?:(\w+):)?(\w+)>", lambda m: "1" if m.group(1) == "int" else "x1", route)


def all_paths() -> list[str]:
    paths: list[str] = []

    def walk(patterns, base: str):
        for pattern in patterns:
            raw = str(pattern.pattern)
            part = _fill_route(raw) if isinstance(pattern.pattern, RoutePattern) else _fill_regex(raw)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, base + part)
            else:
                paths.append("/" + base + part)

    walk(get_resolver().url_patterns, "")
    return paths


def _resolves(path: str) -> bool:
    try:
        resolve(path)
    except Exception:
        return False
    return True


@pytest.fixture
def clients():
    full, prefix, key_hash = ApiKey.generate()
    ApiKey.objects.create(name="fuzz", prefix=prefix, key_hash=key_hash, scopes=list(ApiKey.Scope.values))
    app = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {full}", HTTP_X_ACTING_CUSTOMER="a\x00b")
    admin = Client(raise_request_exception=False)
    admin.force_login(get_user_model().objects.create_superuser("fuzz-root", password="pw-long-enough-1"))
    return {"app": app, "admin": admin, "anonymous": Client(raise_request_exception=False)}


def test_the_walk_reaches_every_pattern():
    paths = all_paths()
    assert len(paths) > 250
    unresolved = [p for p in paths if not _resolves(p)]
    assert len(unresolved) <= len(paths) // 10, unresolved


@pytest.fixture
def quiet_logging():
    """No log records during the walk: pytest keeps every captured record, and Django's 4xx records
    carry their request (10 MB bodies among them), which grew this one test to 10 GB of memory."""
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


def _error_without_code(path: str, response) -> bool:
    """Under /api/ an error answer is JSON with a machine-readable code, never an HTML page."""
    if not path.startswith("/api/") or response.status_code < 400:
        return False
    if not response.get("Content-Type", "").startswith("application/json"):
        return True
    body = response.json()
    return not (isinstance(body, dict) and isinstance(body.get("code"), str) and body["code"])


def test_no_url_answers_5xx_to_bad_input(clients, quiet_logging):
    failures = []
    for path in all_paths():
        is_api = path.startswith("/api/")
        for who, client in clients.items():
            if not is_api and who == "app":
                continue
            response = client.get(path + "?q=%00&external_id=a%00b")
            if response.status_code >= 500 or _error_without_code(path, response):
                failures.append((who, "GET", path, "nul-query", response.status_code))
            methods = ("post", "put", "patch", "delete") if is_api else ("post",)
            for method in methods:
                for name, (body, content_type) in BODIES.items():
                    response = getattr(client, method)(path, data=body, content_type=content_type)
                    if response.status_code >= 500 or _error_without_code(path, response):
                        failures.append((who, method, path, name, response.status_code))
                    elif name == "10mb" and body_limit(path) < len(body):
                        assert response.status_code == 413, (who, method, path)
    assert not failures, failures[:30]


@pytest.mark.parametrize("suffix", ["x", "1x", "%C3%A9", "-1", "1.5"])
def test_a_non_numeric_id_under_api_is_a_json_404(clients, suffix):
    """Paths whose id is not a number match no URL: JSON 404 with a code for every caller, every method."""
    for path in all_paths():
        if not path.startswith("/api/") or "/1" not in path:
            continue
        bad = path.replace("/1", f"/{suffix}", 1)
        for who, client in clients.items():
            for method in ("get", "post", "delete"):
                response = getattr(client, method)(bad)
                assert response.status_code in (400, 401, 403, 404, 405), (who, method, bad, response.status_code)
                assert not _error_without_code(bad, response), (who, method, bad, response.content[:200])


def test_an_outage_is_a_json_503_with_retry_after(monkeypatch, client_with_scopes):
    from subscriptions.api import views

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(views, "resolve_entitlements_by_external_id", down)
    app = client_with_scopes("entitlements:read")
    app.raise_request_exception = False
    from tests.monetization.factories import CustomerFactory

    response = app.get(f"/api/v1/customers/{CustomerFactory().external_id}/entitlements")
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable" and response["Retry-After"] == "5"
