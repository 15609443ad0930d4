"""Over any sequence of seat changes in a period, the prorated charges sum to
seat price x seat-time / period length, within one minor unit."""

import datetime
from decimal import Decimal

import pytest
from djmoney.money import Money
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monetization import clock
from monetization.models import JournalLine, Payment
from tests.monetization.factories import CustomerFactory
from tests.verified_orgs.factories import verified_org
from verified_orgs.models import Affiliation, OrgInvoice, SeatLedgerEntry
from verified_orgs.services.affiliations import affiliation_accept, affiliation_invite, affiliation_remove
from verified_orgs.services.billing import proration_step

START = datetime.datetime(2026, 1, 31, 10, 0, tzinfo=datetime.UTC)
END = datetime.datetime(2026, 2, 28, 10, 0, tzinfo=datetime.UTC)  # Jan 31 + 1 month
PERIOD = int((END - START).total_seconds())


def _seat_seconds(changes, q0=0):
    """Integral over the period of (seats - seats at start): an independent formula."""
    total, q, q_path = 0, q0, []
    for offset, delta in sorted(changes, key=lambda c: c[0]):
        q += delta
        q_path.append((offset, q))
    for i, (offset, q_after) in enumerate(q_path):
        nxt = q_path[i + 1][0] if i + 1 < len(q_path) else PERIOD
        total += (q_after - q0) * (nxt - offset)
    return total


@settings(max_examples=400, deadline=None)
@given(
    price=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("5000"), places=2),
    currency=st.sampled_from(["USD", "JPY", "BHD", "EUR"]),
    deltas=st.lists(st.tuples(st.integers(0, PERIOD), st.sampled_from([1, 1, 1, -1, 2, -2])), max_size=40),
)
def test_charges_sum_to_seat_time_within_one_minor_unit(price, currency, deltas):
    from monetization.services.ledger import minor_unit_exponent, quantize

    price = quantize(price, currency)
    # Never below zero seats: drop removals that would.
    q, changes = 0, []
    for offset, delta in sorted(deltas):
        if q + delta < 0:
            continue
        q += delta
        changes.append((offset, delta))
    exact_so_far, charged_so_far, charges = Decimal(0), Decimal(0), []
    for offset, delta in changes:
        step = proration_step(
            seat_price=price,
            currency=currency,
            delta=delta,
            at=START + datetime.timedelta(seconds=offset),
            period_start=START,
            period_end=END,
            exact_so_far=exact_so_far,
            charged_so_far=charged_so_far,
        )
        assert quantize(step.charge, currency) == step.charge  # whole minor units
        exact_so_far, charged_so_far = step.period_exact_total, step.period_charged_total
        charges.append(step.charge)
    expected = price * Decimal(_seat_seconds(changes)) / Decimal(PERIOD)
    minor = Decimal(1).scaleb(-minor_unit_exponent(currency))
    assert abs(sum(charges) - expected) <= minor


def _pushed(double, org) -> Decimal:
    """The prorations Stripe holds as pending invoice items of the org's subscription."""
    items = double.pending_items.get(org.subscription.provider_subscription_id, [])
    return sum((Decimal(amount) / 100 for _, amount, _ in items), Decimal(0))


@pytest.mark.django_db
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(ops=st.lists(st.tuples(st.integers(1, 3 * 86400), st.booleans()), min_size=1, max_size=8))
def test_service_prorations_pushed_to_stripe_sum_to_seat_time(stripe_billing, ops):
    """Through the real services: the invoice items sent to Stripe equal seat-time x price, and nothing is booked."""
    with clock.frozen(START):
        org = verified_org()
    seat_price = Decimal("50.00")
    t = START
    live: list[Affiliation] = []
    changes = []
    for step_seconds, add in ops:
        t = t + datetime.timedelta(seconds=step_seconds)
        with clock.frozen(t):
            if add or not live:
                customer = CustomerFactory()
                _, token = affiliation_invite(organization=org, customer=customer, invited_by=org.billing_customer)
                live.append(affiliation_accept(token=token, customer=customer))
                changes.append((int((t - START).total_seconds()), 1))
            else:
                affiliation_remove(affiliation=live.pop(0))
                changes.append((int((t - START).total_seconds()), -1))
    expected = seat_price * Decimal(_seat_seconds(changes)) / Decimal(PERIOD)
    pushed = _pushed(stripe_billing, org)
    assert abs(pushed - expected) <= Decimal("0.01")
    ledger_total = sum(e.proration.amount for e in SeatLedgerEntry.objects.filter(organization=org))
    assert ledger_total == pushed
    assert stripe_billing.billing[org.subscription.provider_subscription_id].quantity == len(live)
    assert org.subscription.__class__.objects.get(pk=org.subscription_id).quantity == len(live)
    assert not Payment.objects.exists() and not JournalLine.objects.exists()
    assert OrgInvoice.objects.get(organization=org).total == Decimal("1000.00")  # prorations go on the next one


@pytest.mark.django_db
def test_half_period_seat_costs_half_the_seat_price(stripe_billing):
    with clock.frozen(START):
        org = verified_org()
    middle = START + (END - START) / 2
    customer = CustomerFactory()
    with clock.frozen(middle):
        _, token = affiliation_invite(organization=org, customer=customer, invited_by=org.billing_customer)
        aff = affiliation_accept(token=token, customer=customer)
    with clock.frozen(middle + (END - START) / 4):
        affiliation_remove(affiliation=aff)
    items = stripe_billing.pending_items[org.subscription.provider_subscription_id]
    assert [amount for _, amount, _ in items] == [2500, -1250]  # +25.00 charged, -12.50 credited
    assert [e.proration for e in SeatLedgerEntry.objects.filter(organization=org).order_by("id")][1:] == [
        Money("25.00", "USD"),
        Money("-12.50", "USD"),
    ]
    assert not Payment.objects.exists()
