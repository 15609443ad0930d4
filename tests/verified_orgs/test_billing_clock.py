"""A test clock runs 13 months of Stripe Billing for three organizations: one upgraded mid-period
(seats added and removed), one past due (a failed renewal, collected on retry), one billed in GBP.
Stripe's own book (the double's), our invoices and the ledger agree to the minor unit."""

import datetime
import secrets
from decimal import Decimal

import pytest
from dateutil.relativedelta import relativedelta
from django.db.models import Sum
from djmoney.money import Money

from monetization import clock
from monetization.models import AuditEvent, JournalLine, WebhookEvent
from monetization.money import minor_from_money
from monetization.services.ledger import ledger_report, quantize
from subscriptions.models import Subscription
from tests.monetization.factories import CustomerFactory
from tests.verified_orgs.factories import org_catalog, verified_org
from tests.webhooks.support import post_stripe
from verified_orgs.models import Organization, OrgInvoice
from verified_orgs.services.affiliations import affiliation_accept, affiliation_invite, affiliation_remove

pytestmark = pytest.mark.django_db(transaction=True)

START = datetime.datetime(2026, 1, 15, 10, tzinfo=datetime.UTC)
MONTHS = 13


def add_seats(org, n):
    added = []
    for _ in range(n):
        customer = CustomerFactory()
        _, token = affiliation_invite(organization=org, customer=customer, invited_by=org.billing_customer)
        added.append(affiliation_accept(token=token, customer=customer))
    return added


def test_thirteen_months_for_three_organizations(client, settings, stripe_billing):
    settings.STRIPE_WEBHOOK_SECRET = secret = f"whsec_{secrets.token_hex(24)}"
    settings.VERIFIED_ORG_TAX_RATES = {"GB": "20"}  # the British org pays VAT on every line
    double = stripe_billing

    def deliver(at):
        with clock.frozen(at):
            events, double.outbox[:] = list(double.outbox), []
            for event in events:
                assert post_stripe(client, event, secret=secret).status_code == 200

    org_catalog()
    org_catalog(base="800.00", seat="40.00", currency="GBP", country="GB")
    with clock.frozen(START):
        upgraded, past_due, british = verified_org(), verified_org(), verified_org(country="GB")
    with clock.frozen(START + datetime.timedelta(hours=1)):
        seats = add_seats(upgraded, 2)
        add_seats(past_due, 1)
        add_seats(british, 1)
    deliver(START + datetime.timedelta(hours=2))

    for month in range(1, MONTHS + 1):
        boundary = START + relativedelta(months=month)
        if month == 3:
            double.failing_customers.add(past_due.provider_customer_id)
        double.advance(boundary)
        deliver(boundary + datetime.timedelta(minutes=5))
        mid = boundary + datetime.timedelta(days=13, hours=7, minutes=11)
        if month == 3:
            past_due.subscription.refresh_from_db()
            assert past_due.subscription.state == Subscription.State.IN_GRACE_PERIOD
            double.failing_customers.discard(past_due.provider_customer_id)
            (open_invoice,) = [
                i
                for i in double.invoices.values()
                if i.customer == past_due.provider_customer_id and i.status == "open"
            ]
            with clock.frozen(boundary + datetime.timedelta(days=3)):
                double.retry(open_invoice.id)
            deliver(boundary + datetime.timedelta(days=3, minutes=1))
        if month == 4:  # the upgrade: three more seats in the middle of a period
            with clock.frozen(mid):
                seats += add_seats(upgraded, 3)
        if month == 7:
            with clock.frozen(mid):
                affiliation_remove(affiliation=seats.pop(0))

    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"applied"}
    assert not AuditEvent.objects.filter(
        action__in=["organization.invoice_amount_mismatch", "organization.provider_payment_unmatched"]
    ).exists()
    for org, currency in ((upgraded, "USD"), (past_due, "USD"), (british, "GBP")):
        org.refresh_from_db()
        assert org.state == Organization.State.VERIFIED
        invoices = OrgInvoice.objects.filter(organization=org)
        assert invoices.count() == MONTHS + 1
        assert set(invoices.values_list("status", flat=True)) == {OrgInvoice.Status.PAID}
        ours = sum((i.total for i in invoices), Decimal(0))
        stripe = double.collected(org.provider_customer_id)
        assert stripe == {currency: minor_from_money(Money(ours, currency))}
        cash = JournalLine.objects.filter(
            account="cash:stripe", currency=currency, entry__customer=org.billing_customer
        ).aggregate(s=Sum("amount"))["s"]
        assert cash == ours
        assert sum((i.payment.amount.amount for i in invoices), Decimal(0)) == ours
    # VAT: 20% of the British org's lines, rounded per line as Stripe does, also a tax payable in the ledger.
    for invoice in OrgInvoice.objects.filter(organization=british):
        lines = [line.amount for line in invoice.lines.exclude(kind="tax")]
        assert invoice.tax == sum(quantize(a * Decimal("0.2"), "GBP") for a in lines) > 0
        assert invoice.payment.tax == Money(invoice.tax, "GBP")
    assert not OrgInvoice.objects.filter(organization=upgraded, tax__gt=0).exists()
    # The upgrade's prorations reached the invoices: more than whole months of the seats at start.
    assert OrgInvoice.objects.filter(organization=upgraded, lines__kind="seat_proration").exists()
    assert ledger_report().balanced
