"""App Store refunds: REFUND booked once per transaction (whole or prorated), REFUND_REVERSED takes it back,
REFUND_DECLINED and CONSUMPTION_REQUEST recorded (issue: Apple's refund notifications)."""

from decimal import Decimal

import pytest
from django.db.models import Sum
from djmoney.money import Money

from monetization.models import AuditEvent, ConsumptionRequest, JournalLine, Payment, Refund, WebhookEvent
from monetization.providers.base import get_provider
from monetization.services.ledger import Account, ledger_report
from monetization.services.webhooks import webhook_event_apply
from subscriptions.models import Subscription

from .support import RecordedAppStoreClient, app_store_notification, post_app_store

pytestmark = pytest.mark.django_db(transaction=True)
OTID = "2000000812345001"
T0 = 1767225605000
DAY = 86_400_000
FUTURE = {"expiresDate": 4102444800000}  # the period runs on: access follows the refund alone
REVOKED = {**FUTURE, "revocationDate": T0 + DAY, "revocationReason": 0}
S = Subscription.State


def _notify(client, pki, ntype, *, uuid, at, tx=None, subtype=None):
    body, _ = app_store_notification(
        pki, notification_type=ntype, subtype=subtype, uuid=uuid, signed_ms=at, transaction_updates=tx
    )
    response = post_app_store(client, body)
    assert response.status_code == 200, response.content


def _sub() -> Subscription:
    return Subscription.objects.get(provider="app_store", provider_subscription_id=OTID)


def _refunds_account() -> Decimal:
    return JournalLine.objects.filter(account=Account.REFUNDS).aggregate(t=Sum("amount"))["t"] or Decimal(0)


def test_prorated_refund_is_booked_once_per_transaction(client, apple_pki, catalog, customers):
    _notify(client, apple_pki, "SUBSCRIBED", subtype="INITIAL_BUY", uuid="n-1", at=T0, tx=FUTURE)
    prorated = {**REVOKED, "revocationType": "REFUND_PRORATED", "revocationPercentage": 50000}
    for uuid in ("n-r", "n-r", "n-r2"):  # a duplicate, and the same refund told again
        _notify(client, apple_pki, "REFUND", uuid=uuid, at=T0 + DAY, tx=prorated)
    payment = Payment.objects.get(provider="app_store")
    assert payment.refunded == Money("5.00", "USD") and payment.status == Payment.Status.PARTIALLY_REFUNDED
    assert Refund.objects.count() == 1 and _refunds_account() == Decimal("5.00")
    assert _sub().state == S.REVOKED  # Apple revokes what it refunds, prorated or not
    assert ledger_report().balanced


def test_refund_reversed_takes_the_refund_back_and_gives_access_back(client, apple_pki, catalog, customers):
    _notify(client, apple_pki, "SUBSCRIBED", subtype="INITIAL_BUY", uuid="n-1", at=T0, tx=FUTURE)
    _notify(client, apple_pki, "REFUND", uuid="n-r", at=T0 + DAY, tx=REVOKED)
    assert _sub().state == S.REVOKED and _refunds_account() == Decimal("9.99")
    for uuid in ("n-rr", "n-rr2"):
        _notify(client, apple_pki, "REFUND_REVERSED", uuid=uuid, at=T0 + 2 * DAY, tx=REVOKED)
    payment = Payment.objects.get(provider="app_store")
    assert payment.status == Payment.Status.SUCCEEDED and payment.refunded == Money(0, "USD")
    assert Refund.objects.get().status == Refund.Status.REVERSED
    assert _refunds_account() == Decimal("0") and ledger_report().balanced
    assert _sub().state == S.ACTIVE
    # The refund's redelivery after its reversal books nothing again.
    _notify(client, apple_pki, "REFUND", uuid="n-r3", at=T0 + DAY, tx=REVOKED)
    assert Refund.objects.count() == 1 and _refunds_account() == Decimal("0") and _sub().state == S.ACTIVE


def test_refund_reversed_before_its_refund_waits_for_it(client, apple_pki, catalog, customers):
    _notify(client, apple_pki, "SUBSCRIBED", subtype="INITIAL_BUY", uuid="n-1", at=T0, tx=FUTURE)
    _notify(client, apple_pki, "REFUND_REVERSED", uuid="n-rr", at=T0 + 2 * DAY, tx=REVOKED)
    reversal = WebhookEvent.objects.get(event_id="n-rr")
    assert reversal.status not in ("applied", "ignored") and not Refund.objects.exists()
    _notify(client, apple_pki, "REFUND", uuid="n-r", at=T0 + DAY, tx=REVOKED)
    webhook_event_apply(event_id=reversal.pk)  # its retry
    assert Refund.objects.get().status == Refund.Status.REVERSED and _refunds_account() == Decimal("0")
    assert _sub().state == S.ACTIVE


def test_refund_declined_is_recorded_and_changes_nothing(client, apple_pki, catalog, customers):
    _notify(client, apple_pki, "SUBSCRIBED", subtype="INITIAL_BUY", uuid="n-1", at=T0, tx=FUTURE)
    _notify(client, apple_pki, "REFUND_DECLINED", uuid="n-d", at=T0 + DAY, tx=FUTURE)
    assert _sub().state == S.ACTIVE and not Refund.objects.exists()
    trail = AuditEvent.objects.get(action="subscription.refund_reported")
    assert trail.after["type"] == "REFUND_DECLINED"


def test_consumption_request_is_queued_for_support_with_apples_deadline(client, apple_pki, catalog, customers):
    _notify(client, apple_pki, "SUBSCRIBED", subtype="INITIAL_BUY", uuid="n-1", at=T0, tx=FUTURE)
    _notify(client, apple_pki, "CONSUMPTION_REQUEST", uuid="n-c", at=T0 + DAY, tx=FUTURE)
    _notify(client, apple_pki, "CONSUMPTION_REQUEST", uuid="n-c", at=T0 + DAY, tx=FUTURE)
    request = ConsumptionRequest.objects.get()
    assert request.status == ConsumptionRequest.Status.QUEUED and request.payment.provider == "app_store"
    assert (request.deadline - request.received_at).total_seconds() <= 12 * 3600
    assert int(request.deadline.timestamp() * 1000) == T0 + DAY + 12 * 3600 * 1000
    assert request.customer == _sub().customer
    assert WebhookEvent.objects.get(event_id="n-c").status == "applied"


def test_consumption_request_is_answered_where_the_server_api_is_configured(
    client, apple_pki, catalog, customers, settings
):
    settings.APP_STORE_CONSUMPTION_CONSENT = True
    api = RecordedAppStoreClient({("PUT", f"/inApps/v2/transactions/consumption/{OTID}"): [{}]})
    get_provider("app_store").api_client = api
    _notify(client, apple_pki, "SUBSCRIBED", subtype="INITIAL_BUY", uuid="n-1", at=T0, tx=FUTURE)
    _notify(client, apple_pki, "CONSUMPTION_REQUEST", uuid="n-c", at=T0 + DAY, tx=FUTURE)
    request = ConsumptionRequest.objects.get()
    assert request.status == ConsumptionRequest.Status.ANSWERED and request.answer["by"] == "api"
    sent = [r for r in api.requests_made if r["method"] == "PUT"]
    assert sent and sent[0]["json"]["customerConsented"] is True and sent[0]["json"]["deliveryStatus"] == "DELIVERED"
