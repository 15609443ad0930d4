"""Stripe refunds over HTTP with signed payloads: each refund booked once by its re_ id, whatever the order."""

import itertools
from decimal import Decimal

import pytest
from djmoney.money import Money

from monetization.models import Payment, Refund, WebhookEvent
from monetization.providers.stripe import payloads
from monetization.services.ledger import ledger_report
from monetization.services.refunds import refund_request
from subscriptions.models import Subscription

from .support import fixture, post_stripe

pytestmark = pytest.mark.django_db(transaction=True)
SUB = "sub_1QwebPremium0000000001"
INVOICE = "in_1QwebInvoice00000000001"
CHARGE = "ch_3QwebCharge000000000001"
INTENT = "pi_3QwebIntent000000000001"


def _refund(refund_id: str, amount: int, status: str = "succeeded") -> dict:
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "charge": CHARGE,
        "created": 1767312000,
        "currency": "usd",
        "metadata": {},
        "payment_intent": INTENT,
        "reason": "requested_by_customer",
        "status": status,
    }


def _charge_refunded(event_id: str, refunded: int, created: int) -> dict:
    event = fixture("stripe", "charge.refunded")
    charge = event["data"]["object"]
    charge.update(amount_refunded=refunded, refunded=refunded >= charge["amount"])
    return {**event, "id": event_id, "created": created}


def _refund_event(event_id: str, refund: dict, created: int, event_type: str = "refund.created") -> dict:
    return payloads.event(event_id=event_id, event_type=event_type, created=created, obj=refund, livemode=False)


@pytest.fixture
def stripe_api(stripe_http):
    """Stripe's answers to the applier's reads: which invoice the intent paid, the charge's refunds."""
    stripe_http.responses[("get", "/v1/invoice_payments")] = fixture("stripe", "invoice_payments.list")
    stripe_http.responses[("get", "/v1/refunds")] = {"object": "list", "data": [], "has_more": False}
    return stripe_http


def _stripe_lists_refunds(stripe_http, *refunds: dict) -> None:
    stripe_http.responses[("get", "/v1/refunds")] = {"object": "list", "data": list(refunds), "has_more": False}


def _sub() -> Subscription:
    return Subscription.objects.get(provider="stripe", provider_subscription_id=SUB)


def _waiting() -> list[tuple[str, str]]:
    return list(WebhookEvent.objects.filter(status=WebhookEvent.Status.WAITING).values_list("event_id", "waiting_for"))


SUBSCRIBED = fixture("stripe", "customer.subscription.created")
PAID = fixture("stripe", "invoice.paid")
PARTIAL = _refund("re_3Qpartial00000000001", 300)
REST = _refund("re_3Qrest0000000000001", 500)


@pytest.mark.parametrize(
    "order",
    [
        ("refund_first", "charge_partial", "charge_full", "subscribed", "paid", "refund_rest"),
        ("charge_full", "refund_rest", "refund_first", "paid", "subscribed", "charge_partial"),
        ("subscribed", "paid", "charge_partial", "refund_first", "refund_rest", "charge_full"),
    ],
)
def test_refunds_arriving_before_their_invoice_wait_and_are_booked_once(client, catalog, customers, stripe_api, order):
    _stripe_lists_refunds(stripe_api, PARTIAL, REST)  # what Stripe lists by the time the events are applied
    events = {
        "subscribed": SUBSCRIBED,
        "paid": PAID,
        "refund_first": _refund_event("evt_re1", PARTIAL, 1767312000),
        "refund_rest": _refund_event("evt_re2", REST, 1767312100),
        "charge_partial": _charge_refunded("evt_ch1", 300, 1767312001),
        "charge_full": _charge_refunded("evt_ch2", 800, 1767312101),
    }
    for name in order:
        assert post_stripe(client, events[name]).status_code == 200
    # A refund whose invoice is not known yet waited for it (never ignored), and was applied when it came.
    assert not WebhookEvent.objects.filter(status=WebhookEvent.Status.IGNORED).exists()
    assert _waiting() == []
    for name in order:  # Stripe delivers at least once: every event again, under the same ids
        post_stripe(client, events[name])
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"applied"}
    payment = Payment.objects.get(provider="stripe", provider_reference=INVOICE)
    assert payment.refunded == Money("8.00", "USD") and payment.status == Payment.Status.REFUNDED
    booked = sorted(Refund.objects.values_list("provider_refund_id", "amount", "status"))
    assert booked == [
        ("re_3Qpartial00000000001", Decimal("3.00"), "succeeded"),
        ("re_3Qrest0000000000001", Decimal("5.00"), "succeeded"),
    ]
    assert ledger_report().balanced
    # Stripe never ends a subscription on a refund; neither do we (rules.ACCESS_RULES).
    assert _sub().state == Subscription.State.ACTIVE


