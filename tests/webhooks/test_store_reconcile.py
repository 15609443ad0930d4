"""Reconciling with the stores: planted drifts (a missed notification, a refund made only at the store, a Play
chargeback, a subscription whose every notification was missed) are found and repaired, through
``reconcile_provider`` as an operator runs it; a clean history reports none."""

import copy
import datetime as dt
import io
import json

import pytest
from django.core.management import CommandError, call_command
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


def _run(provider: str, *extra) -> str:
    out = io.StringIO()
    call_command("reconcile_provider", "--provider", provider, "--since", "2025-12-01", *extra, stdout=out)
    return out.getvalue()


# --- Google Play --------------------------------------------------------------------------------


def test_play_clean_history_has_no_drift(client, catalog, customers, play_client):
    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_ACTIVE")
    post_play(client, play_push(code=4, message_id="m-0", event_ms=T0))
    out = _run("google_play")
    assert "google_play: 0 drift(s)" in out and "no drift left" in out


def test_play_chargeback_only_at_play_is_found_and_access_revoked(client, catalog, customers, play_client):
    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_ACTIVE")
    post_play(client, play_push(code=4, message_id="m-0", event_ms=T0))
    # The customer's bank took the money back: Play voided the order (reason chargeback) and ended the
    # subscription; neither notification came.
    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_EXPIRED", autoRenewEnabled=False)
    charged_back_at = dt.datetime(2026, 1, 12, tzinfo=dt.UTC)
    play_client.orders[ORDER] = play.order(
        order_id=ORDER,
        token=PLAY_TOKEN,
        total_minor=999,
        currency="USD",
        created=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        refunded_at=charged_back_at,
    )
    play_client.voided = [
        {
            "orderId": ORDER,
            "purchaseToken": PLAY_TOKEN,
            "voidedTimeMillis": str(int(charged_back_at.timestamp() * 1000)),
            "voidedSource": 2,
            "voidedReason": 7,
        }
    ]
    out = _run("google_play")
    assert f"missing_refund {ORDER}" in out and "1 repaired" in out
    assert Payment.objects.get(provider_reference=ORDER).refunded == Money("9.99", "USD")
    assert Subscription.objects.get().state == Subscription.State.REVOKED  # Play's rule: a full refund ends access
    assert "google_play: 0 drift(s)" in _run("google_play")


def test_play_missed_cancellation_is_found_and_the_subscription_converged(client, catalog, customers, play_client):
    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_ACTIVE")
    post_play(client, play_push(code=4, message_id="m-0", event_ms=T0))
    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_CANCELED", autoRenewEnabled=False)
    out = _run("google_play")
    assert f"state_mismatch {PLAY_TOKEN[:64]}" in out and "1 repaired" in out
    sub = Subscription.objects.get()
    assert sub.state == Subscription.State.CANCELED and sub.auto_renew is False


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


