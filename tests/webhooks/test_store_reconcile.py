"""Reconciling with the stores: planted drifts (a missed notification, a refund made only at the store)
are found and repaired; a clean history reports none."""

import copy
import datetime as dt

import pytest
from djmoney.money import Money

from monetization.models import Payment, Refund
from monetization.providers.base import get_provider
from monetization.providers.google_play import payloads as play
from subscriptions.models import Subscription
from subscriptions.services.reconcile import provider_reconcile

from .support import (
    APP_APPLE_ID,
    BUNDLE_ID,
    PLAY_TOKEN,
    RecordedAppStoreClient,
    app_store_notification,
    play_push,
    play_resource,
    post_app_store,
    post_play,
)

pytestmark = pytest.mark.django_db(transaction=True)
SINCE = dt.datetime(2025, 12, 1, tzinfo=dt.UTC)
T0 = 1767225605000
OTID = "2000000812345001"
ORDER = "GPA.3312-5478-9012-34567"
FUTURE = {"expiresDate": 4102444800000}
ACKED = {"acknowledgementState": "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED"}


def _kinds(result) -> list[tuple[str, str]]:
    return sorted((d.kind, d.reference) for d in result.drifts)


# --- Google Play --------------------------------------------------------------------------------


def test_play_clean_history_has_no_drift(client, catalog, customers, play_client):
    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_ACTIVE")
    post_play(client, play_push(code=4, message_id="m-0", event_ms=T0))
    assert provider_reconcile(provider="google_play", since=SINCE).drifts == []


def test_play_missed_renewal_and_refund_made_only_at_play_are_found_and_repaired(
    client, catalog, customers, play_client
):
    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_ACTIVE")
    post_play(client, play_push(code=4, message_id="m-0", event_ms=T0))
    # Play renewed (its notification never came) and refunded part of the first order in its console.
    play_client.resources[PLAY_TOKEN] = play_resource(
        "SUBSCRIPTION_STATE_ACTIVE", latestSuccessfulOrderId=f"{ORDER}..0", **ACKED
    )
    refunded_at = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)
    play_client.orders[ORDER] = play.order(
        order_id=ORDER,
        token=PLAY_TOKEN,
        total_minor=999,
        currency="USD",
        created=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        partial_refunds=[(refunded_at, 300)],
    )
    play_client.voided = [
        {"orderId": ORDER, "purchaseToken": PLAY_TOKEN, "voidedTimeMillis": str(int(refunded_at.timestamp() * 1000))}
    ]
    found = provider_reconcile(provider="google_play", since=SINCE, repair=False)
    assert _kinds(found) == [("missing_payment", f"{ORDER}..0"), ("missing_refund", ORDER)]
    repaired = provider_reconcile(provider="google_play", since=SINCE)
    assert repaired.repaired == 2 and repaired.repair_failed == 0
    assert Payment.objects.get(provider_reference=f"{ORDER}..0").kind == "renewal"
    assert Refund.objects.get().amount == Money("3.00", "USD")
    assert Subscription.objects.get().state == Subscription.State.ACTIVE  # a partial refund keeps access
    assert provider_reconcile(provider="google_play", since=SINCE, repair=False).drifts == []


# --- App Store ----------------------------------------------------------------------------------


def _apple_api(pki, transactions: list[dict], latest: dict, renewal: dict) -> RecordedAppStoreClient:
    return RecordedAppStoreClient(
        {
            ("GET", f"/inApps/v2/history/{OTID}"): [
                {
                    "signedTransactions": [pki.sign(tx) for tx in transactions],
                    "hasMore": False,
                    "revision": "rev-1",
                    "bundleId": BUNDLE_ID,
                    "environment": "Production",
                }
            ],
            ("GET", f"/inApps/v1/subscriptions/{OTID}"): [
                {
                    "environment": "Production",
                    "bundleId": BUNDLE_ID,
                    "appAppleId": APP_APPLE_ID,
                    "data": [
                        {
                            "subscriptionGroupIdentifier": "21345678",
                            "lastTransactions": [
                                {
                                    "originalTransactionId": OTID,
                                    "status": 1,
                                    "signedTransactionInfo": pki.sign(latest),
                                    "signedRenewalInfo": pki.sign(renewal),
                                }
                            ],
                        }
                    ],
                }
            ],
        }
    )


def _subscribed(client, pki) -> tuple[dict, dict]:
    body, parts = app_store_notification(
        pki, notification_type="SUBSCRIBED", subtype="INITIAL_BUY", uuid="n-1", signed_ms=T0, transaction_updates=FUTURE
    )
    assert post_app_store(client, body).status_code == 200
    return parts["transaction"], parts["renewal"]


def test_app_store_clean_history_has_no_drift(client, apple_pki, catalog, customers):
    first, renewal = _subscribed(client, apple_pki)
    get_provider("app_store").api_client = _apple_api(apple_pki, [first], first, renewal)
    assert provider_reconcile(provider="app_store", since=SINCE).drifts == []


def test_app_store_missed_renewal_and_refund_only_at_apple_are_found_and_repaired(
    client, apple_pki, catalog, customers
):
    first, renewal = _subscribed(client, apple_pki)
    renewed = {**copy.deepcopy(first), "transactionId": "2000000812345002", "purchaseDate": 1769904000000}
    renewed["transactionReason"] = "RENEWAL"
    refunded = {**first, "revocationDate": T0 + 86_400_000, "revocationReason": 0, "revocationType": "REFUND_FULL"}
    get_provider("app_store").api_client = _apple_api(apple_pki, [refunded, renewed], renewed, renewal)
    found = provider_reconcile(provider="app_store", since=SINCE, repair=False)
    assert _kinds(found) == [("missing_payment", "2000000812345002"), ("missing_refund", OTID)]
    repaired = provider_reconcile(provider="app_store", since=SINCE)
    assert repaired.repaired == 2 and repaired.repair_failed == 0
    assert Payment.objects.get(provider_reference="2000000812345002").kind == "renewal"
    assert Payment.objects.get(provider_reference=OTID).refunded == Money("9.99", "USD")
    assert Subscription.objects.get().state == Subscription.State.ACTIVE  # Apple says the renewal runs
    get_provider("app_store").api_client = _apple_api(apple_pki, [refunded, renewed], renewed, renewal)
    assert provider_reconcile(provider="app_store", since=SINCE, repair=False).drifts == []
