"""The OpenAPI schema and its docs page: Swagger UI from our own static files (no CDN, so
/api/docs/ renders offline), every operation's error answers, the webhooks and /healthz, and
parameters the server refuses refused by the schema too."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_docs_page_loads_swagger_ui_from_our_static_files_only():
    page = Client().get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, html[:500]
    assert not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
    assert "cdn" not in html.lower() and "@latest" not in html
    bundle = [a for a in assets if a.endswith("swagger-ui-bundle.js")]
    assert bundle
    for asset in assets:
        path = asset.removeprefix("/static/")
        found = finders.find(path)
        assert found, f"{asset} is not a file of ours"
        with open(found, "rb") as f:
            head = f.read(200_000)
        assert head, asset
    with open(finders.find(bundle[0].removeprefix("/static/")), "rb") as f:
        assert b"SwaggerUIBundle" in f.read()
    # The page's own script fetches the schema from this server.
    assert "/api/schema/" in html


def test_every_operation_lists_its_error_answers(schema):
    assert schema["components"]["schemas"]["Error"]["required"] == ["code", "detail"]
    missing = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            expected = {"400", "404", "503"}
            if operation.get("security") != []:
                expected |= {"401", "403", "429"}
            if method != "get" and path.startswith("/api/v1/") and "webhooks" not in path:
                expected |= {"409", "422"}
            absent = expected - set(operation["responses"])
            if absent:
                missing.append((method, path, sorted(absent)))
    assert not missing, missing


def test_webhooks_and_healthz_are_described(schema):
    for provider in ("stripe", "stripe-connect", "app-store", "google-play"):
        operation = schema["paths"][f"/api/v1/webhooks/{provider}"]["post"]
        assert operation["security"] == [] and "200" in operation["responses"] and "400" in operation["responses"]
    stripe = schema["paths"]["/api/v1/webhooks/stripe"]["post"]
    assert [p["name"] for p in stripe["parameters"]] == ["Stripe-Signature"]
    google = schema["paths"]["/api/v1/webhooks/google-play"]["post"]
    assert [(p["in"], p["name"]) for p in google["parameters"]] == [("query", "token")]
    assert schema["paths"]["/healthz"]["get"]["responses"]["200"]


def _parameter(schema, path, method, name):
    return next(p for p in schema["paths"][path][method]["parameters"] if p["name"] == name)


def test_the_schema_refuses_what_the_server_refuses(schema):
    acting = _parameter(schema, "/api/v1/orgs/{handle}/subscription", "get", "X-Acting-Customer")["schema"]
    pattern = re.compile(acting["pattern"])
    assert acting["minLength"] == 1
    assert not pattern.search("") and not pattern.search(" ") and not pattern.search("  a") and pattern.search("c_1")
    country = _parameter(schema, "/api/v1/catalog", "get", "country")["schema"]
    assert not re.search(country["pattern"], "") and not re.search(country["pattern"], "USA")
    assert re.search(country["pattern"], "de")


@pytest.mark.parametrize("header", ["", " ", "\t"])
def test_the_server_refuses_a_blank_acting_customer(client_with_scopes, header):
    app = client_with_scopes("orgs:write")
    response = app.get("/api/v1/orgs/someorg/subscription", HTTP_X_ACTING_CUSTOMER=header)
    assert response.status_code == 400 and response.json()["code"] == "acting_customer_required"
