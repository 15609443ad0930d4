"""Adapter writes go through the real SDKs (recorded HTTP) and carry idempotency keys."""

from datetime import UTC, datetime
from urllib.parse import unquote

import pytest
from djmoney.money import Money

from monetization import clock
from monetization.providers.base import ProviderError, get_provider

from .support import PLAY_TOKEN, RecordedAppStoreClient, fixture, play_resource

SUB = "sub_1QwebPremium0000000001"


def _sub_obj(**updates):
    obj = fixture("stripe", "customer.subscription.created")["data"]["object"]
    obj.update(updates)
    return obj


def test_stripe_refund_of_an_invoice_refunds_its_payment_intent_with_the_idempotency_key(stripe_http):
    stripe_http.responses[("get", "/v1/invoice_payments")] = fixture("stripe", "invoice_payments.list")
    stripe_http.responses[("post", "/v1/refunds")] = {
        "id": "re_3Qrefund0001",
        "object": "refund",
        "amount": 300,
        "currency": "usd",
        "status": "succeeded",
        "payment_intent": "pi_3QwebIntent000000000001",
    }
    result = get_provider("stripe").refund(
        payment_reference="in_1QwebInvoice00000000001",
        amount=Money("3.00", "USD"),
        idempotency_key="refund-42",
        reason="duplicate charge",
    )
    assert result.provider_refund_id == "re_3Qrefund0001" and result.amount == Money("3.00", "USD")
    post = stripe_http.requests[-1]
    assert post["headers"]["Idempotency-Key"] == "refund-42"
    assert "amount=300" in post["body"] and "payment_intent=pi_3QwebIntent000000000001" in post["body"]


def test_stripe_cancel_at_period_end_and_extend(stripe_http):
    stripe_http.responses[("post", f"/v1/subscriptions/{SUB}")] = [
        _sub_obj(cancel_at_period_end=True),
        _sub_obj(status="trialing", trial_end=1770508800),
    ]
    stripe_http.responses[("get", f"/v1/subscriptions/{SUB}")] = _sub_obj()
    provider = get_provider("stripe")
    provider.cancel_subscription(SUB, at_period_end=True, idempotency_key="cancel-1")
    assert stripe_http.requests[-1]["headers"]["Idempotency-Key"] == "cancel-1"
    assert "cancel_at_period_end=true" in stripe_http.requests[-1]["body"]
    with clock.frozen(datetime(2026, 1, 10, tzinfo=UTC)):  # mid-period: the extension starts at the period end
        snapshot = provider.extend_subscription(SUB, days=7, reason="outage", idempotency_key="extend-1")
    request = stripe_http.requests[-1]
    assert request["headers"]["Idempotency-Key"] == "extend-1"
    assert f"trial_end={1769904000 + 7 * 86400}" in request["body"] and "proration_behavior=none" in request["body"]
    assert snapshot.trial_end is not None


def test_stripe_not_found_is_a_provider_error(stripe_http):
    with pytest.raises(ProviderError) as exc:
        get_provider("stripe").fetch_subscription("sub_missing")
    assert exc.value.code == "not_found" and not exc.value.retryable


def test_app_store_extension_uses_the_renewal_date_api(apple_pki):
    tx = fixture("app_store", "subscribed")["transaction"]
    renewal = fixture("app_store", "subscribed")["renewal"]
    status = {
        "environment": "Production",
        "bundleId": "com.example.backoffice",
        "appAppleId": 1234567890,
        "data": [
            {
                "subscriptionGroupIdentifier": "21345678",
                "lastTransactions": [
                    {
                        "originalTransactionId": tx["originalTransactionId"],
                        "status": 1,
                        "signedTransactionInfo": apple_pki.sign({**tx, "expiresDate": 1770508800000}),
                        "signedRenewalInfo": apple_pki.sign(renewal),
                    }
                ],
            }
        ],
    }
    api = RecordedAppStoreClient(
        {
            ("PUT", f"/inApps/v1/subscriptions/extend/{tx['originalTransactionId']}"): [
                {"originalTransactionId": tx["originalTransactionId"], "success": True, "effectiveDate": 1770508800000}
            ],
            ("GET", f"/inApps/v1/subscriptions/{tx['originalTransactionId']}"): [status],
        }
    )
    provider = get_provider("app_store")
    provider.api_client = api
    snapshot = provider.extend_subscription(
        tx["originalTransactionId"], days=7, reason="outage", idempotency_key="6f1c2a4e-0000-4000-8000-000000000007"
    )
    assert snapshot.current_period_end.timestamp() == 1770508800
    body = api.requests_made[0]["json"]
    assert body["extendByDays"] == 7 and body["requestIdentifier"] == "6f1c2a4e-0000-4000-8000-000000000007"
    with pytest.raises(ProviderError):
        provider.extend_subscription(tx["originalTransactionId"], days=91, reason="x", idempotency_key="k")


def test_play_defer_cancel_revoke_refund(play_client):
    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_ACTIVE")
    provider = get_provider("google_play")
    provider.extend_subscription(PLAY_TOKEN, days=3, reason="outage", idempotency_key="k")
    defer = next(c for c in play_client.calls if c[0] == "defer")[1]["body"]["deferralContext"]
    assert defer == {"deferDuration": "259200s", "etag": "CMPKu8aW0pEDEAE="}
    provider.cancel_subscription(PLAY_TOKEN, at_period_end=True, idempotency_key="k")
    provider.cancel_subscription(PLAY_TOKEN, at_period_end=False, idempotency_key="k")
    provider.refund(
        payment_reference="GPA.3312-5478-9012-34567", amount=Money("9.99", "USD"), idempotency_key="k", reason="r"
    )
    names = [c[0] for c in play_client.calls]
    assert {"cancel", "revoke", "refund_order"} <= set(names)