def _apple_api(
    pki, transactions: list[dict], latest: dict, renewal: dict, notifications: list[bytes] = ()
) -> RecordedAppStoreClient:
    """Apple's Server API answering from its books: the subscription's transactions and status, and the
    notifications Apple sent (``notifications``: signed bodies as posted)."""
    history = [{"signedPayload": json.loads(body)["signedPayload"]} for body in notifications]
    return RecordedAppStoreClient(
        {
            ("POST", "/inApps/v1/notifications/history"): [{"notificationHistory": history, "hasMore": False}],
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


def _subscription_bought(pki) -> tuple[bytes, dict, dict]:
    body, parts = app_store_notification(
        pki, notification_type="SUBSCRIBED", subtype="INITIAL_BUY", uuid="n-1", signed_ms=T0, transaction_updates=FUTURE
    )
    return body, parts["transaction"], parts["renewal"]


def _subscribed(client, pki) -> tuple[dict, dict]:
    body, first, renewal = _subscription_bought(pki)
    assert post_app_store(client, body).status_code == 200
    return first, renewal


def test_app_store_clean_history_has_no_drift(client, apple_pki, catalog, customers):
    body, first, renewal = _subscription_bought(apple_pki)
    assert post_app_store(client, body).status_code == 200
    get_provider("app_store").api_client = _apple_api(apple_pki, [first], first, renewal, [body])
    out = _run("app_store")
    assert "app_store: 0 drift(s)" in out and "no drift left" in out


def test_app_store_subscription_whose_every_notification_was_missed_is_found_and_repaired(
    client, apple_pki, catalog, customers
):
    body, first, renewal = _subscription_bought(apple_pki)  # Apple sold it; its notification never reached us
    get_provider("app_store").api_client = _apple_api(apple_pki, [first], first, renewal, [body])
    with pytest.raises(CommandError, match="1 drift"):
        _run("app_store", "--no-repair")
    assert not Subscription.objects.exists()

    out = _run("app_store")
    assert f"missing_subscription {OTID}" in out and "1 repaired" in out
    sub = Subscription.objects.get(provider_subscription_id=OTID)
    assert sub.state == Subscription.State.ACTIVE
    assert Payment.objects.get(provider_reference=OTID).amount == Money("9.99", "USD")
    get_provider("app_store").api_client = _apple_api(apple_pki, [first], first, renewal, [body])
    assert "app_store: 0 drift(s)" in _run("app_store")  # repaired for good


def test_app_store_missed_expiry_is_found_and_the_subscription_converged(client, apple_pki, catalog, customers):
    first, renewal = _subscribed(client, apple_pki)
    # Apple let it lapse (auto-renew off, the period over); DID_CHANGE_RENEWAL_STATUS and EXPIRED never came.
    lapsed = {**first, "expiresDate": T0 + 30 * 86_400_000}
    stopped = {**renewal, "autoRenewStatus": 0, "expirationIntent": 1}
    get_provider("app_store").api_client = _apple_api(apple_pki, [first], lapsed, stopped)
    out = _run("app_store")
    assert f"state_mismatch {OTID}" in out and "1 repaired" in out
    assert Subscription.objects.get().state == Subscription.State.EXPIRED


def test_app_store_amount_difference_is_left_for_a_person(client, apple_pki, catalog, customers):
    first, renewal = _subscribed(client, apple_pki)
    charged = {**first, "price": 12990}  # Apple's book says 12.99 where we booked 9.99
    get_provider("app_store").api_client = _apple_api(apple_pki, [charged], first, renewal)
    with pytest.raises(CommandError, match="1 drift"):
        _run("app_store")
    assert Payment.objects.get().amount == Money("9.99", "USD")


def test_app_store_missed_renewal_and_refund_only_at_apple_are_found_and_repaired(
    client, apple_pki, catalog, customers
):
    first, renewal = _subscribed(client, apple_pki)
    renewed = {**copy.deepcopy(first), "transactionId": "2000000812345002", "purchaseDate": 1769904000000}
    renewed["transactionReason"] = "RENEWAL"
    refunded = {**first, "revocationDate": T0 + 86_400_000, "revocationReason": 0, "revocationType": "REFUND_FULL"}
    get_provider("app_store").api_client = _apple_api(apple_pki, [refunded, renewed], renewed, renewal)
    with pytest.raises(CommandError, match="2 drift"):
        _run("app_store", "--no-repair")
    out = _run("app_store")
    assert "missing_payment 2000000812345002" in out and f"missing_refund {OTID}" in out and "2 repaired" in out
    assert Payment.objects.get(provider_reference="2000000812345002").kind == "renewal"
    assert Payment.objects.get(provider_reference=OTID).refunded == Money("9.99", "USD")
    assert Subscription.objects.get().state == Subscription.State.ACTIVE  # Apple says the renewal runs
    get_provider("app_store").api_client = _apple_api(apple_pki, [refunded, renewed], renewed, renewal)
    assert provider_reconcile(provider="app_store", since=SINCE, repair=False).drifts == []
