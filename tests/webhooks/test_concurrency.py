"""Two workers applying events about one new subscription at the same time create it once."""

import threading

import pytest
from django.db import connection

from monetization.models import WebhookEvent
from monetization.providers.stripe.parsing import event_from_dict
from monetization.services.webhooks import webhook_event_apply, webhook_store
from subscriptions.models import Subscription
from tests.concurrency import run_at_once

from .support import stripe_subscription_event

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_events_for_a_new_subscription_converge(catalog, customers):
    for round_ in range(5):
        sub_id = f"sub_race_{round_}"
        events = [
            event_from_dict(
                stripe_subscription_event(
                    event_id=f"evt_race_{round_}_{i}", created=1767225600 + i, sub_id=sub_id, status=status
                )
            )
            for i, status in enumerate(["active", "past_due"])
        ]
        ids = [pk for pk, _ in webhook_store(events=events)]
        assert run_at_once(lambda pk: webhook_event_apply(event_id=pk), [(pk,) for pk in ids]) == []
        assert Subscription.objects.filter(provider_subscription_id=sub_id).count() == 1
        assert Subscription.objects.get(provider_subscription_id=sub_id).state == Subscription.State.ON_HOLD
        assert set(WebhookEvent.objects.filter(id__in=ids).values_list("status", flat=True)) == {"applied"}


def test_the_same_event_applied_twice_at_once_applies_once(catalog, customers):
    event = event_from_dict(stripe_subscription_event(event_id="evt_twice", created=1767225600, sub_id="sub_twice"))
    [(pk, _)] = webhook_store(events=[event])
    barrier = threading.Barrier(2)

    def work():
        barrier.wait()
        webhook_event_apply(event_id=pk)
        connection.close()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert WebhookEvent.objects.get(pk=pk).attempts == 1
