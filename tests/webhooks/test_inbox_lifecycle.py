"""The inbox's own rules, without a worker: backoff bounds, what the sweep claims, what a failure means."""

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monetization import clock
from monetization.models import WebhookEvent
from monetization.providers.stripe.parsing import event_from_dict
from monetization.services.webhooks import retry_delay, webhook_events_due, webhook_store

from .support import stripe_subscription_event


@given(attempts=st.integers(min_value=1, max_value=10_000))
def test_retry_delay_doubles_from_the_base_and_never_passes_the_cap(attempts):
    from django.conf import settings

    base, cap = settings.WEBHOOK_RETRY_BASE_SECONDS, settings.WEBHOOK_RETRY_MAX_SECONDS
    ceiling = min(cap, base * 2 ** min(attempts - 1, 30))
    delay = retry_delay(attempts).total_seconds()
    assert ceiling / 2 <= delay <= ceiling <= cap


def _stored(n: int, prefix: str) -> list[int]:
    events = [
        event_from_dict(stripe_subscription_event(event_id=f"evt_{prefix}_{i}", created=1767225600 + i))
        for i in range(n)
    ]
    return [pk for pk, _ in webhook_store(events=events)]


@pytest.mark.django_db
def test_the_sweep_claims_due_unfinished_events_once_per_lease(settings):
    ids = _stored(4, "due")
    now = clock.now()
    WebhookEvent.objects.filter(pk=ids[0]).update(next_attempt_at=now - timedelta(seconds=1))  # received, due
    WebhookEvent.objects.filter(pk=ids[1]).update(status="retrying", next_attempt_at=now - timedelta(seconds=9))
    WebhookEvent.objects.filter(pk=ids[2]).update(status="waiting", next_attempt_at=now + timedelta(minutes=5))
    WebhookEvent.objects.filter(pk=ids[3]).update(status="failed", next_attempt_at=None)

    assert webhook_events_due(limit=10) == [ids[1], ids[0]]  # most overdue first; not due and failed left out
    leased = WebhookEvent.objects.get(pk=ids[0]).next_attempt_at
    assert leased >= now + timedelta(seconds=settings.WEBHOOK_SWEEP_LEASE_SECONDS)
    assert webhook_events_due(limit=10) == []  # their task may still run: not queued twice meanwhile


@pytest.mark.django_db
def test_a_stored_event_is_due_a_few_seconds_after_it_arrived(settings):
    (pk,) = _stored(1, "fresh")
    event = WebhookEvent.objects.get(pk=pk)
    assert event.status == "received"
    assert event.next_attempt_at == event.received_at + timedelta(seconds=settings.WEBHOOK_RECEIVED_GRACE_SECONDS)
    assert webhook_events_due(limit=10) == []
