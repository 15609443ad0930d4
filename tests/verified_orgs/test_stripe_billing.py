"""Organizations are billed through Stripe Billing: verifying books nothing, Stripe collects, and
our payment is booked only when Stripe says the invoice is paid (a signed ``invoice.paid`` over
HTTP). Seat changes push the count and our proration to Stripe; Stripe's count never overwrites ours.
"""

import datetime
import secrets
from decimal import Decimal

import pytest
from djmoney.money import Money

from monetization import clock
from monetization.models import AuditEvent, JournalEntry, Payment, WebhookEvent
from monetization.services.ledger import ledger_report
from monetization.services.refunds import refund_record_from_provider
from subscriptions.models import Subscription
from subscriptions.services.lifecycle import Cause
from tests.monetization.factories import CustomerFactory
from tests.verified_orgs.factories import verified_org
from tests.webhooks.support import post_stripe
from verified_orgs.models import OrgInvoice
from verified_orgs.services.affiliations import affiliation_accept, affiliation_invite, affiliation_remove

pytestmark = pytest.mark.django_db(transaction=True)

START = datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.UTC)
END = datetime.datetime(2026, 4, 1, 12, tzinfo=datetime.UTC)


@pytest.fixture
def webhook_secret(settings):
    settings.STRIPE_WEBHOOK_SECRET = f"whsec_{secrets.token_hex(24)}"
    return settings.STRIPE_WEBHOOK_SECRET


def deliver(client, double, secret) -> None:
    """Stripe's pending events, each posted with a real signature, then forgotten."""
    events, double.outbox[:] = list(double.outbox), []
    for event in events:
        response = post_stripe(client, event, secret=secret)
        assert response.status_code == 200, response.content


def seat(org, at):
    with clock.frozen(at):
        customer = CustomerFactory()
        _, token = affiliation_invite(organization=org, customer=customer, invited_by=org.billing_customer)
        return affiliation_accept(token=token, customer=customer)


def test_verifying_books_nothing_and_subscribes_the_org_in_stripe(stripe_billing):
    with clock.frozen(START):
        org = verified_org()
    org.refresh_from_db()
    assert not Payment.objects.exists() and not JournalEntry.objects.exists()
    assert org.provider_customer_id in stripe_billing.customers
    billed = stripe_billing.billing[org.subscription.provider_subscription_id]
    assert (billed.customer, billed.quantity, billed.base_amount, billed.seat_amount) == (
        org.provider_customer_id,
        0,
        100000,
        5000,
    )
    assert org.subscription.state == Subscription.State.ACTIVE
    invoice = OrgInvoice.objects.get(organization=org)
    assert invoice.status == OrgInvoice.Status.OPEN and invoice.payment is None
    assert invoice.provider_invoice_id in stripe_billing.invoices and invoice.number == "VO-2026-000001"


def test_payment_is_booked_when_stripe_says_the_invoice_is_paid(client, stripe_billing, webhook_secret):
    with clock.frozen(START):
        org = verified_org()
    assert not Payment.objects.exists()
    with clock.frozen(START + datetime.timedelta(seconds=5)):
        deliver(client, stripe_billing, webhook_secret)
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"applied"}
    invoice = OrgInvoice.objects.get(organization=org)
    payment = Payment.objects.get()
    assert (payment.provider_reference, payment.amount) == (invoice.provider_invoice_id, Money("1000.00", "USD"))
    assert invoice.status == OrgInvoice.Status.PAID and invoice.payment == payment
    assert not AuditEvent.objects.filter(action__startswith="organization.invoice_amount").exists()
    assert ledger_report().balanced


def test_seat_changes_push_quantity_and_our_proration_to_stripe(client, stripe_billing, webhook_secret):
    with clock.frozen(START):
        org = verified_org()
    sub_id = org.subscription.provider_subscription_id
    middle = START + (END - START) / 2
    aff = seat(org, middle)
    assert stripe_billing.billing[sub_id].quantity == 1
    with clock.frozen(middle + (END - START) / 4):
        affiliation_remove(affiliation=aff)
    assert stripe_billing.billing[sub_id].quantity == 0
    seat(org, middle + (END - START) / 4 + datetime.timedelta(hours=1))
    assert [a for _, a, _ in stripe_billing.pending_items[sub_id]] == [
        2500,
        -1250,
        1243,
    ]  # 50 x 185 h / 744 h, cumulative rounding
    assert not Payment.objects.exists()

    # Stripe renews: base + 1 seat + the three items, collected; our invoice says the same.
    stripe_billing.advance(END)
    with clock.frozen(END + datetime.timedelta(minutes=1)):
        deliver(client, stripe_billing, webhook_secret)
    april = OrgInvoice.objects.get(organization=org, period_start=END)
    assert april.total == Decimal("1000.00") + Decimal("50.00") + Decimal("25.00") - Decimal("12.50") + Decimal("12.43")
    assert april.status == OrgInvoice.Status.PAID
    assert april.payment.amount.amount == april.total
    assert stripe_billing.collected() == {"USD": 100000 + 107493}
    assert not AuditEvent.objects.filter(action__startswith="organization.invoice_amount").exists()
    assert ledger_report().balanced


def test_a_conflicting_quantity_from_stripe_is_flagged_not_applied(client, stripe_billing, webhook_secret):
    with clock.frozen(START):
        org = verified_org()
    seat(org, START + datetime.timedelta(days=1))
    with clock.frozen(START + datetime.timedelta(days=2)):
        deliver(client, stripe_billing, webhook_secret)
        # Someone changes the quantity in Stripe's dashboard.
        billed = stripe_billing.billing[org.subscription.provider_subscription_id]
        billed.quantity = 7
        stripe_billing._subscription_event("customer.subscription.updated", billed)
        deliver(client, stripe_billing, webhook_secret)
    org.subscription.refresh_from_db()
    assert org.subscription.quantity == 1
    flag = AuditEvent.objects.get(action="subscription.quantity_conflict")
    assert (flag.before, flag.after) == ({"quantity": 1}, {"provider_quantity": 7})


def test_seat_credits_and_refunds_get_credit_notes(client, stripe_billing, webhook_secret):
    with clock.frozen(START):
        org = verified_org()
    aff = seat(org, START + (END - START) / 2)
    with clock.frozen(START + (END - START) * 3 / 4):
        affiliation_remove(affiliation=aff)
    stripe_billing.advance(END)
    with clock.frozen(END + datetime.timedelta(minutes=1)):
        deliver(client, stripe_billing, webhook_secret)
    march, april = OrgInvoice.objects.filter(organization=org).order_by("period_start")
    (seat_credit,) = march.credit_notes.all()
    assert (seat_credit.reason, seat_credit.amount) == ("seat_credit", Decimal("12.5000"))
    assert april.number in seat_credit.memo
    assert [*sorted(OrgInvoice.objects.values_list("number", flat=True)), seat_credit.number] == [
        "VO-2026-000001",
        "VO-2026-000002",
        "VO-2026-000003",
    ]

    with clock.frozen(END + datetime.timedelta(days=2)):
        _refund, _ = refund_record_from_provider(
            payment=april.payment,
            amount=Money("100.00", "USD"),
            provider_refund_id="re_org_1",
            cause=Cause.provider_event("stripe", "evt_refund"),
        )
    (note,) = april.credit_notes.all()
    assert (note.reason, note.amount, note.number) == ("refund", Decimal("100.0000"), "VO-2026-000004")
    assert ledger_report().balanced
