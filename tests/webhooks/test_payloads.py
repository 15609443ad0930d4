"""The provider packages' payload builders make what the providers send: checked against recorded payloads.

The demo's inbox and these tests build their payloads with the same functions, so a
builder that drifted from the providers' shapes would fail here, not in production.
"""

from monetization.providers.stripe import payloads as stripe_payloads

from .support import (
    app_store_parts,
    fixture,
    play_notification,
    play_push_envelope,
    play_resource,
    stripe_invoice_object,
    stripe_subscription_event,
)


def missing(recorded, built, path="") -> list[str]:
    """Where ``built`` lacks what ``recorded`` holds (every recorded key, with its value)."""
    if isinstance(recorded, dict):
        if not isinstance(built, dict):
            return [path]
        return [
            p
            for k, v in recorded.items()
            for p in (missing(v, built[k], f"{path}.{k}") if k in built else [f"{path}.{k}"])
        ]
    if isinstance(recorded, list):
        if not isinstance(built, list) or len(built) != len(recorded):
            return [path]
        return [p for i, (r, b) in enumerate(zip(recorded, built, strict=True)) for p in missing(r, b, f"{path}[{i}]")]
    return [] if recorded == built else [f"{path}: {built!r} != {recorded!r}"]


def test_missing_finds_what_a_builder_leaves_out():
    assert missing({"a": {"b": 1, "c": [1, {"d": 2}]}}, {"a": {"b": 1, "c": [1, {"d": 3}]}, "e": 0}) == [
        ".a.c[1].d: 3 != 2"
    ]
    assert missing({"a": 1, "b": 2}, {"a": 1}) == [".b"]


def test_stripe_builders_make_the_recorded_events():
    created = stripe_subscription_event(
        event_id="evt_1QsubCreated000000000001", created=1767225600, event_type="customer.subscription.created"
    )
    assert missing(fixture("stripe", "customer.subscription.created"), created) == []
    paid = stripe_payloads.event(
        event_id="evt_1QinvoicePaid0000000001",
        event_type="invoice.paid",
        created=1767225603,
        obj=stripe_invoice_object(),
        livemode=False,
    )
    assert missing(fixture("stripe", "invoice.paid"), paid) == []
    failed_invoice = stripe_payloads.invoice(
        invoice_id="in_1QwebInvoice00000000002",
        customer="cus_RwebCustomer0001",
        sub_id="sub_1QwebPremium0000000001",
        total=800,
        created=1769904000,
        period_start=1769904000,
        period_end=1772323200,
        price_id="price_1QpremiumMonthlyUSD0001",
        product="prod_RpremiumWeb0001",
        line_id="il_1QwebLine000000000002",
        number="A1B2C3D4-0002",
        paid=False,
        external_id="1700000000001",
        next_payment_attempt=1770163300,
        livemode=False,
    )
    failed = stripe_payloads.event(
        event_id="evt_1QinvoiceFailed00000001",
        event_type="invoice.payment_failed",
        created=1769904100,
        obj=failed_invoice,
        livemode=False,
    )
    assert missing(fixture("stripe", "invoice.payment_failed"), failed) == []
    charge = stripe_payloads.refunded_charge(
        charge_id="ch_3QwebCharge000000000001",
        customer="cus_RwebCustomer0001",
        amount=800,
        refunded=800,
        created=1767225601,
        payment_intent="pi_3QwebIntent000000000001",
        payment_method="pm_1QcardVisa000000000001",
        balance_transaction="txn_3QwebCharge00000000001",
        livemode=False,
    )
    refunded = stripe_payloads.event(
        event_id="evt_3QchargeRefunded000001",
        event_type="charge.refunded",
        created=1767312000,
        obj=charge,
        previous={"amount_refunded": 0, "refunded": False},
        livemode=False,
        request_id="req_Wq3refund0001",
        idempotency_key="refund-0001",
    )
    assert missing(fixture("stripe", "charge.refunded"), refunded) == []


def test_app_store_builders_make_the_recorded_notification():
    assert missing(fixture("app_store", "subscribed"), app_store_parts()) == []


def test_google_play_builders_make_the_recorded_notification_push_and_resource():
    notification = play_notification()
    assert missing(fixture("google_play", "developer_notification"), notification) == []
    recorded_push = fixture("google_play", "rtdn_push")
    del recorded_push["message"]["data"]  # recorded without its notification
    assert missing(recorded_push, play_push_envelope(notification)) == []
    assert missing(fixture("google_play", "subscriptionsv2_active"), play_resource("SUBSCRIPTION_STATE_ACTIVE")) == []
