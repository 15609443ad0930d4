"""Why a subscription ended, from each provider's own signed words (App Store expirationIntent and EXPIRED
subtypes, Play's canceledStateContext, Stripe's cancellation_details), in one vocabulary on the subscription,
so a win-back rule for customers who left over price picks them on any platform and leaves the rest."""

import datetime as dt

import pytest

from monetization.providers.base import CancelReason
from subscriptions.models import Subscription, WinBackRule, WinBackTarget
from subscriptions.services.win_back import win_back_run

from .conftest import ANDROID_CUSTOMER, IOS_CUSTOMER, WEB_CUSTOMER
from .support import (
    PLAY_TOKEN,
    app_store_notification,
    play_push,
    play_resource,
    post_app_store,
    post_play,
    post_stripe,
    stripe_subscription_event,
)

pytestmark = pytest.mark.django_db(transaction=True)

PERIOD_END_MS = 1769904000000  # 2026-02-01, the recorded subscriptions' period end on every store


def _end_on_app_store(client, pki, play_client, *, intent: int, subtype: str):
    body, _ = app_store_notification(
        pki,
        notification_type="SUBSCRIBED",
        subtype="INITIAL_BUY",
        uuid="c0000000-0000-4000-8000-000000000001",
        signed_ms=1767225605000,
    )
    assert post_app_store(client, body).status_code == 200
    body, _ = app_store_notification(
        pki,
        notification_type="EXPIRED",
        subtype=subtype,
        uuid="c0000000-0000-4000-8000-000000000002",
        signed_ms=PERIOD_END_MS + 1000,
        renewal_updates={"autoRenewStatus": 0, "expirationIntent": intent},
    )
    assert post_app_store(client, body).status_code == 200
    return IOS_CUSTOMER


def _end_on_play(client, pki, play_client, *, context: dict, price_change: dict | None = None):
    resource = play_resource(
        "SUBSCRIPTION_STATE_EXPIRED",
        canceledStateContext=context,
        acknowledgementState="ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED",
    )
    resource["lineItems"][0]["autoRenewingPlan"]["autoRenewEnabled"] = False
    if price_change:
        resource["lineItems"][0]["autoRenewingPlan"]["priceChangeDetails"] = price_change
    play_client.resources[PLAY_TOKEN] = resource
    assert (
        post_play(client, play_push(code=13, message_id="cancel-1", event_ms=PERIOD_END_MS + 1000)).status_code == 200
    )
    return ANDROID_CUSTOMER


def _end_on_web(client, pki, play_client, *, feedback, reason="cancellation_requested"):
    event = stripe_subscription_event(
        event_id="evt_1QcancelReason000000001",
        event_type="customer.subscription.deleted",
        created=PERIOD_END_MS // 1000 + 1,
        status="canceled",
        canceled_at=PERIOD_END_MS // 1000,
    )
    event["data"]["object"]["cancellation_details"] = {"comment": None, "feedback": feedback, "reason": reason}
    event["data"]["object"]["ended_at"] = PERIOD_END_MS // 1000
    assert post_stripe(client, event).status_code == 200
    return WEB_CUSTOMER


