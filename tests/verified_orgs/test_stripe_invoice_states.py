"""Our org invoices follow Stripe's invoices by id (issue 13): an unpaid renewal is an open invoice
here, a late payment pays the invoice it was for, Stripe voiding or writing one off is applied,
and Stripe echoing a seat count we pushed is no conflict. Every event goes through the real
webhook endpoint with a real Stripe-Signature.
"""

import datetime
import secrets

import pytest

from monetization import clock
from monetization.models import AuditEvent, Payment, WebhookEvent
from monetization.services.ledger import ledger_report
from subscriptions.models import Subscription
from tests.verified_orgs.factories import verified_org
from tests.verified_orgs.test_stripe_billing import END, START, deliver, seat
from verified_orgs.models import OrgInvoice

pytestmark = pytest.mark.django_db(transaction=True)

MAY = datetime.datetime(2026, 5, 1, 12, tzinfo=datetime.UTC)
MINUTE = datetime.timedelta(minutes=1)


@pytest.fixture
def webhook_secret(settings):
    settings.STRIPE_WEBHOOK_SECRET = f"whsec_{secrets.token_hex(24)}"
    return settings.STRIPE_WEBHOOK_SECRET


def _billed_org(client, stripe_billing, secret):
    """An org verified on START whose first invoice Stripe collected (and told us)."""
    with clock.frozen(START):
        org = verified_org()
    with clock.frozen(START + MINUTE):
        deliver(client, stripe_billing, secret)
    return org


def _april_fails(client, stripe_billing, secret, org) -> str:
    """Stripe renews on END and the card is declined: the invoice is finalized and stays open."""
    stripe_billing.failing_customers.add(org.provider_customer_id)
    before = set(stripe_billing.invoices)
    stripe_billing.advance(END)
    with clock.frozen(END + MINUTE):
        deliver(client, stripe_billing, secret)
    (april_id,) = set(stripe_billing.invoices) - before
    assert stripe_billing.invoices[april_id].status == "open"
    return april_id


def _no_flags():
    flagged = AuditEvent.objects.filter(
        action__in=[
            "organization.provider_payment_unmatched",
            "organization.provider_invoice_unmatched",
            "organization.invoice_amount_mismatch",
            "subscription.quantity_conflict",
        ]
    )
    assert not flagged.exists(), list(flagged.values("action", "after"))


def test_an_unpaid_stripe_invoice_is_open_here_with_its_number_and_paid_when_stripe_says(
    client, stripe_billing, webhook_secret
):
    org = _billed_org(client, stripe_billing, webhook_secret)
    april_id = _april_fails(client, stripe_billing, webhook_secret, org)

    april = OrgInvoice.objects.get(organization=org, period_start=END)
    assert (april.status, april.number) == (OrgInvoice.Status.OPEN, "VO-2026-000002")
    assert april.provider_invoice_id == april_id
    assert april.total * 100 == stripe_billing.invoices[april_id].total and april.payment is None
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"applied"}

    # The customer fixes the card; Stripe's retry collects it a week later.
    stripe_billing.failing_customers.clear()
    with clock.frozen(END + datetime.timedelta(days=7)):
        stripe_billing.retry(april_id)
        deliver(client, stripe_billing, webhook_secret)
    april.refresh_from_db()
    assert april.status == OrgInvoice.Status.PAID
    assert (april.payment.provider_reference, april.payment.amount.amount) == (april_id, april.total)
    assert OrgInvoice.objects.filter(organization=org).count() == 2
    _no_flags()
    assert ledger_report().balanced


