"""Staff API: role x action matrix (every cell), Idempotency-Key, read-only audit trail."""

import datetime
import json

import pytest
from django.db import connection
from djmoney.money import Money
from rest_framework.test import APIClient

from monetization import clock
from monetization.models import AuditEvent, IdempotencyKey, Provider, Refund
from monetization.providers.base import ProviderError, UnsupportedOperation
from monetization.services.idempotency import canonical_parameters, idempotency_keys_purge, request_fingerprint
from monetization.services.refunds import refund_request
from subscriptions.models import Grant, Subscription
from tests.monetization.support_fixtures import fake_providers, make_payment, make_staff, register_with_fake  # noqa: F401
from tests.subscriptions.factories import EntitlementFactory, GrantFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db

BASE = "/api/v1/staff"


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def world(fake_providers, make_payment, make_staff):
    """Objects every matrix cell can act on, created by a superuser so no role acts on its own request."""
    boss = make_staff(superuser=True)
    sub = SubscriptionFactory()
    register_with_fake(sub)
    customer = sub.customer
    small = make_payment(amount="50", customer=customer, subscription=sub)
    big = make_payment(amount="500", customer=customer)
    pending = refund_request(payment=big, amount=Money(400, "USD"), reason_code="goodwill", requested_by=boss)
    fake_providers("stripe").fail_next["refund"] = ProviderError("down", code="api_error")
    failed = refund_request(payment=small, amount=Money(5, "USD"), reason_code="goodwill", requested_by=boss)
    assert (pending.status, failed.status) == ("pending_approval", "failed")
    paused = SubscriptionFactory(customer=customer, state=Subscription.State.PAUSED)
    grant = GrantFactory(customer=customer)
    ent = EntitlementFactory(key="premium")
    return {
        "customer": customer,
        "sub": sub,
        "paused": paused,
        "small": small,
        "pending": pending,
        "failed": failed,
        "grant": grant,
        "entitlement": ent,
    }


def _post(client, url, body, **headers):
    return client.post(url, data=json.dumps(body), content_type="application/json", **headers)


ACTIONS = {
    "customer_summary": lambda c, w: c.get(f"{BASE}/customers/{w['customer'].external_id}"),
    "refund_list": lambda c, w: c.get(f"{BASE}/refunds"),
    "refund_create": lambda c, w: _post(
        c,
        f"{BASE}/refunds",
        {"payment_id": w["small"].pk, "amount": "10.00", "reason_code": "goodwill", "note": "n"},
        HTTP_IDEMPOTENCY_KEY="k-1",
    ),
    "refund_approve": lambda c, w: _post(c, f"{BASE}/refunds/{w['pending'].pk}/approve", {"reason": "ok"}),
    "refund_reject": lambda c, w: _post(c, f"{BASE}/refunds/{w['pending'].pk}/reject", {"reason": "no"}),
    "refund_retry": lambda c, w: _post(c, f"{BASE}/refunds/{w['failed'].pk}/retry", {"reason": "again"}),
    "grant_create": lambda c, w: _post(
        c, f"{BASE}/grants", {"customer": w["customer"].external_id, "entitlement": "premium", "days": 7, "reason": "r"}
    ),
    "grant_revoke": lambda c, w: _post(c, f"{BASE}/grants/{w['grant'].pk}/revoke", {"reason": "abuse"}),
    "subscription_cancel": lambda c, w: _post(c, f"{BASE}/subscriptions/{w['sub'].pk}/cancel", {"reason": "asked"}),
    "subscription_extend": lambda c, w: _post(
        c, f"{BASE}/subscriptions/{w['sub'].pk}/extend", {"reason": "outage", "days": 7}
    ),
    "subscription_pause": lambda c, w: _post(c, f"{BASE}/subscriptions/{w['sub'].pk}/pause", {"reason": "travel"}),
    "subscription_resume": lambda c, w: _post(c, f"{BASE}/subscriptions/{w['paused'].pk}/resume", {"reason": "back"}),
    "subscription_revoke": lambda c, w: _post(c, f"{BASE}/subscriptions/{w['sub'].pk}/revoke", {"reason": "fraud"}),
    "audit_list": lambda c, w: c.get(f"{BASE}/audit-events"),
}

