"""Stripe Connect events over HTTP: signed deliveries to the Connect endpoint (its own secret) or the
main Stripe endpoint are stored in the inbox as ``stripe_connect`` events and applied by the creators
app's registered applier."""

import time

import pytest

from creators.models import Payout, PayoutHold, PayoutProfile
from creators.services.payouts import cycle_pay
from monetization.models import JournalEntry, WebhookEvent
from tests.creators.test_connect_events import account_updated, transfer_reversed
from tests.creators.test_payouts import approved_cycle

from .support import STRIPE_SECRET, post_stripe, stripe_body, stripe_signature

pytestmark = pytest.mark.django_db(transaction=True)

CONNECT_SECRET = "whsec_connect_test_8b1d2f4a6c8e0a2c4e6a8c0e2b4d6f8a"


@pytest.fixture(autouse=True)
def connect_secret(settings):
    settings.STRIPE_CONNECT_WEBHOOK_SECRET = CONNECT_SECRET


def post_connect(client, event: dict, *, secret: str = CONNECT_SECRET):
    event = {"created": int(time.time()), **event}
    body = stripe_body(event)
    return client.post(
        "/api/v1/webhooks/stripe-connect",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_signature(body, secret=secret),
    )


def test_account_updated_on_the_connect_endpoint_holds_then_releases_the_creators_payout(client):
    cycle = approved_cycle(2)
    blocked = Payout.objects.filter(cycle=cycle).order_by("id").first()
    response = post_connect(client, account_updated(blocked.destination, payouts_enabled=False))
    assert response.status_code == 200, response.content
    event = WebhookEvent.objects.get(event_id="evt_1QAccount")
    assert (event.provider, event.event_type, event.status) == ("stripe_connect", "account.updated", "applied")
    assert "1 payout(s) held" in event.note
    blocked.refresh_from_db()
    assert blocked.status == "held"
    assert PayoutProfile.objects.get(payout_account_id=blocked.destination).payouts_enabled is False

    released = {**account_updated(blocked.destination), "id": "evt_1QAccountOk"}
    assert post_connect(client, released).status_code == 200
    blocked.refresh_from_db()
    assert blocked.status == "approved"
    assert PayoutHold.objects.filter(payout=blocked, lifted_at__isnull=True).count() == 0


def test_a_transfer_reversed_on_the_main_stripe_endpoint_is_a_connect_event_too(client):
    cycle = approved_cycle(1)
    cycle_pay(cycle_id=cycle.pk)
    payout = Payout.objects.get(cycle=cycle)
    event = {"created": int(time.time()), **transfer_reversed(payout)}
    assert post_stripe(client, event).status_code == 200
    stored = WebhookEvent.objects.get(event_id="evt_1QReversed")
    assert (stored.provider, stored.status) == ("stripe_connect", "applied")
    payout.refresh_from_db()
    assert payout.status == "held"
    assert JournalEntry.objects.filter(key=f"payout:{payout.pk}:reversed").count() == 1
    # Stripe redelivers: acknowledged, applied once.
    assert post_stripe(client, event).json()["duplicates"] == 1
    assert JournalEntry.objects.filter(key=f"payout:{payout.pk}:reversed").count() == 1


def test_the_connect_endpoint_checks_its_own_secret(client):
    response = post_connect(client, account_updated("acct_1QNobody"), secret=STRIPE_SECRET)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_signature"
    assert not WebhookEvent.objects.exists()


def test_without_a_connect_secret_the_endpoint_is_disabled_and_stores_nothing(client, settings):
    settings.STRIPE_CONNECT_WEBHOOK_SECRET = ""
    response = post_connect(client, account_updated("acct_1QNobody"))
    assert response.status_code == 404
    assert response.json()["code"] == "provider_disabled"
    assert not WebhookEvent.objects.exists()


def test_a_connect_event_for_an_unknown_account_is_applied_with_a_note(client):
    assert post_connect(client, account_updated("acct_1QNobody")).status_code == 200
    event = WebhookEvent.objects.get(event_id="evt_1QAccount")
    assert event.status == "applied" and "no creator has account" in event.note