def test_a_late_payment_pays_the_invoice_it_was_for_not_the_period_it_arrived_in(
    client, stripe_billing, webhook_secret
):
    org = _billed_org(client, stripe_billing, webhook_secret)
    april_id = _april_fails(client, stripe_billing, webhook_secret, org)

    # May renews with a working card; April's invoice is paid by hand on May 3.
    stripe_billing.failing_customers.clear()
    stripe_billing.advance(MAY)
    with clock.frozen(MAY + MINUTE):
        deliver(client, stripe_billing, webhook_secret)
    may = OrgInvoice.objects.get(organization=org, period_start=MAY)
    assert may.status == OrgInvoice.Status.PAID
    with clock.frozen(MAY + datetime.timedelta(days=2)):
        stripe_billing.retry(april_id)
        deliver(client, stripe_billing, webhook_secret)

    april = OrgInvoice.objects.get(organization=org, period_start=END)
    assert april.status == OrgInvoice.Status.PAID and april.payment.provider_reference == april_id
    may.refresh_from_db()
    assert may.payment.provider_reference == may.provider_invoice_id != april_id
    assert Payment.objects.count() == 3
    _no_flags()
    assert ledger_report().balanced


@pytest.mark.parametrize(
    ("uncollectible", "status", "action"),
    [
        (False, OrgInvoice.Status.VOID, "organization.invoice_void"),
        (True, OrgInvoice.Status.UNCOLLECTIBLE, "organization.invoice_mark_uncollectible"),
    ],
)
def test_stripe_voiding_or_writing_off_an_invoice_is_applied_here(
    client, stripe_billing, webhook_secret, uncollectible, status, action
):
    org = _billed_org(client, stripe_billing, webhook_secret)
    april_id = _april_fails(client, stripe_billing, webhook_secret, org)
    # Someone closes it in Stripe's dashboard.
    with clock.frozen(END + datetime.timedelta(days=3)):
        stripe_billing.billing_invoice_close(invoice=april_id, uncollectible=uncollectible, idempotency_key="dash")
        deliver(client, stripe_billing, webhook_secret)
    april = OrgInvoice.objects.get(provider_invoice_id=april_id)
    assert april.status == status
    audit = AuditEvent.objects.get(action=action)
    assert (audit.actor_kind, audit.before["status"], audit.after["status"]) == ("provider", "open", status)
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"applied"}

    if uncollectible:  # written off, yet Stripe still collects it when the customer pays
        stripe_billing.failing_customers.clear()
        with clock.frozen(END + datetime.timedelta(days=9)):
            stripe_billing.retry(april_id)
            deliver(client, stripe_billing, webhook_secret)
        april.refresh_from_db()
        assert april.status == OrgInvoice.Status.PAID and april.payment.provider_reference == april_id
    _no_flags()
    assert ledger_report().balanced


def test_stripe_echoing_the_seat_counts_we_pushed_is_no_conflict(client, stripe_billing, webhook_secret):
    org = _billed_org(client, stripe_billing, webhook_secret)
    day = START + datetime.timedelta(days=1)
    seat(org, day)  # pushes 1
    seat(org, day + datetime.timedelta(hours=1))  # pushes 2
    # Stripe's two updates (quantity 1, then 2) arrive after both pushes.
    with clock.frozen(day + datetime.timedelta(hours=2)):
        deliver(client, stripe_billing, webhook_secret)
    org.subscription.refresh_from_db()
    assert org.subscription.quantity == 2 and org.subscription.state == Subscription.State.ACTIVE
    assert WebhookEvent.objects.filter(event_type="customer.subscription.updated").count() == 2
    _no_flags()

    # A count we never held is still a conflict, flagged and not applied.
    with clock.frozen(day + datetime.timedelta(hours=3)):
        billed = stripe_billing.billing[org.subscription.provider_subscription_id]
        billed.quantity = 1 + 7
        stripe_billing._subscription_event("customer.subscription.updated", billed)
        deliver(client, stripe_billing, webhook_secret)
    org.subscription.refresh_from_db()
    assert org.subscription.quantity == 2
    flag = AuditEvent.objects.get(action="subscription.quantity_conflict")
    assert (flag.before, flag.after) == ({"quantity": 2}, {"provider_quantity": 8})