def test_a_partial_refund_redelivered_under_a_new_event_id_is_booked_once(client, catalog, customers, stripe_api):
    _stripe_lists_refunds(stripe_api, PARTIAL)
    post_stripe(client, SUBSCRIBED)
    post_stripe(client, PAID)
    for event_id in ("evt_a", "evt_b"):
        post_stripe(client, _charge_refunded(event_id, 300, 1767312000))
    post_stripe(client, _refund_event("evt_c", PARTIAL, 1767312000, "refund.updated"))
    payment = Payment.objects.get(provider_reference=INVOICE)
    assert payment.refunded == Money("3.00", "USD") and payment.status == Payment.Status.PARTIALLY_REFUNDED
    assert Refund.objects.count() == 1


def test_a_pending_refund_books_nothing_until_it_succeeds(client, catalog, customers, stripe_api):
    post_stripe(client, SUBSCRIBED)
    post_stripe(client, PAID)
    post_stripe(client, _refund_event("evt_p", _refund("re_pending", 800, "pending"), 1767312000))
    assert not Refund.objects.exists()
    post_stripe(client, _refund_event("evt_s", _refund("re_pending", 800), 1767312060, "refund.updated"))
    assert Refund.objects.get().provider_refund_id == "re_pending"


def test_a_charge_of_no_invoice_is_ignored_with_its_reason(client, catalog, customers, stripe_http):
    stripe_http.responses[("get", "/v1/invoice_payments")] = {"object": "list", "data": [], "has_more": False}
    post_stripe(client, _charge_refunded("evt_x", 800, 1767312000))
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.IGNORED and "no invoice" in event.note, event.last_error


@pytest.mark.parametrize(
    "revoke_access,state", [("none", Subscription.State.ACTIVE), ("now", Subscription.State.REVOKED)]
)
def test_the_echo_of_our_own_refund_keeps_the_staff_choice(
    client, catalog, customers, stripe_api, admin_user, revoke_access, state
):
    post_stripe(client, SUBSCRIBED)
    post_stripe(client, PAID)
    ours = _refund("re_3Qstaff0000000000001", 800)
    stripe_api.responses[("post", "/v1/refunds")] = ours
    payment = Payment.objects.get(provider_reference=INVOICE)
    refund = refund_request(
        payment=payment,
        amount=Money("8.00", "USD"),
        reason_code=Refund.Reason.REQUESTED_BY_CUSTOMER,
        requested_by=admin_user,
        revoke_access=revoke_access,
    )
    assert refund.status == Refund.Status.SUCCEEDED and _sub().state == state
    # Stripe's notifications of that same refund: recognised by its re_ id, they change nothing.
    _stripe_lists_refunds(stripe_api, ours)
    post_stripe(client, _charge_refunded("evt_echo", 800, 1767312000))
    post_stripe(client, _refund_event("evt_echo2", ours, 1767312000))
    assert _sub().state == state
    assert Refund.objects.get().provider_refund_id == "re_3Qstaff0000000000001"
    assert Payment.objects.get(pk=payment.pk).refunded == Money("8.00", "USD")
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"applied"}


@pytest.mark.parametrize("first", list(itertools.permutations(["paid", "refund"])))
def test_a_refund_made_in_stripes_dashboard_is_booked_and_leaves_access(client, catalog, customers, stripe_api, first):
    _stripe_lists_refunds(stripe_api, _refund("re_dash", 800))
    post_stripe(client, SUBSCRIBED)
    events = {"paid": PAID, "refund": _charge_refunded("evt_dash", 800, 1767312000)}
    for name in first:
        post_stripe(client, events[name])
    assert Refund.objects.get().provider_refund_id == "re_dash"
    assert _sub().state == Subscription.State.ACTIVE


def test_a_payment_failure_before_its_subscription_waits_for_it(client, catalog, customers):
    from monetization.models import AuditEvent

    post_stripe(client, fixture("stripe", "invoice.payment_failed"))
    assert _waiting() == [(fixture("stripe", "invoice.payment_failed")["id"], SUB)]
    post_stripe(client, SUBSCRIBED)
    assert _waiting() == []
    assert AuditEvent.objects.filter(action="payment.failed").count() == 1


def test_a_refund_before_its_invoice_waits_for_that_invoice(client, catalog, customers, stripe_api):
    _stripe_lists_refunds(stripe_api, PARTIAL)
    post_stripe(client, SUBSCRIBED)
    post_stripe(client, _refund_event("evt_early", PARTIAL, 1767312000))
    assert _waiting() == [("evt_early", INVOICE)]
    post_stripe(client, PAID)  # the payment is recorded: what waited for it is applied at once
    assert _waiting() == [] and Refund.objects.get().provider_refund_id == PARTIAL["id"]
