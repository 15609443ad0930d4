"""Refunds made at the stores: Play voided purchases and App Store REFUND / REFUND_REVERSED, booked once."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db.models import Sum
from djmoney.money import Money

from monetization.models import JournalLine, Payment, Refund, WebhookEvent
from monetization.providers.google_play import payloads as play
from monetization.services.ledger import Account, ledger_report
from monetization.services.refunds import refund_request
from subscriptions.models import Subscription
from tests.monetization.support_fixtures import make_staff  # noqa: F401  (fixture)

from .support import PLAY_TOKEN, play_push, play_resource, play_voided_push, post_play

pytestmark = pytest.mark.django_db(transaction=True)
T0 = 1767225605123
ORDER = "GPA.3312-5478-9012-34567"
S = Subscription.State


def _order(**kwargs) -> dict:
    created = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return play.order(order_id=ORDER, token=PLAY_TOKEN, total_minor=999, currency="USD", created=created, **kwargs)


def _sub() -> Subscription:
    return Subscription.objects.get(provider="google_play", provider_subscription_id=PLAY_TOKEN)


def _ledger(account: str) -> Decimal:
    return JournalLine.objects.filter(account=account).aggregate(t=Sum("amount"))["t"] or Decimal(0)


def _purchase(client, play_client):
    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_ACTIVE")
    assert post_play(client, play_push(code=4, message_id="m-0", event_ms=T0)).status_code == 200
    assert _sub().state == S.ACTIVE


def test_play_full_refund_is_booked_once_and_ends_access(client, catalog, customers, play_client):
    _purchase(client, play_client)
    play_client.orders[ORDER] = _order(refunded_at=dt.datetime(2026, 1, 5, tzinfo=dt.UTC))
    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_EXPIRED")
    for message_id in ("v-1", "v-1", "v-2"):  # a duplicate push, and Play notifying again
        body = play_voided_push(message_id=message_id, event_ms=T0 + 1000, order_id=ORDER)
        assert post_play(client, body).status_code == 200
    payment = Payment.objects.get(provider="google_play")
    assert payment.status == Payment.Status.REFUNDED and payment.refunded == Money("9.99", "USD")
    refund = Refund.objects.get()
    assert refund.status == Refund.Status.SUCCEEDED and refund.amount == Money("9.99", "USD")
    assert _ledger(Account.REFUNDS) == Decimal("9.99") and _ledger(Account.cash("google_play")) == Decimal("0")
    assert ledger_report().balanced
    assert _sub().state == S.REVOKED
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"applied"}


def test_play_partial_refunds_are_booked_each_once_and_keep_access(client, catalog, customers, play_client):
    _purchase(client, play_client)
    first = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    play_client.orders[ORDER] = _order(partial_refunds=[(first, 300)])
    post_play(client, play_voided_push(message_id="v-1", event_ms=T0 + 1000, order_id=ORDER, refund_type=2))
    post_play(client, play_voided_push(message_id="v-1b", event_ms=T0 + 1001, order_id=ORDER, refund_type=2))
    payment = Payment.objects.get(provider="google_play")
    assert payment.status == Payment.Status.PARTIALLY_REFUNDED and payment.refunded == Money("3.00", "USD")
    assert _sub().state == S.ACTIVE  # a partial refund keeps access
    play_client.orders[ORDER] = _order(partial_refunds=[(first, 300), (first + dt.timedelta(days=1), 200)])
    post_play(client, play_voided_push(message_id="v-2", event_ms=T0 + 2000, order_id=ORDER, refund_type=2))
    payment.refresh_from_db()
    assert payment.refunded == Money("5.00", "USD")
    assert sorted(Refund.objects.values_list("amount", flat=True)) == [Decimal("2.00"), Decimal("3.00")]
    assert _ledger(Account.REFUNDS) == Decimal("5.00") and ledger_report().balanced
    assert _sub().state == S.ACTIVE


def test_play_echo_of_our_own_refund_keeps_the_staff_access_choice(client, catalog, customers, play_client, make_staff):
    _purchase(client, play_client)
    payment = Payment.objects.get(provider="google_play")
    refund = refund_request(
        payment=payment,
        amount=payment.amount,
        reason_code=Refund.Reason.GOODWILL,
        requested_by=make_staff(superuser=True),
        revoke_access=Refund.RevokeAccess.NONE,
    )
    assert refund.status == Refund.Status.SUCCEEDED
    assert ("refund_order", {"order_id": ORDER}) in play_client.calls
    play_client.orders[ORDER] = _order(refunded_at=dt.datetime(2026, 1, 5, tzinfo=dt.UTC))
    post_play(client, play_voided_push(message_id="v-1", event_ms=T0 + 1000, order_id=ORDER))
    assert Refund.objects.count() == 1 and _ledger(Account.REFUNDS) == Decimal("9.99")
    assert _sub().state == S.ACTIVE  # the staff kept access; Play's echo does not override it


def test_play_voided_purchase_before_its_payment_waits_for_it(client, catalog, customers, play_client):
    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_ACTIVE")
    play_client.orders[ORDER] = _order(refunded_at=dt.datetime(2026, 1, 5, tzinfo=dt.UTC))
    # The purchase's notification was a RESYNC-less re-read that recorded no payment: the refund waits.
    post_play(client, play_voided_push(message_id="v-1", event_ms=T0 + 1000, order_id=ORDER))
    assert WebhookEvent.objects.get().status != "ignored" and not Refund.objects.exists()
    post_play(client, play_push(code=4, message_id="m-0", event_ms=T0))
    event = WebhookEvent.objects.get(event_id="v-1")
    from monetization.services.webhooks import webhook_event_apply

    webhook_event_apply(event_id=event.pk)  # its retry
    assert Refund.objects.get().amount == Money("9.99", "USD")
    assert _sub().state == S.REVOKED