ALLOWED = {
    "Support": {
        "customer_summary",
        "refund_list",
        "refund_create",
        "refund_retry",
        "grant_create",
        "subscription_cancel",
        "subscription_extend",
        "subscription_pause",
        "subscription_resume",
    },
    "Finance": {"customer_summary", "refund_list", "refund_approve", "refund_reject"},
    "Compliance": {"customer_summary", "refund_list", "grant_revoke", "subscription_revoke", "audit_list"},
    None: set(),
}


@pytest.mark.parametrize("action", sorted(ACTIONS))
@pytest.mark.parametrize("role", ["Support", "Finance", "Compliance", None])
def test_role_action_matrix(world, make_staff, role, action):
    user = make_staff(role)
    before = AuditEvent.objects.count()
    response = ACTIONS[action](client_for(user), world)
    if action in ALLOWED[role]:
        assert response.status_code in (200, 201), response.content
        if response.request["REQUEST_METHOD"] == "POST":
            assert AuditEvent.objects.filter(actor=user).exists()
    else:
        assert response.status_code == 403, response.content
        assert response.json()["code"] == "permission_denied"
        assert AuditEvent.objects.count() == before


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_api_keys_and_anonymous_cannot_use_staff_api(world, client_with_scopes, action):
    assert ACTIONS[action](APIClient(), world).status_code in (401, 403)
    client = client_with_scopes("entitlements:read", "purchases:write")
    assert ACTIONS[action](client, world).status_code in (401, 403)


def test_superuser_can_do_everything(world, make_staff):
    client = client_for(make_staff(superuser=True))
    for name in ["customer_summary", "refund_create", "grant_create", "subscription_extend", "audit_list"]:
        assert ACTIONS[name](client, world).status_code in (200, 201)


# --- Idempotency-Key -------------------------------------------------------------------


def refund_body(payment, amount="10.00"):
    return {"payment_id": payment.pk, "amount": amount, "reason_code": "goodwill", "note": "double click"}


def test_double_submit_with_one_key_refunds_once(fake_providers, make_payment, make_staff):
    client = client_for(make_staff("Support"))
    payment = make_payment(amount="50")
    first = _post(client, f"{BASE}/refunds", refund_body(payment), HTTP_IDEMPOTENCY_KEY="abc")
    second = _post(client, f"{BASE}/refunds", refund_body(payment), HTTP_IDEMPOTENCY_KEY="abc")
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Refund.objects.count() == 1
    assert [c for c in fake_providers("stripe").calls if c[0] == "refund"].__len__() == 1
    payment.refresh_from_db()
    assert payment.refunded == Money(10, "USD")


def test_same_key_different_body_is_422(fake_providers, make_payment, make_staff):
    client = client_for(make_staff("Support"))
    payment = make_payment(amount="50")
    assert _post(client, f"{BASE}/refunds", refund_body(payment), HTTP_IDEMPOTENCY_KEY="abc").status_code == 201
    response = _post(client, f"{BASE}/refunds", refund_body(payment, "11.00"), HTTP_IDEMPOTENCY_KEY="abc")
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert Refund.objects.count() == 1


def test_key_is_scoped_per_user(fake_providers, make_payment, make_staff):
    payment = make_payment(amount="50")
    for user in (make_staff("Support"), make_staff("Support")):
        assert (
            _post(client_for(user), f"{BASE}/refunds", refund_body(payment), HTTP_IDEMPOTENCY_KEY="same").status_code
            == 201
        )
    assert Refund.objects.count() == 2


def test_missing_key_is_refused(fake_providers, make_payment, make_staff):
    response = _post(client_for(make_staff("Support")), f"{BASE}/refunds", refund_body(make_payment()))
    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_required"
    assert Refund.objects.count() == 0


