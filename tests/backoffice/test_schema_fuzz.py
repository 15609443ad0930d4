"""Schemathesis over the whole OpenAPI schema, through the WSGI application as deployed (the
entitlement fast path included), as a client app with every scope and as each staff role.

Each operation gets ``FUZZ_EXAMPLES`` valid and as many invalid requests per caller (bounded for CI:
about a minute or two here; raise it for a longer run). Every answer must be: not a 5xx, a status
the schema lists, of its content type, matching its schema, and under /api/ a 4xx must be JSON with
a machine-readable ``code``. Failures are collected over the whole run and reported together.
"""

from __future__ import annotations

import datetime
import os
from collections import Counter

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from backoffice.wsgi import application
from creators.models import RevenueShareCycle
from monetization import clock
from monetization.models import ApiKey, AuditEvent, WebhookEvent
from monetization.roles import sync_roles
from tests.creators.factories import make_creator
from tests.verified_orgs.factories import applied_org

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "4"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
CSRF = "fuzzcsrftokenfuzzcsrftokenfuzzcs"  # 32 characters: a valid unmasked token, same in cookie and header


@pytest.fixture
def in_test_transaction():
    """The WSGI handler closes the connection at each request's end, as in production; inside the test's
    transaction it must not (Django's own test client disconnects the same receivers)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def callers() -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """Per caller, the headers and the cookies it sends."""
    full, prefix, key_hash = ApiKey.generate()
    ApiKey.objects.create(name="fuzz", prefix=prefix, key_hash=key_hash, scopes=list(ApiKey.Scope.values))
    found = {"api_key": {"Authorization": f"Bearer {full}"}}
    cookies: dict[str, dict[str, str]] = {"api_key": {}}
    sync_roles()
    for role in ("Support", "Finance", "Compliance"):
        user = get_user_model().objects.create_user(f"fuzz-{role.lower()}", password="pw-long-enough-1", is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        session = Client()
        session.force_login(user)
        found[role] = {"X-CSRFToken": CSRF}
        cookies[role] = {"sessionid": session.cookies["sessionid"].value, "csrftoken": CSRF}
    return found, cookies


def code_on_every_api_error(case, response) -> str | None:
    if not case.path.startswith("/api/") or response.status_code < 400:
        return None
    try:
        body = response.json()
    except Exception:  # any decoding failure is the finding
        return f"{response.status_code} is not JSON: {response.text[:120]!r}"
    if not isinstance(body, dict) or not isinstance(body.get("code"), str) or not body["code"]:
        return f"{response.status_code} without a code: {str(body)[:120]}"
    return None


def fuzz_operation(
    operation, mode, who: dict, jars: dict, failures: list, statuses: Counter, path_parameters: dict | None = None
) -> None:
    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def fuzz(case):
        for caller, headers in who.items():
            response = case.call(headers=headers, cookies=jars[caller])
            statuses[response.status_code // 100 * 100] += 1
            if os.environ.get("FUZZ_DEBUG"):
                print("FUZZDBG", caller, case.method, case.formatted_path, response.status_code, response.text[:150])
            try:
                case.validate_response(response, checks=CHECKS, headers=headers)
            except (Exception, BaseExceptionGroup) as exc:  # collected, reported together
                found = exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]
                failures.append(
                    (
                        caller,
                        mode.value,
                        operation.label,
                        response.status_code,
                        [str(e)[:200] for e in found],
                        response.text[:200],
                    )
                )
            problem = code_on_every_api_error(case, response)
            if problem:
                failures.append((caller, mode.value, operation.label, response.status_code, problem))

    try:
        fuzz()
    except Unsatisfiable:
        assert mode == GenerationMode.NEGATIVE, operation.label  # nothing in it can be made invalid


def existing_objects() -> dict[str, dict]:
    """Path parameters naming objects that exist, by path prefix: a second round of valid requests
    reaches the services (and their refusals) instead of stopping at 404."""
    org = applied_org()
    creator = make_creator()
    cycle = RevenueShareCycle.objects.create(period=datetime.date(2026, 9, 1))
    event = WebhookEvent.objects.create(
        provider="stripe",
        event_id="evt_fuzz",
        event_type="invoice.paid",
        occurred_at=clock.now(),
        payload={},
        status=WebhookEvent.Status.FAILED,
    )
    audit = AuditEvent.objects.order_by("id").first()
    return {
        "/api/v1/staff/organizations/": {"id": org.pk},
        "/api/v1/staff/creators/": {"id": creator.pk},
        "/api/v1/staff/cycles/": {"id": cycle.pk},
        "/api/v1/staff/webhook-events/": {"id": event.pk},
        "/api/v1/staff/audit-events/": {"id": audit.pk},
        "/api/v1/staff/customers/": {"external_id": org.billing_customer.external_id},
        "/api/v1/customers/": {"external_id": org.billing_customer.external_id},
        "/api/v1/orgs/": {"handle": org.handle},
    }


def test_the_whole_schema_as_every_caller(in_test_transaction, settings, stripe_billing_double):
    # A deployment that takes Stripe's webhooks (without the secret the endpoint is a 503 by design).
    settings.STRIPE_WEBHOOK_SECRET = "whsec_fuzz"
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    who, jars = callers()
    failures: list[tuple] = []
    statuses: Counter = Counter()
    targets = existing_objects()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz_operation(operation, mode, who, jars, failures, statuses)
        known = next((ids for prefix, ids in targets.items() if operation.path.startswith(prefix)), None)
        if known is not None:
            names = {p.name for p in operation.path_parameters}
            fuzz_operation(
                operation,
                GenerationMode.POSITIVE,
                who,
                jars,
                failures,
                statuses,
                {k: v for k, v in known.items() if k in names},
            )
    print(f"schemathesis: {sum(statuses.values())} requests, by status class {dict(sorted(statuses.items()))}")
    for failure in failures[:40]:
        print("FUZZ", failure)
    assert sum(statuses.values()) > 100
    assert statuses[500] == 0, [f for f in failures if f[3] >= 500][:10]
    assert not failures, f"{len(failures)} failures; first: {failures[:8]}"
