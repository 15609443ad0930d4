"""Multi-month plans: the payment is captured into deferred revenue and recognized day by day over the
service period (a set-based daily job); refunds and lost disputes take the unrecognized part first."""

import dataclasses
import datetime
import threading
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import close_old_connections
from djmoney.money import Money
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from monetization import clock
from monetization.models import JournalEntry, JournalLine, RevenueDeferral
from monetization.providers.base import DisputeReport
from monetization.services.disputes import DISPUTES, dispute_record_reported
from monetization.services.ledger import Account, ledger_report
from monetization.services.refunds import refund_record_from_provider
from monetization.services.revenue_recognition import DEFERRED_REVENUE, revenue_recognize
from subscriptions.models import Plan
from subscriptions.services.lifecycle import Cause
from subscriptions.services.payments import subscription_payment_record
from tests.subscriptions.factories import PlanFactory, SubscriptionFactory

UTC = datetime.UTC
PAID = datetime.datetime(2026, 9, 10, 12, tzinfo=UTC)
REVENUE = Account.revenue("subscriptions")
_refs = iter(range(10**6))


def balance(account: str, currency: str = "USD", *, before: datetime.datetime | None = None) -> Decimal:
    lines = JournalLine.objects.filter(account=account, currency=currency)
    if before is not None:
        lines = lines.filter(entry__posted_at__lt=before)
    return sum(lines.values_list("amount", flat=True), Decimal(0))


