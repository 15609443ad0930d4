"""reconcile_provider --provider stripe: planted drifts found and repaired, none on a clean history."""

import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from monetization.models import AuditEvent, Dispute, Payment, Refund
from monetization.providers.stripe import payloads
from monetization.services.ledger import ledger_report
from subscriptions.models import Subscription

from .support import fixture, post_stripe, stripe_invoice_event, stripe_invoice_object, stripe_subscription_object

pytestmark = pytest.mark.django_db(transaction=True)
T = 1767400000


def _list(*items) -> dict:
    return {"object": "list", "data": list(items), "has_more": False}


REFUND = {
    "id": "re_dashboard01",
    "object": "refund",
    "amount": 300,
    "charge": "ch_3QwebCharge000000000001",
    "created": T,
    "currency": "usd",
    "payment_intent": "pi_3QwebIntent000000000001",
    "status": "succeeded",
}
DISPUTE = payloads.dispute(
    dispute_id="dp_only_at_stripe",
    charge_id="ch_3QwebCharge000000000001",
    payment_intent="pi_3QwebIntent000000000001",
    amount=500,
    status="lost",
    created=T,
    due_by=T + 7 * 86400,
    balance_transactions=[payloads.dispute_balance_transaction(txn_id="txn_dw9", amount=-500, fee=1500, created=T)],
)


@pytest.fixture
def stripe_books(client, catalog, customers, stripe_http):
    """A subscription whose first invoice we received; Stripe's API answers from its own books."""
    stripe_http.responses[("get", "/v1/invoice_payments")] = fixture("stripe", "invoice_payments.list")
    post_stripe(client, fixture("stripe", "customer.subscription.created"))
    post_stripe(client, fixture("stripe", "invoice.paid"))
    stripe_http.responses[("get", "/v1/invoices")] = _list(stripe_invoice_object())
    stripe_http.responses[("get", "/v1/refunds")] = _list()
    stripe_http.responses[("get", "/v1/disputes")] = _list()
    stripe_http.responses[("get", "/v1/events")] = _list()
    stripe_http.responses[("get", "/v1/subscriptions")] = _list(stripe_subscription_object())
    return stripe_http


def _run(*extra) -> str:
    out = io.StringIO()
    call_command("reconcile_provider", "--provider", "stripe", "--since", "2026-01-01", *extra, stdout=out)
    return out.getvalue()


def test_a_clean_history_has_no_drift(stripe_books):
    out = _run()
    assert "stripe: 0 drift(s)" in out and "no drift left" in out
    run = AuditEvent.objects.get(action="reconcile.run")
    assert run.after["drifts"] == 0 and run.after["left"] == 0


def test_planted_drifts_are_found_then_repaired(stripe_books):
    # A renewal Stripe was paid whose invoice.paid never reached us (it is in Stripe's event list).
    renewal = stripe_invoice_object(invoice_id="in_renewal_missed", billing_reason="subscription_cycle")
    stripe_books.responses[("get", "/v1/invoices")] = _list(stripe_invoice_object(), renewal)
    stripe_books.responses[("get", "/v1/events")] = _list(
        stripe_invoice_event(event_id="evt_missed", created=T, invoice_id="in_renewal_missed")
    )
    # A refund made in Stripe's dashboard and a dispute, both without their events.
    stripe_books.responses[("get", "/v1/refunds")] = _list(REFUND)
    stripe_books.responses[("get", "/v1/disputes")] = _list(DISPUTE)

    with pytest.raises(CommandError, match="3 drift"):
        _run("--no-repair")
    assert not Payment.objects.filter(provider_reference="in_renewal_missed").exists()
    assert not Refund.objects.exists() and not Dispute.objects.exists()

    out = _run()
    for line in ("missing_payment in_renewal_missed", "missing_refund re_dashboard01", "missing_dispute dp_only"):
        assert line in out
    assert "3 repaired" in out and "no drift left" in out
    assert Payment.objects.get(provider_reference="in_renewal_missed").amount.amount == Decimal("8.00")
    assert Refund.objects.get().provider_refund_id == "re_dashboard01"
    dispute = Dispute.objects.get()
    assert dispute.status == Dispute.Status.LOST and dispute.withdrawn.amount == Decimal("5.00")
    assert ledger_report().balanced
    assert "stripe: 0 drift(s)" in _run()  # repaired for good
    assert [r.after["left"] for r in AuditEvent.objects.filter(action="reconcile.run").order_by("id")] == [3, 0, 0]


def test_an_amount_difference_is_left_for_a_person(stripe_books):
    stripe_books.responses[("get", "/v1/invoices")] = _list(stripe_invoice_object(amount=900))
    with pytest.raises(CommandError, match="1 drift"):
        _run()


def test_a_missed_cancellation_is_found_and_the_subscription_converged(stripe_books):
    ended = stripe_subscription_object(status="canceled")
    stripe_books.responses[("get", "/v1/subscriptions")] = _list(ended)
    out = _run()
    assert "state_mismatch sub_1QwebPremium0000000001" in out and "1 repaired" in out
    sub = Subscription.objects.get(provider_subscription_id="sub_1QwebPremium0000000001")
    assert sub.state == Subscription.State.EXPIRED and sub.auto_renew is False
