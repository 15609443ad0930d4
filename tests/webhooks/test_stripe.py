import time

import pytest
from djmoney.money import Money

from monetization.models import AuditEvent, Payment, WebhookEvent
from subscriptions.models import Subscription

from .support import (
    fixture,
    post_stripe,
    stripe_body,
    stripe_invoice_event,
    stripe_signature,
    stripe_subscription_event,
)

pytestmark = pytest.mark.django_db(transaction=True)
SUB = "sub_1QwebPremium0000000001"


def _sub() -> Subscription:
    return Subscription.objects.get(provider="stripe", provider_subscription_id=SUB)


def test_subscription_created_then_paid_is_active_with_a_balanced_payment(client, catalog, customers):
    created = fixture("stripe", "customer.subscription.created")
    assert post_stripe(client, created).status_code == 200
    assert post_stripe(client, fixture("stripe", "invoice.paid")).status_code == 200

    sub = _sub()
    assert sub.state == Subscription.State.ACTIVE and sub.customer == customers["web"]
    assert sub.current_period_end.timestamp() == 1769904000  # read from the subscription item
    payment = Payment.objects.get(provider="stripe", provider_reference="in_1QwebInvoice00000000001")
    assert payment.amount == Money("8.00", "USD") and payment.kind == Payment.Kind.INITIAL
    assert payment.subscription_link.subscription == sub and payment.status == Payment.Status.SUCCEEDED
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"applied"}
    history = AuditEvent.objects.filter(object_type="subscriptions.subscription").values_list("action", "actor_label")
    assert ("subscription.activate", "stripe:evt_1QsubCreated000000000001") in list(history)


def test_duplicate_delivery_is_acknowledged_and_applied_once(client, catalog, customers):
    event = fixture("stripe", "customer.subscription.created")
    first, second = post_stripe(client, event), post_stripe(client, event)
    assert first.status_code == second.status_code == 200
    assert second.json() == {"received": 1, "duplicates": 1}
    assert WebhookEvent.objects.count() == 1
    assert WebhookEvent.objects.get().attempts == 1


