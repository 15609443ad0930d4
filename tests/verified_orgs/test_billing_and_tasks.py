import datetime
from decimal import Decimal

import pytest

from monetization import clock
from monetization.models import Payment
from monetization.roles import sync_roles
from monetization.services.ledger import ledger_report
from subscriptions.models import Subscription
from tests.monetization.factories import CustomerFactory
from tests.verified_orgs.factories import org_catalog, verified_org
from verified_orgs import tasks
from verified_orgs.models import Affiliation, OrgInvoice, SeatLedgerEntry
from verified_orgs.services.affiliations import affiliation_accept, affiliation_invite
from verified_orgs.services.billing import org_prices, org_renew
from verified_orgs.services.dunning import org_payment_failed
from verified_orgs.services.organizations import organization_set_seat_limit

pytestmark = pytest.mark.django_db

START = datetime.datetime(2026, 1, 31, 9, tzinfo=datetime.UTC)


def _add(org, n):
    for _ in range(n):
        c = CustomerFactory()
        _, token = affiliation_invite(organization=org, customer=c, invited_by=org.billing_customer)
        affiliation_accept(token=token, customer=c)


def test_renewal_opens_a_period_with_base_plus_seats_and_resets_proration():
    with clock.frozen(START):
        org = verified_org()
        _add(org, 3)
    org.subscription.refresh_from_db()
    assert org.subscription.current_period_end == datetime.datetime(2026, 2, 28, 9, tzinfo=datetime.UTC)
    renewal_at = org.subscription.current_period_end
    with clock.frozen(renewal_at):
        invoice = org_renew(organization=org, period_start=renewal_at, cause=tasks_cause())
        again = org_renew(organization=org, period_start=renewal_at, cause=tasks_cause())  # re-delivered
    assert invoice.pk == again.pk and OrgInvoice.objects.filter(organization=org).count() == 2
    latest = OrgInvoice.objects.filter(organization=org).order_by("-period_start").first()
    # base + 3 seats x 50 in advance, and the 3 seats added during the first period (Stripe's invoice items)
    assert latest.total == Decimal("1300.00")
    assert [(line.kind, line.quantity, line.amount) for line in latest.lines.all()] == [
        ("base", 1, Decimal("1000.0000")),
        ("seats", 3, Decimal("150.0000")),
        ("seat_proration", 1, Decimal("50.0000")),
        ("seat_proration", 1, Decimal("50.0000")),
        ("seat_proration", 1, Decimal("50.0000")),
    ]
    assert latest.status == OrgInvoice.Status.OPEN and latest.number
    assert not Payment.objects.exists()  # booked when Stripe says the invoice is paid
    last = SeatLedgerEntry.objects.filter(organization=org).order_by("-id").first()
    assert (last.reason, last.quantity, last.period_exact_total) == ("period_start", 3, 0)
    org.subscription.refresh_from_db()
    assert org.subscription.current_period_end == datetime.datetime(2026, 3, 31, 9, tzinfo=datetime.UTC)
    assert ledger_report().balanced


def test_prices_follow_the_billing_country_with_us_fallback():
    org_catalog()
    org_catalog(base="800.00", seat="40.00", currency="GBP", country="GB")
    assert org_prices(country="GB").seat.amount == Decimal("40.00")
    assert str(org_prices(country="GB").currency) == "GBP"
    assert org_prices(country="FR").base.amount == Decimal("1000.00")  # no FR price: US


def test_gb_org_is_billed_in_pounds():
    org_catalog(base="800.00", seat="40.00", currency="GBP", country="GB")
    org = verified_org(country="GB")
    assert OrgInvoice.objects.get(organization=org).currency == "GBP"


def test_beat_tasks_expire_invitations_and_end_the_org_grace():
    from subscriptions.tasks import lifecycle_sweep_task

    with clock.frozen(START):
        org = verified_org()
        affiliation_invite(organization=org, customer=CustomerFactory(), invited_by=org.billing_customer)
    period_end = org.subscription.current_period_end
    with clock.frozen(period_end):
        org_payment_failed(organization=org, cause=tasks_cause())
    with clock.frozen(period_end + datetime.timedelta(days=14)):
        assert tasks.expire_invitations.delay().get() == 1
        assert lifecycle_sweep_task.delay().get()["moved"] == {"grace_end:stripe:2000-01-01:organization:hold": 1}
    assert Affiliation.objects.get(organization=org).state == "expired"
    org.refresh_from_db()
    assert org.state == "suspended"
    assert org.subscription.state == Subscription.State.ON_HOLD


def test_seat_limit_is_audited_and_counts_invitations():
    from monetization.models import AuditEvent
    from tests.verified_orgs.factories import compliance_user

    org = verified_org()
    organization_set_seat_limit(organization=org, actor=compliance_user("lim"), seat_limit=2, reason="contract")
    _add(org, 1)
    affiliation_invite(organization=org, customer=CustomerFactory(), invited_by=org.billing_customer)
    with pytest.raises(Exception) as exc:
        affiliation_invite(organization=org, customer=CustomerFactory(), invited_by=org.billing_customer)
    assert exc.value.code == "seat_limit_reached"
    ev = AuditEvent.objects.get(action="organization.set_seat_limit")
    assert ev.before["seat_limit"] is None and ev.after["seat_limit"] == 2 and ev.reason == "contract"


def test_roles_declare_only_existing_permissions():
    counts = sync_roles(strict=True)
    assert counts["Compliance"] > 0


def tasks_cause():
    from subscriptions.services.lifecycle import Cause

    return Cause.task("test")


def test_seat_ledger_is_append_only():
    from django.db import DatabaseError, connection, transaction

    org = verified_org()
    entry = SeatLedgerEntry.objects.get(organization=org)
    with pytest.raises(DatabaseError), transaction.atomic():
        SeatLedgerEntry.objects.filter(pk=entry.pk).update(quantity=99)
    assert SeatLedgerEntry.objects.get(pk=entry.pk).quantity == 0
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        # Raw SQL: the database itself refuses, not just the ORM's PROTECT.
        cursor.execute("DELETE FROM verified_orgs_seatledgerentry WHERE id = %s", [entry.pk])