def month(year: int, m: int) -> datetime.datetime:
    return datetime.datetime(year + (m - 1) // 12, (m - 1) % 12 + 1, 1, tzinfo=UTC)


def pay(amount: str, *, interval=Plan.Interval.YEAR, count=1, tax="0", currency="USD", when=PAID):
    sub = SubscriptionFactory(plan=PlanFactory(interval=interval, interval_count=count))
    return subscription_payment_record(
        customer=sub.customer,
        provider="stripe",
        provider_reference=f"in_deferred_{next(_refs)}",
        amount=Money(amount, currency),
        tax=Money(tax, currency),
        subscription=sub,
        occurred_at=when,
    )[0]


def recognized_in(start: datetime.datetime, end: datetime.datetime, currency="USD") -> Decimal:
    lines = JournalLine.objects.filter(
        account=REVENUE, currency=currency, entry__posted_at__gte=start, entry__posted_at__lt=end
    )
    return -sum(lines.values_list("amount", flat=True), Decimal(0))


@pytest.mark.django_db
def test_an_annual_payment_is_deferred_then_recognized_month_by_month_to_the_cent():
    payment = pay("120.00", tax="20.00")  # 100.00 of revenue
    assert balance(DEFERRED_REVENUE) == Decimal("-100.00") and balance(REVENUE) == 0
    deferral = RevenueDeferral.objects.get(payment=payment)
    assert deferral.service_end == datetime.datetime(2027, 9, 10, 12, tzinfo=UTC)
    revenue_recognize(through=month(2027, 10))
    assert balance(DEFERRED_REVENUE) == 0 and balance(REVENUE) == Decimal("-100.00")
    year = (deferral.service_end - deferral.service_start).total_seconds()
    per_month = [recognized_in(month(2026, m), month(2026, m + 1)) for m in range(9, 22)]
    assert sum(per_month) == Decimal("100.00")
    for m, got in zip(range(9, 22), per_month, strict=True):
        served = min(month(2026, m + 1), deferral.service_end) - max(month(2026, m), deferral.service_start)
        expected = Decimal(100) * Decimal(served.total_seconds()) / Decimal(year)
        assert abs(got - expected) < Decimal("0.02"), (m, got, expected)  # whole cents, rounded down daily
    assert ledger_report().balanced


@pytest.mark.django_db
def test_monthly_payments_are_revenue_at_once_and_multi_month_ones_by_their_length():
    pay("8.00", interval=Plan.Interval.MONTH)
    assert balance(REVENUE) == Decimal("-8.00") and not RevenueDeferral.objects.exists()
    quarterly = pay("30.00", interval=Plan.Interval.MONTH, count=3)
    assert RevenueDeferral.objects.get(payment=quarterly).service_end == datetime.datetime(2026, 12, 10, 12, tzinfo=UTC)


@pytest.mark.django_db
def test_recognition_is_idempotent_and_a_missed_day_lands_in_its_own_month():
    pay("365.00")
    revenue_recognize(through=datetime.datetime(2026, 9, 28, 3, tzinfo=UTC))
    entries = JournalEntry.objects.filter(kind="revenue_recognition").count()
    revenue_recognize(through=datetime.datetime(2026, 9, 28, 23, tzinfo=UTC))  # the same midnight again
    assert JournalEntry.objects.filter(kind="revenue_recognition").count() == entries
    # No worker from the 28th to October 3rd: the catch-up dates each day it recognizes.
    revenue_recognize(through=datetime.datetime(2026, 10, 3, 0, 10, tzinfo=UTC))
    september = recognized_in(month(2026, 9), month(2026, 10))
    september_entries = JournalEntry.objects.filter(kind="revenue_recognition", posted_at__lt=month(2026, 10))
    last_day = september_entries.latest("posted_at")
    assert last_day.posted_at == month(2026, 10) - datetime.timedelta(microseconds=1)
    # 20.5 days of 365 at 1.00 a day (rounded down to the cent each day).
    assert Decimal("20.45") <= september <= Decimal("20.50")
    assert recognized_in(month(2026, 10), month(2026, 11)) >= Decimal("1.99")


@pytest.mark.django_db(transaction=True)
def test_two_recognition_runs_at_once_recognize_once():
    for _ in range(5):
        pay("120.00")
    errors = []

    def run():
        try:
            revenue_recognize(through=datetime.datetime(2026, 11, 1, tzinfo=UTC))
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    single = sum(
        Decimal(120)
        * Decimal((min(d.recognized_through, d.service_end) - d.service_start).total_seconds())
        / Decimal((d.service_end - d.service_start).total_seconds())
        for d in RevenueDeferral.objects.all()
    )
    assert abs(-balance(REVENUE) - single) < Decimal("0.30")  # once, not twice (each day rounds down)
    assert -balance(REVENUE) == sum(RevenueDeferral.objects.values_list("recognized", flat=True))
    assert ledger_report().balanced


def _refund(payment, amount: str, when: datetime.datetime):
    with clock.frozen(when):
        return refund_record_from_provider(
            payment=payment,
            amount=Money(amount, str(payment.amount.currency)),
            provider_refund_id=f"re_{next(_refs)}",
            cause=Cause.provider_event("stripe", f"evt_{next(_refs)}", reason="charge.refunded"),
        )[0]


@pytest.mark.django_db
def test_a_full_refund_takes_the_unrecognized_part_from_deferred_revenue_and_the_rest_from_revenue():
    payment = pay("120.00")
    dec10 = datetime.datetime(2026, 12, 10, 12, tzinfo=UTC)
    revenue_recognize(through=dec10)
    recognized = RevenueDeferral.objects.get().recognized
    assert Decimal("29") < recognized < Decimal("30")
    _refund(payment, "120.00", dec10)
    deferral = RevenueDeferral.objects.get()
    assert (deferral.reversed, deferral.remaining) == (Decimal("120.00") - recognized, 0)
    assert balance(DEFERRED_REVENUE) == 0
    assert balance(Account.REFUNDS) == recognized  # only revenue that had been recognized is given back
    revenue_recognize(through=month(2027, 10))  # nothing left to recognize
    assert -balance(REVENUE) == recognized and balance(REVENUE) + balance(Account.REFUNDS) == 0
    assert ledger_report().balanced


@pytest.mark.django_db
def test_a_partial_refund_shrinks_what_is_left_to_recognize():
    payment = pay("120.00", tax="20.00")  # 100.00 revenue; a 60.00 refund is 50.00 of revenue
    dec10 = datetime.datetime(2026, 12, 10, 12, tzinfo=UTC)
    revenue_recognize(through=dec10)
    recognized = RevenueDeferral.objects.get().recognized  # about 25.00 of the year's 100.00
    _refund(payment, "60.00", dec10)
    deferral = RevenueDeferral.objects.get()
    assert deferral.reversed == Decimal("50.00") and balance(Account.REFUNDS) == 0
    assert deferral.remaining == Decimal("50.00") - recognized
    revenue_recognize(through=month(2027, 10))
    assert -balance(REVENUE) == Decimal("50.00")  # what was not refunded, recognized over the whole year
    # The rest is spread evenly over the 9 months left: about 2.78 a month, not 8.33.
    assert Decimal("2.70") < recognized_in(month(2027, 3), month(2027, 4)) < Decimal("2.86")
    assert balance(DEFERRED_REVENUE) == 0 and ledger_report().balanced


@pytest.mark.django_db
def test_a_lost_dispute_of_a_deferred_payment_stops_its_recognition():
    payment = pay("120.00")
    revenue_recognize(through=month(2026, 11))
    recognized = RevenueDeferral.objects.get().recognized
    opened = DisputeReport(
        provider_dispute_id="dp_annual",
        payment_reference=payment.provider_reference,
        amount_minor=12000,
        currency="USD",
        status="needs_response",
        as_of=month(2026, 11),
        movements=(("txn_dp_annual", -12000, 1500),),
    )
    cause = Cause.provider_event("stripe", "evt_dp", reason="charge.dispute.closed")
    with clock.frozen(month(2026, 11)):
        dispute_record_reported(payment=payment, report=opened, cause=cause)
        dispute_record_reported(payment=payment, report=dataclasses.replace(opened, status="lost"), cause=cause)
        dispute_record_reported(payment=payment, report=dataclasses.replace(opened, status="lost"), cause=cause)
    assert RevenueDeferral.objects.get().remaining == 0
    assert balance(DISPUTES) == recognized  # the contra account carries only recognized revenue
    revenue_recognize(through=month(2027, 10))
    assert -balance(REVENUE) == recognized and balance(DEFERRED_REVENUE) == 0
    assert ledger_report().balanced


def test_the_daily_job_is_on_the_beat_schedule():
    entry = settings.CELERY_BEAT_SCHEDULE["revenue-recognition"]
    assert entry["task"] == "monetization.tasks.revenue_recognize_task"
    assert entry["schedule"].hour == {0}


@pytest.mark.django_db
@hyp_settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payments=st.lists(
        st.tuples(
            st.sampled_from(["USD", "EUR", "JPY"]),
            st.integers(1200, 50000),  # minor units
            st.integers(0, 40),  # day of the payment after Sep 1
            st.lists(st.tuples(st.integers(0, 400), st.integers(1, 100)), max_size=2),  # refunds: day, % of left
            st.integers(1, 3),  # months of recognition runs before the end (run every N days)
        ),
        min_size=1,
        max_size=4,
    )
)
def test_deferred_revenue_ends_as_revenue_less_refunds_whatever_the_order(payments):
    """However refunds and recognition runs interleave, once every period is over: deferred revenue is empty,
    each payment's recognized revenue plus what its refunds took from deferred is its revenue, and the
    revenue account less the refunds' contra account is what was paid less what was given back."""
    from django.db import transaction

    with transaction.atomic():
        sid = transaction.savepoint()
        start = datetime.datetime(2026, 9, 1, tzinfo=UTC)
        events = []
        for cur, minor, day, refunds, step in payments:
            exponent = 0 if cur == "JPY" else 2
            amount = Decimal(minor).scaleb(-exponent)
            p = pay(str(amount), currency=cur, when=start + datetime.timedelta(days=day, hours=7))
            for rday, pct in refunds:
                events.append((day + rday, "refund", p, pct, exponent))
            for d in range(day, day + 400, 30 * step):
                events.append((d, "run", None, 0, 0))
        for d, kind, p, pct, exponent in sorted(events, key=lambda e: (e[0], e[1])):
            at_ = start + datetime.timedelta(days=d, hours=13)
            if kind == "run":
                revenue_recognize(through=at_)
                continue
            p.refresh_from_db()
            left = p.amount.amount - p.refunded.amount
            amount = (left * pct / 100).quantize(Decimal(1).scaleb(-exponent))
            if amount > 0:
                _refund(p, str(amount), at_)
        revenue_recognize(through=datetime.datetime(2028, 1, 1, tzinfo=UTC))
        for cur in ("USD", "EUR", "JPY"):
            assert balance(DEFERRED_REVENUE, cur) == 0
            paid = sum(
                (d.amount for d in RevenueDeferral.objects.filter(currency=cur)),
                Decimal(0),
            )
            given_back = sum(
                (
                    d.payment.refunded.amount
                    for d in RevenueDeferral.objects.filter(currency=cur).select_related("payment")
                ),
                Decimal(0),
            )
            assert -balance(REVENUE, cur) - balance(Account.REFUNDS, cur) == paid - given_back
        for d in RevenueDeferral.objects.all():
            assert d.recognized + d.reversed == d.amount and d.recognized >= 0
        assert ledger_report().balanced
        transaction.savepoint_rollback(sid)
