"""Webhooks applied by a real Celery worker process on Redis (no eager mode)."""

from datetime import timedelta

import pytest
from django.db.models import F

from monetization.models import Payment, WebhookEvent
from subscriptions.models import Subscription
from tests.celery_worker import wait_for

from .support import fixture, post_stripe, stripe_subscription_event

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def _status(event_id: str) -> str | None:
    return WebhookEvent.objects.filter(event_id=event_id).values_list("status", flat=True).first()


def test_signed_webhook_is_applied_by_the_worker_and_entitlements_follow(
    celery_worker_process, client, catalog, customers, client_with_scopes
):
    api = client_with_scopes("entitlements:read")
    url = f"/api/v1/customers/{customers['web'].external_id}/entitlements"
    assert api.get(url).json()["entitlements"] == []  # cached empty

    created = fixture("stripe", "customer.subscription.created")
    assert post_stripe(client, created).status_code == 200
    wait_for(lambda: _status(created["id"]) == "applied")
    keys = sorted(e["key"] for e in api.get(url).json()["entitlements"])
    assert keys == ["edit_post", "verified_badge"]  # the worker's commit invalidated the cache

    deleted = stripe_subscription_event(
        event_id="evt_deleted",
        created=created["created"] + 60,
        status="canceled",
        event_type="customer.subscription.deleted",
    )
    post_stripe(client, deleted)
    wait_for(lambda: _status("evt_deleted") == "applied")
    assert Subscription.objects.get().state == Subscription.State.EXPIRED
    assert api.get(url).json()["entitlements"] == []


def test_event_waiting_for_its_subscription_is_applied_when_the_subscription_arrives(
    celery_worker_process, client, catalog, customers
):
    paid = fixture("stripe", "invoice.paid")
    post_stripe(client, paid)
    wait_for(lambda: _status(paid["id"]) == "waiting")  # first attempt: subscription unknown
    post_stripe(client, fixture("stripe", "customer.subscription.created"))
    wait_for(lambda: _status(paid["id"]) == "applied", timeout=30)
    event = WebhookEvent.objects.get(event_id=paid["id"])
    assert event.attempts >= 2 and event.last_error == ""
    assert Payment.objects.filter(provider_reference="in_1QwebInvoice00000000001").count() == 1


@pytest.mark.worker_env(WEBHOOK_APPLY_MAX_RETRIES="2", WEBHOOK_RETRY_BASE_SECONDS="0.5")
def test_event_that_keeps_failing_is_retried_by_the_sweep_then_failed(
    celery_worker_process, client, catalog, customers
):
    paid = fixture("stripe", "invoice.paid")
    post_stripe(client, paid)
    wait_for(lambda: _status(paid["id"]) == "waiting")
    # Its subject never comes; past the waiting budget a retryable error counts against the attempts.
    WebhookEvent.objects.filter(event_id=paid["id"]).update(received_at=F("received_at") - timedelta(days=30))
    # WEBHOOK_APPLY_MAX_RETRIES=2: 1 try + 2 retries (queued by the sweep), then failed for staff to replay.
    wait_for(lambda: _status(paid["id"]) == "failed", timeout=60)
    event = WebhookEvent.objects.get(event_id=paid["id"])
    assert event.attempts == 3 and "not known yet" in event.last_error and event.next_attempt_at is None


WORKER_APP_NAME = "pytest-celery-worker"


def _worker_connections() -> set[tuple[int, object]]:
    """(pid, backend start) of the worker's sessions (libpq names them after PGAPPNAME)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, backend_start FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            [WORKER_APP_NAME],
        )
        return set(cursor.fetchall())


@pytest.mark.worker_env(DB_CONN_MAX_AGE="60", PGAPPNAME=WORKER_APP_NAME)
def test_the_worker_keeps_its_database_connection_and_replaces_a_broken_one(
    celery_worker_process, client, catalog, customers
):
    from django.db import connection

    created = fixture("stripe", "customer.subscription.created")
    post_stripe(client, created)
    wait_for(lambda: _status(created["id"]) == "applied")
    first = wait_for(_worker_connections)
    for i, status in enumerate(["past_due", "active"], start=1):
        event = stripe_subscription_event(event_id=f"evt_keep_{i}", created=created["created"] + i, status=status)
        post_stripe(client, event)
        wait_for(lambda event=event: _status(event["id"]) == "applied")
    assert _worker_connections() == first  # the same sessions: no reconnect per task

    with connection.cursor() as cursor:  # the database drops the worker's connection (restart, idle timeout)
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = ANY(%s)", [[p for p, _ in first]]
        )
    deleted = stripe_subscription_event(
        event_id="evt_after_drop",
        created=created["created"] + 60,
        status="canceled",
        event_type="customer.subscription.deleted",
    )
    post_stripe(client, deleted)
    wait_for(lambda: _status("evt_after_drop") == "applied")
    assert Subscription.objects.get().state == Subscription.State.EXPIRED
    assert not (_worker_connections() & first)
