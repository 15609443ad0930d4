"""The delivery harness itself: one Stripe history, in order and shuffled, over HTTP to a real worker."""

import random

import pytest

from tests.monetization.factories import CustomerFactory
from tests.webhooks.support import stripe_body, stripe_invoice_event, stripe_signature, stripe_subscription_event

from .harness import Delivery, customer_books, deliver_in_order, deliver_shuffled, failed_events, settle, strip

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

MONTH = 2_678_400


def _history(ns: str) -> list[Delivery]:
    """A month of a web subscription: created, paid, renewed after a failed charge, then set to cancel."""
    t, next_period = 1767225600, {"period_start": 1769904000, "period_end": 1772323200}
    sub = {"sub_id": f"sub_{ns}", "external_id": f"cust{ns}", "customer": f"cus_{ns}"}
    invoice = {"sub_id": f"sub_{ns}", "customer": f"cus_{ns}"}
    steps = [
        stripe_subscription_event(
            event_id=f"evt_{ns}_1", created=t, status="incomplete", event_type="customer.subscription.created", **sub
        ),
        stripe_subscription_event(event_id=f"evt_{ns}_2", created=t + 10, **sub),
        stripe_invoice_event(
            event_id=f"evt_{ns}_3",
            created=t + 11,
            invoice_id=f"in_{ns}_1",
            billing_reason="subscription_create",
            **invoice,
        ),
        stripe_subscription_event(event_id=f"evt_{ns}_4", created=t + MONTH, status="past_due", **sub),
        stripe_subscription_event(event_id=f"evt_{ns}_5", created=t + MONTH + 100, **next_period, **sub),
        stripe_invoice_event(event_id=f"evt_{ns}_6", created=t + MONTH + 101, invoice_id=f"in_{ns}_2", **invoice),
        stripe_subscription_event(
            event_id=f"evt_{ns}_7", created=t + MONTH + 500, cancel_at_period_end=True, **next_period, **sub
        ),
    ]
    deliveries = []
    for seq, event in enumerate(steps):
        body = stripe_body(event)
        deliveries.append(
            Delivery(
                history=ns,
                seq=seq,
                path="/api/v1/webhooks/stripe",
                body=body,
                headers={"Content-Type": "application/json", "Stripe-Signature": stripe_signature(body)},
            )
        )
    return deliveries


def test_a_history_delivered_shuffled_and_repeated_ends_where_in_order_delivery_ends(
    celery_worker_process, live_server, catalog
):
    for ns in ("ordered", "shuffled"):
        CustomerFactory(external_id=f"cust{ns}")
    deliver_in_order(live_server.url, _history("ordered"))
    report = deliver_shuffled(live_server.url, _history("shuffled"), rng=random.Random(7), repeat=0.5, waves=3)
    assert report.duplicates >= 3 and report.all_accepted
    settle(timeout=120)
    assert failed_events() == []
    ordered, shuffled = customer_books("custordered"), customer_books("custshuffled")
    assert ordered["subscriptions"] and len(ordered["payments"]) == 2
    assert strip(ordered, "ordered") == strip(shuffled, "shuffled")