ENDINGS = {
    # Apple: expirationIntent 3, the customer did not consent to the price increase.
    "app_store_price_increase": (
        _end_on_app_store,
        {"intent": 3, "subtype": "PRICE_INCREASE"},
        CancelReason.PRICE_INCREASE,
    ),
    "app_store_voluntary": (_end_on_app_store, {"intent": 1, "subtype": "VOLUNTARY"}, CancelReason.VOLUNTARY),
    "app_store_billing": (_end_on_app_store, {"intent": 2, "subtype": "BILLING_RETRY"}, CancelReason.BILLING_ERROR),
    # Play: the cancel survey's "cost-related reasons".
    "play_cost": (
        _end_on_play,
        {
            "context": {
                "userInitiatedCancellation": {"cancelSurveyResult": {"reason": "CANCEL_SURVEY_REASON_COST_RELATED"}}
            }
        },
        CancelReason.TOO_EXPENSIVE,
    ),
    # Play: the system ended it because the opt-in price increase was never accepted.
    "play_price_increase": (
        _end_on_play,
        {
            "context": {"systemInitiatedCancellation": {}},
            "price_change": {
                "newPrice": {"currencyCode": "USD", "units": "12"},
                "priceChangeMode": "PRICE_INCREASE",
                "priceChangeState": "OUTSTANDING",
            },
        },
        CancelReason.PRICE_INCREASE,
    ),
    "play_unused": (
        _end_on_play,
        {
            "context": {
                "userInitiatedCancellation": {"cancelSurveyResult": {"reason": "CANCEL_SURVEY_REASON_NOT_ENOUGH_USAGE"}}
            }
        },
        CancelReason.UNUSED,
    ),
    "play_billing": (_end_on_play, {"context": {"systemInitiatedCancellation": {}}}, CancelReason.BILLING_ERROR),
    # Stripe: the Billing portal's "too expensive" feedback.
    "web_too_expensive": (_end_on_web, {"feedback": "too_expensive"}, CancelReason.TOO_EXPENSIVE),
    "web_no_feedback": (_end_on_web, {"feedback": None}, CancelReason.VOLUNTARY),
    "web_payment_failed": (_end_on_web, {"feedback": None, "reason": "payment_failed"}, CancelReason.BILLING_ERROR),
}
FOR_PRICE = {CancelReason.PRICE_INCREASE, CancelReason.TOO_EXPENSIVE}


@pytest.mark.parametrize("ending", ENDINGS)
def test_a_price_rule_targets_whoever_left_over_price_on_any_store(
    client, apple_pki, play_client, catalog, customers, ending
):
    end, kwargs, expected = ENDINGS[ending]
    rule = WinBackRule.objects.create(
        key="price",
        name="Left over price",
        reason=WinBackRule.Reason.CANCELLED_FOR_PRICE,
        lapsed_days=7,
        window_days=30,
        apple_win_back_offer_id="winback-half",
        play_offer_id="winback-offer",
        stripe_coupon_id="WINBACK50",
    )
    lapsed = WinBackRule.objects.create(
        key="lapsed", name="Lapsed", reason=WinBackRule.Reason.LAPSED, lapsed_days=7, window_days=30
    )
    customer = end(client, apple_pki, play_client, **kwargs)

    sub = Subscription.objects.get(customer__external_id=customer)
    assert (sub.state, sub.cancel_reason) == (Subscription.State.EXPIRED, expected)
    win_back_run(now=sub.ended_at + dt.timedelta(days=10))
    targeted = set(WinBackTarget.objects.filter(rule=rule).values_list("customer__external_id", flat=True))
    assert targeted == ({customer} if expected in FOR_PRICE else set())
    assert WinBackTarget.objects.filter(rule=lapsed, customer__external_id=customer).exists()


def test_a_reason_staff_typed_is_kept_when_the_store_confirms_the_end(
    client, apple_pki, play_client, catalog, customers
):
    """A cancellation staff made with a reason of their own keeps it when the provider's end arrives."""
    _end_on_web(client, apple_pki, play_client, feedback=None)
    Subscription.objects.filter(customer__external_id=WEB_CUSTOMER).update(cancel_reason="Customer asked by email")
    event = stripe_subscription_event(
        event_id="evt_1QcancelReason000000002",
        event_type="customer.subscription.deleted",
        created=PERIOD_END_MS // 1000 + 2,
        status="canceled",
    )
    event["data"]["object"]["cancellation_details"] = {"comment": None, "feedback": None, "reason": "payment_failed"}
    assert post_stripe(client, event).status_code == 200
    assert Subscription.objects.get(customer__external_id=WEB_CUSTOMER).cancel_reason == "Customer asked by email"