def test_stripe_pause_and_resume_collection_with_idempotency_keys(stripe_http):
    stripe_http.responses[("post", f"/v1/subscriptions/{SUB}")] = [
        _sub_obj(pause_collection={"behavior": "void"}),
        _sub_obj(pause_collection=None),
    ]
    provider = get_provider("stripe")
    provider.pause_subscription(SUB, idempotency_key="pause-1")
    paused = stripe_http.requests[-1]
    assert paused["headers"]["Idempotency-Key"] == "pause-1"
    assert "pause_collection[behavior]=void" in paused["body"].replace("%5B", "[").replace("%5D", "]")
    provider.resume_subscription(SUB, idempotency_key="resume-1")
    resumed = stripe_http.requests[-1]
    assert resumed["headers"]["Idempotency-Key"] == "resume-1" and "pause_collection=" in resumed["body"]


@pytest.mark.parametrize("name", ["app_store", "google_play"])
def test_store_subscriptions_cannot_be_paused_by_us(name, apple_pki):
    from monetization.providers.base import UnsupportedOperation

    with pytest.raises(UnsupportedOperation):
        get_provider(name).pause_subscription("x", idempotency_key="k")


def test_stripe_connect_transfers_through_the_configured_stripe_client_with_the_payout_key(settings):
    from monetization.providers.base import PayoutError
    from monetization.providers.stripe import StripeConnectPayouts

    from .support import RecordedStripeHTTPClient

    http = RecordedStripeHTTPClient(
        {
            ("post", "/v1/transfers"): {
                "id": "tr_1Qconnect0001",
                "object": "transfer",
                "amount": 1250,
                "currency": "usd",
                "destination": "acct_1Qcreator0001",
            }
        }
    )
    payouts = StripeConnectPayouts(http_client=http)
    result = payouts.transfer(
        destination="acct_1Qcreator0001", amount=Money("12.50", "USD"), idempotency_key="payout:7"
    )
    assert (result.transfer_id, result.amount, result.destination) == (
        "tr_1Qconnect0001",
        Money("12.50", "USD"),
        "acct_1Qcreator0001",
    )
    post = http.requests[-1]
    # The same key as every other Stripe call (settings never define another one), and the payout's own key.
    assert post["headers"]["Authorization"] == f"Bearer {settings.STRIPE_API_KEY}"
    assert post["headers"]["Idempotency-Key"] == "payout:7"
    assert post["headers"]["Stripe-Version"] == settings.STRIPE_API_VERSION
    assert "amount=1250" in post["body"] and "destination=acct_1Qcreator0001" in post["body"]

    http.responses.clear()  # Stripe refuses: the paying run marks the payout failed
    with pytest.raises(PayoutError):
        payouts.transfer(destination="acct_1Qcreator0001", amount=Money("1.00", "USD"), idempotency_key="payout:8")
    settings.STRIPE_API_KEY = ""
    with pytest.raises(PayoutError, match="STRIPE_API_KEY"):
        StripeConnectPayouts(http_client=http).transfer(
            destination="acct_1Qcreator0001", amount=Money("1.00", "USD"), idempotency_key="payout:9"
        )


def test_creator_payouts_default_to_stripe_connect_whatever_debug_says():
    import os

    import backoffice.settings as project_settings

    if "CREATOR_PAYOUT_PROVIDER" in os.environ:
        pytest.skip("CREATOR_PAYOUT_PROVIDER is set in this environment")
    assert project_settings.DEBUG  # the tests run with DEBUG on: the default must not follow it
    assert project_settings.CREATOR_PAYOUT_PROVIDER == "monetization.providers.stripe.StripeConnectPayouts"


def test_stripe_plan_switch_moves_the_one_item_with_prorations(stripe_http):
    current = _sub_obj()
    switched = _sub_obj()
    switched["items"]["data"][0]["price"] = {
        **switched["items"]["data"][0]["price"],
        "id": "price_1QpremiumYearlyUSD0001",
    }
    stripe_http.responses[("get", f"/v1/subscriptions/{SUB}")] = current
    stripe_http.responses[("post", f"/v1/subscriptions/{SUB}")] = switched
    snapshot = get_provider("stripe").change_subscription_plan(
        SUB, store_product_id="price_1QpremiumYearlyUSD0001", idempotency_key="switch-1"
    )
    request = stripe_http.requests[-1]
    assert request["headers"]["Idempotency-Key"] == "switch-1"
    body = unquote(request["body"])
    assert "items[0][id]=si_RwebItem000000001" in body and "items[0][price]=price_1QpremiumYearlyUSD0001" in body
    assert "proration_behavior=create_prorations" in body
    assert snapshot.store_product_id == "price_1QpremiumYearlyUSD0001"


def test_stripe_billing_portal_session_as_recorded(stripe_http):
    stripe_http.responses[("post", "/v1/billing_portal/sessions")] = fixture("stripe", "billing_portal.sessions.create")
    session = get_provider("stripe").billing_portal_session(
        customer_ref="cus_RwebCustomer0001", return_url="https://app.example.com/account", idempotency_key="portal-1"
    )
    request = stripe_http.requests[-1]
    assert request["headers"]["Idempotency-Key"] == "portal-1"
    assert "customer=cus_RwebCustomer0001" in request["body"]
    assert "return_url=" in request["body"]
    assert session.id == "bps_1QwebPortal0000000001"
    assert session.url.startswith("https://billing.stripe.com/p/session/")
    assert session.return_url == "https://app.example.com/account"
    assert session.created_at == datetime(2026, 2, 2, tzinfo=UTC)