def test_duplicate_while_first_is_in_flight_is_409(fake_providers, make_payment, make_staff):
    user = make_staff("Support")
    payment = make_payment(amount="50")
    body = json.dumps(refund_body(payment)).encode()
    IdempotencyKey.objects.create(
        scope=f"user:{user.pk}:staff.refunds.create",
        key="busy",
        fingerprint=request_fingerprint(
            "POST", f"{BASE}/refunds", canonical_parameters({"query": {}, "data": refund_body(payment)})
        ),
    )
    response = client_for(user).post(
        f"{BASE}/refunds", data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="busy"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_in_progress"
    assert Refund.objects.count() == 0


def test_a_refused_request_is_replayed_not_retried(fake_providers, make_payment, make_staff):
    """A refusal is the answer to that key: the same request again gets it back, even once it would pass."""
    client = client_for(make_staff("Support"))
    payment = make_payment(amount="50")
    bad = _post(client, f"{BASE}/refunds", refund_body(payment, "60.00"), HTTP_IDEMPOTENCY_KEY="k")
    assert bad.status_code == 400 and bad.json()["code"] == "refund_exceeds_refundable"
    again = _post(client, f"{BASE}/refunds", refund_body(payment, "60.00"), HTTP_IDEMPOTENCY_KEY="k")
    assert (again.status_code, again.json(), again["Idempotent-Replayed"]) == (400, bad.json(), "true")
    assert IdempotencyKey.objects.get(key="k").response_status == 400
    assert Refund.objects.count() == 0


def test_keys_are_kept_24h_then_purged(settings):
    now = clock.now()
    IdempotencyKey.objects.create(scope="s", key="old", fingerprint="x", created_at=now - datetime.timedelta(hours=49))
    IdempotencyKey.objects.create(scope="s", key="new", fingerprint="x", created_at=now - datetime.timedelta(hours=25))
    assert datetime.timedelta(hours=24) <= settings.IDEMPOTENCY_KEY_TTL
    assert idempotency_keys_purge() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_double_submit_refunds_once(fake_providers, make_payment, make_staff):
    import threading

    user = make_staff("Support")
    payment = make_payment(amount="50")
    barrier = threading.Barrier(8)
    codes = []

    def go():
        try:
            barrier.wait()
            response = _post(client_for(user), f"{BASE}/refunds", refund_body(payment), HTTP_IDEMPOTENCY_KEY="race")
            codes.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Refund.objects.count() == 1
    assert set(codes) <= {201, 409} and 201 in codes
    payment.refresh_from_db()
    assert payment.refunded == Money(10, "USD")


# --- errors with stable codes ------------------------------------------------------------


def test_pause_on_app_store_is_unsupported(fake_providers, make_staff):
    sub = SubscriptionFactory(provider=Provider.APP_STORE, platform="ios")
    response = _post(client_for(make_staff("Support")), f"{BASE}/subscriptions/{sub.pk}/pause", {"reason": "x"})
    assert response.status_code == 422 and response.json()["code"] == "unsupported_by_provider"
    sub.refresh_from_db()
    assert sub.state == Subscription.State.ACTIVE


def test_extend_refused_by_platform_changes_nothing(fake_providers, make_staff):
    sub = SubscriptionFactory(provider=Provider.GOOGLE_PLAY, platform="android")
    fake_providers("google_play").fail_next["extend_subscription"] = UnsupportedOperation("no")
    end = sub.current_period_end
    response = _post(
        client_for(make_staff("Support")), f"{BASE}/subscriptions/{sub.pk}/extend", {"reason": "x", "days": 3}
    )
    assert response.status_code == 422 and response.json()["code"] == "unsupported_by_provider"
    sub.refresh_from_db()
    assert sub.current_period_end == end


def test_app_store_refund_via_api_has_clear_code(fake_providers, make_payment, make_staff):
    payment = make_payment(amount="9.99", provider=Provider.APP_STORE)
    response = _post(
        client_for(make_staff("Support")), f"{BASE}/refunds", refund_body(payment, "9.99"), HTTP_IDEMPOTENCY_KEY="a"
    )
    assert response.status_code == 422
    assert response.json()["code"] == "refund_unsupported_by_provider"


def test_action_without_reason_is_400(world, make_staff):
    response = _post(
        client_for(make_staff("Support")), f"{BASE}/subscriptions/{world['sub'].pk}/cancel", {"reason": ""}
    )
    assert response.status_code == 400


# --- audit trail: read-only, filterable ------------------------------------------------------


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_audit_events_cannot_be_changed_through_the_api(world, make_staff, method):
    event = AuditEvent.objects.first()
    client = client_for(make_staff(superuser=True))
    for url in (f"{BASE}/audit-events/{event.pk}", f"{BASE}/audit-events"):
        response = getattr(client, method)(url, data={"reason": "x"}, format="json")
        assert response.status_code == 405
    assert client.post(f"{BASE}/audit-events", {"action": "x"}, format="json").status_code == 405
    assert AuditEvent.objects.filter(pk=event.pk, reason=event.reason).exists()


def test_audit_events_filter_by_actor_object_action(world, make_staff):
    compliance = make_staff("Compliance")
    client = client_for(compliance)
    refund = world["pending"]
    rows = client.get(f"{BASE}/audit-events", {"object_type": "monetization.refund", "object_id": refund.pk}).json()[
        "results"
    ]
    assert rows and {r["object_id"] for r in rows} == {str(refund.pk)}
    rows = client.get(f"{BASE}/audit-events", {"action": "refund.fail"}).json()["results"]
    assert [r["object_id"] for r in rows] == [str(world["failed"].pk)]
    actor = rows[0]["actor"]
    rows = client.get(f"{BASE}/audit-events", {"actor": actor}).json()["results"]
    assert rows and {r["actor"] for r in rows} == {actor}


def test_customer_summary_shows_everything(world, make_staff):
    body = client_for(make_staff("Support")).get(f"{BASE}/customers/{world['customer'].external_id}").json()
    assert body["external_id"] == world["customer"].external_id
    assert len(body["subscriptions"]) == 2 and len(body["payments"]) == 2 and len(body["refunds"]) == 2
    assert body["grants"][0]["id"] == world["grant"].pk
    assert {e["source"] for e in body["entitlements"]} >= {"grant"}


def test_staff_endpoints_are_in_the_schema(make_staff):
    schema = client_for(make_staff(superuser=True)).get("/api/schema/?format=json").json()
    paths = schema["paths"]
    for p in [
        "/api/v1/staff/customers/{external_id}",
        "/api/v1/staff/refunds",
        "/api/v1/staff/refunds/{id}/approve",
        "/api/v1/staff/grants",
        "/api/v1/staff/audit-events",
    ]:
        assert p in paths, sorted(paths)
    assert "put" not in paths["/api/v1/staff/audit-events/{id}"]


def test_roles_declare_only_existing_permissions():
    from monetization.roles import sync_roles

    counts = sync_roles(strict=True)
    assert all(counts.values())


def test_purge_task_runs():
    from monetization.tasks_support import idempotency_keys_purge_task

    IdempotencyKey.objects.create(
        scope="s", key="old", fingerprint="x", created_at=clock.now() - datetime.timedelta(days=3)
    )
    assert idempotency_keys_purge_task.delay().get() == 1


def test_approve_with_idempotency_key_replays(world, make_staff):
    client = client_for(make_staff("Finance"))
    url = f"{BASE}/refunds/{world['pending'].pk}/approve"
    first = _post(client, url, {"reason": "ok"}, HTTP_IDEMPOTENCY_KEY="appr-1")
    second = _post(client, url, {"reason": "ok"}, HTTP_IDEMPOTENCY_KEY="appr-1")
    assert first.status_code == second.status_code == 200 and first.json() == second.json()
    assert first.json()["status"] == "succeeded"
    # Without a key a second approval is a plain conflict, never a second refund.
    assert _post(client, url, {"reason": "ok"}).status_code == 409
    assert Refund.objects.filter(pk=world["pending"].pk, status="succeeded").count() == 1


def test_a_grant_without_an_end_is_refused_unless_asked_for_by_name(world, make_staff):
    """The console's rule, on the API too: a blank end no longer means "forever" by accident."""
    client = client_for(make_staff("Support"))
    body = {"customer": world["customer"].external_id, "entitlement": "premium", "reason": "vip"}
    before = Grant.objects.count()
    refused = _post(client, f"{BASE}/grants", body)
    assert refused.status_code == 400 and refused.json()["code"] == "grant_end_required"
    assert Grant.objects.count() == before
    granted = _post(client, f"{BASE}/grants", {**body, "open_ended": True})
    assert granted.status_code == 201 and granted.json()["ends_at"] is None