@pytest.mark.parametrize(
    "case",
    ["bad_secret", "altered_body", "stale_timestamp", "no_header"],
)
def test_bad_signatures_get_400_and_store_nothing(client, catalog, customers, case):
    event = fixture("stripe", "customer.subscription.created")
    body = stripe_body(event)
    header = stripe_signature(body)
    if case == "bad_secret":
        header = stripe_signature(body, secret="whsec_wrong")
    elif case == "altered_body":
        body = body.replace(b'"status": "active"', b'"status": "trialing"')
    elif case == "stale_timestamp":
        header = stripe_signature(body, timestamp=int(time.time()) - 301)
    elif case == "no_header":
        header = ""
    response = client.post(
        "/api/v1/webhooks/stripe", data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_signature"
    assert not WebhookEvent.objects.exists() and not Subscription.objects.exists()


@pytest.mark.parametrize("body", [b"not json at all", b'{"object": "event", "type": "x"}', b"[]"])
def test_signed_but_malformed_body_is_400_malformed_payload(client, body):
    response = client.post(
        "/api/v1/webhooks/stripe",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_signature(body),
    )
    assert response.status_code == 400 and response.json()["code"] == "malformed_payload"
    assert not WebhookEvent.objects.exists()


def test_a_provider_left_out_of_the_deployment_is_404_and_stores_nothing(client, settings):
    settings.PAYMENT_PROVIDERS_ENABLED = ["app_store", "google_play"]
    body = stripe_body(fixture("stripe", "customer.subscription.created"))
    response = client.post(
        "/api/v1/webhooks/stripe",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_signature(body),
    )
    assert (response.status_code, response.json()["code"]) == (404, "provider_disabled")
    assert not WebhookEvent.objects.exists()


def test_out_of_order_events_converge_on_the_newest(client, catalog, customers):
    canceled = stripe_subscription_event(
        event_id="evt_3", created=1767225900, status="active", cancel_at_period_end=True
    )
    created = stripe_subscription_event(
        event_id="evt_1", created=1767225600, status="incomplete", event_type="customer.subscription.created"
    )
    active = stripe_subscription_event(event_id="evt_2", created=1767225700, status="active")
    for event in (canceled, created, active):  # newest first
        assert post_stripe(client, event).status_code == 200
    sub = _sub()
    assert sub.state == Subscription.State.CANCELED and sub.auto_renew is False
    assert sub.last_event_at.timestamp() == 1767225900
    notes = dict(WebhookEvent.objects.values_list("event_id", "note"))
    assert "older event" in notes["evt_1"] and "older event" in notes["evt_2"]


def test_lifecycle_past_due_unpaid_recovered_deleted(client, catalog, customers):
    steps = [
        ("active", Subscription.State.ACTIVE),
        # Web subscriptions have no grace: Stripe retrying is billing retry, without access.
        ("past_due", Subscription.State.ON_HOLD),
        ("unpaid", Subscription.State.ON_HOLD),
        ("active", Subscription.State.ACTIVE),
        ("paused", Subscription.State.PAUSED),
        ("active", Subscription.State.ACTIVE),
    ]
    t = 1767225600
    for i, (status, expected) in enumerate(steps):
        post_stripe(client, stripe_subscription_event(event_id=f"evt_{i}", created=t + i * 60, status=status))
        assert _sub().state == expected, status
    failed = fixture("stripe", "invoice.payment_failed")
    post_stripe(client, failed)
    assert AuditEvent.objects.filter(action="payment.failed").count() == 1
    deleted = stripe_subscription_event(
        event_id="evt_del", created=t + 3600, status="canceled", event_type="customer.subscription.deleted"
    )
    post_stripe(client, deleted)
    assert _sub().state == Subscription.State.EXPIRED


def test_upgrade_changes_plan_and_renewal_records_a_renewal(client, catalog, customers):
    post_stripe(client, stripe_subscription_event(event_id="evt_a", created=1767225600))
    post_stripe(
        client,
        stripe_subscription_event(event_id="evt_b", created=1767225660, price_id="price_1QpremiumPlusMonthlyUSD1"),
    )
    assert _sub().plan.code == "premium-plus-monthly"
    assert AuditEvent.objects.filter(action="subscription.change_plan").exists()
    post_stripe(client, stripe_invoice_event(event_id="evt_inv2", created=1769904005, invoice_id="in_2", amount=2200))
    payment = Payment.objects.get(provider_reference="in_2")
    assert payment.kind == Payment.Kind.RENEWAL and payment.amount == Money("22.00", "USD")


def test_full_refund_is_booked_once_and_leaves_access(client, catalog, customers, stripe_http, client_with_scopes):
    stripe_http.responses[("get", "/v1/invoice_payments")] = fixture("stripe", "invoice_payments.list")
    stripe_http.responses[("get", "/v1/refunds")] = {
        "object": "list",
        "data": [{"id": "re_1", "object": "refund", "amount": 800, "currency": "usd", "status": "succeeded"}],
        "has_more": False,
    }
    post_stripe(client, fixture("stripe", "customer.subscription.created"))
    post_stripe(client, fixture("stripe", "invoice.paid"))
    api = client_with_scopes("entitlements:read")
    assert len(api.get(f"/api/v1/customers/{customers['web'].external_id}/entitlements").json()["entitlements"]) == 2

    assert post_stripe(client, fixture("stripe", "charge.refunded")).status_code == 200
    # Stripe never ends a subscription on a refund (stripe.rules.ACCESS_RULES): access follows its own events.
    assert _sub().state == Subscription.State.ACTIVE
    assert AuditEvent.objects.filter(action="subscription.refund_reported").exists()
    assert len(api.get(f"/api/v1/customers/{customers['web'].external_id}/entitlements").json()["entitlements"]) == 2
    # The money side: one succeeded refund of the whole payment, booked once even when redelivered.
    payment = Payment.objects.get(provider="stripe")
    assert payment.refunded == payment.amount and payment.status == Payment.Status.REFUNDED
    redelivered = fixture("stripe", "charge.refunded")
    redelivered["id"] = "evt_refund_redelivered"
    assert post_stripe(client, redelivered).status_code == 200
    from monetization.models import Refund
    from monetization.services.ledger import ledger_report

    assert list(Refund.objects.values_list("provider_refund_id", "status", "amount")) == [
        ("re_1", "succeeded", payment.amount.amount)
    ]
    assert ledger_report().balanced
    # The charge no longer names its invoice: the adapter asked Stripe which invoice the payment intent paid.
    assert stripe_http.requests[0]["path"] == "/v1/invoice_payments"


def test_invoice_before_its_subscription_waits_for_it_and_is_applied_when_it_arrives(client, catalog, customers):
    response = post_stripe(client, fixture("stripe", "invoice.paid"))
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.WAITING and event.attempts == 1
    assert event.waiting_for == "sub_1QwebPremium0000000001" and "not known yet" in event.last_error
    assert event.next_attempt_at > event.last_attempt_at  # the sweep looks again later, with backoff

    # The subscription's own event creates it: the waiting invoice is queued at once (inline here).
    post_stripe(client, fixture("stripe", "customer.subscription.created"))
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.APPLIED and event.attempts == 2
    assert (event.waiting_for, event.next_attempt_at) == ("", None)
    assert Payment.objects.filter(provider_reference="in_1QwebInvoice00000000001").count() == 1


def test_replay_applies_a_failed_event_once_its_subscription_arrived(client, catalog, customers, admin_user, settings):
    from monetization.webhook_queue import webhook_event_replay

    settings.WEBHOOK_WAITING_GIVE_UP_HOURS = settings.WEBHOOK_APPLY_MAX_RETRIES = 0  # failed, left to a person
    post_stripe(client, fixture("stripe", "invoice.paid"))
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.FAILED
    post_stripe(client, fixture("stripe", "customer.subscription.created"))
    webhook_event_replay(event=event, user=admin_user, reason="subscription arrived late")
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.APPLIED
    assert Payment.objects.filter(provider_reference="in_1QwebInvoice00000000001").count() == 1
    audit = AuditEvent.objects.get(action="webhook.replay")
    assert audit.actor == admin_user and audit.reason == "subscription arrived late"


def test_unhandled_event_types_are_stored_as_ignored(client):
    event = fixture("stripe", "customer.subscription.created")
    event.update(id="evt_other", type="customer.created")
    assert post_stripe(client, event).status_code == 200
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.IGNORED


def test_past_due_keeps_access_where_the_product_grants_grace(client, catalog, customers, settings):
    """A product with its own grace (Verified Organizations) keeps access while Stripe retries."""
    t = 1767225600
    post_stripe(client, stripe_subscription_event(event_id="evt_g0", created=t, status="active"))
    kind = _sub().plan.product.kind
    settings.SUBSCRIPTION_PRODUCT_GRACE_DAYS = {kind: 14}
    post_stripe(client, stripe_subscription_event(event_id="evt_g1", created=t + 60, status="past_due"))
    sub = _sub()
    assert sub.state == Subscription.State.IN_GRACE_PERIOD
    assert sub.grace_end is not None


def test_a_stale_database_connection_is_replaced_without_losing_the_delivery(client, catalog, customers):
    """The inbox INSERT skips Django's per-request SELECT 1; a connection that died is still replaced."""
    from django.db import connection, connections

    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    other = connections.create_connection("default")
    with other.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    other.close()
    time.sleep(0.2)

    response = post_stripe(client, fixture("stripe", "customer.subscription.created"))
    assert response.status_code == 200 and response.json() == {"received": 1, "duplicates": 0}
    assert connection.connection.info.backend_pid != pid
    assert WebhookEvent.objects.get().status == "applied"


def test_applying_an_event_about_a_known_subscription_is_one_lock_and_three_writes(
    client, catalog, customers, django_assert_max_num_queries
):
    from monetization.providers.stripe.parsing import event_from_dict
    from monetization.services.webhooks import webhook_event_apply, webhook_store

    created = fixture("stripe", "customer.subscription.created")
    assert post_stripe(client, created).status_code == 200
    renewed = stripe_subscription_event(
        event_id="evt_renewed", created=created["created"] + 60, period_start=1769904000, period_end=1772323200
    )
    [(pk, _)] = webhook_store(events=[event_from_dict(renewed)])
    # BEGIN, event FOR UPDATE, subscription FOR UPDATE (customer joined), UPDATE, audit INSERT, cache invalidation
    # INSERT, event UPDATE, COMMIT; after commit the invalidation row's DELETE; the outbox: nothing more (the
    # audit row is the event; the relay publishes it afterwards)
    with django_assert_max_num_queries(9):
        event = webhook_event_apply(event_id=pk)
    assert event.status == "applied"
    sub = _sub()
    assert sub.state == Subscription.State.ACTIVE and sub.current_period_end.timestamp() == 1772323200
    assert AuditEvent.objects.filter(object_id=str(sub.pk), actor_label="stripe:evt_renewed").count() == 1
