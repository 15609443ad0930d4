"""Oracle: on a generated history of 5,000 customers, the metrics read from the daily snapshots
(written by the rebuild command) equal a plain Python computation of the written definitions
(subscriptions/selectors_finance.py), day by day and segment by segment.

The history has monthly and annual plans in USD and EUR, trials that convert or not, renewals
that stop (churn) and resume after a gap (reactivation), upgrades and downgrades mid-life, and
payments refunded in full (which buy no period).
"""

import calendar
import datetime
import io
import random
from collections import defaultdict
from datetime import UTC
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from django.core.management import call_command
from djmoney.money import Money

from monetization import clock
from monetization.models import Customer, ExchangeRate, Payment, RevenueDay
from subscriptions.models import (
    FinanceCarry,
    FinanceState,
    MetricsDay,
    RetentionCell,
    Subscription,
    SubscriptionPayment,
)
from subscriptions.selectors_finance import PAID, PERIOD_KINDS, churn, mrr_movement, mrr_series, trial_conversion
from subscriptions.services.finance_snapshots import finance_snapshots_refresh
from tests.subscriptions.factories import PlanFactory

# The history and its two ways of writing the snapshots take minutes on a loaded machine.
pytestmark = pytest.mark.timeout(1200)

CUSTOMERS = 5000
START, END = datetime.date(2026, 1, 1), datetime.date(2026, 3, 31)
NOW = datetime.datetime(2026, 4, 1, tzinfo=UTC)
EUR_USD = Decimal("1.10")
MONTHLY_PRICES = [Decimal("3.00"), Decimal("8.00"), Decimal("10.00"), Decimal("22.00")]
ANNUAL_PRICES = [Decimal("96.00"), Decimal("120.00")]
ONE_DAY = datetime.timedelta(days=1)


def add_months(at: datetime.datetime, months: int) -> datetime.datetime:
    """PostgreSQL's ``timestamp + interval 'n months'``: the same day, clamped to the month's end."""
    month0 = at.month - 1 + months
    year, month = at.year + month0 // 12, month0 % 12 + 1
    return at.replace(year=year, month=month, day=min(at.day, calendar.monthrange(year, month)[1]))


def midnight(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(), tzinfo=UTC)


def _generate(monthly_plan, annual_plan):
    rng = random.Random(20260331)
    customers = Customer.objects.bulk_create(
        [Customer(external_id=f"oracle-{i}", handle=f"oracle{i}", country="US") for i in range(CUSTOMERS)]
    )
    subs, plans = [], []
    for i, customer in enumerate(customers):
        annual = rng.random() < 0.2
        started = datetime.datetime(2025, 9, 1, tzinfo=UTC) + datetime.timedelta(
            minutes=rng.randrange(0, 210 * 24 * 60)
        )
        trial = rng.random() < 0.3
        subs.append(
            Subscription(
                customer=customer,
                plan=annual_plan if annual else monthly_plan,
                platform="web",
                provider="stripe",
                provider_subscription_id=f"sub_oracle_{i}",
                state=Subscription.State.ACTIVE,
                started_at=started,
                trial_end=started + datetime.timedelta(days=7) if trial else None,
            )
        )
        plans.append(annual)
    subs = Subscription.objects.bulk_create(subs)
    payments, links = [], []
    for sub, annual in zip(subs, plans, strict=True):
        currency = "EUR" if rng.random() < 0.25 else "USD"
        at = sub.trial_end or sub.started_at
        if sub.trial_end and rng.random() < 0.35:
            continue  # the trial never converted
        price = rng.choice(ANNUAL_PRICES if annual else MONTHLY_PRICES)
        n = 0
        while at < NOW:
            kind = Payment.Kind.INITIAL if n == 0 else Payment.Kind.RENEWAL
            if not annual and n and rng.random() < 0.08:
                price, kind = rng.choice(MONTHLY_PRICES), Payment.Kind.UPGRADE  # a plan change at renewal
            status = Payment.Status.REFUNDED if rng.random() < 0.03 else Payment.Status.SUCCEEDED
            payments.append(
                Payment(
                    customer_id=sub.customer_id,
                    provider="stripe",
                    provider_reference=f"in_oracle_{sub.pk}_{n}",
                    kind=kind,
                    amount=Money(price, currency),
                    fee=Money(0, currency),
                    tax=Money(0, currency),
                    commission=Money(0, currency),
                    refunded=Money(price if status == Payment.Status.REFUNDED else 0, currency),
                    status=status,
                    occurred_at=at,
                )
            )
            links.append(sub.pk)
            n += 1
            at = add_months(at, 12 if annual else 1)
            if rng.random() < 0.12:  # it lapses ...
                if rng.random() < 0.5:
                    break  # ... for good
                at += datetime.timedelta(days=rng.randrange(3, 45), hours=rng.randrange(0, 24))  # ... and comes back
    payments = Payment.objects.bulk_create(payments, batch_size=5000)
    SubscriptionPayment.objects.bulk_create(
        [SubscriptionPayment(payment=p, subscription_id=sid) for p, sid in zip(payments, links, strict=True)],
        batch_size=5000,
    )
    return subs, payments, links


@pytest.fixture(scope="module")
def history(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        for offset in range(-10, 100):
            ExchangeRate.objects.get_or_create(
                day=START + datetime.timedelta(days=offset), base="EUR", currency="USD", defaults={"rate": EUR_USD}
            )
        monthly, annual = (
            PlanFactory(code="oracle-monthly", interval="month"),
            PlanFactory(code="oracle-annual", interval="year"),
        )
        subs, payments, links = _generate(monthly, annual)
        # As beat writes them: every day refreshed at noon with the day before (each carried forward
        # from the day before's state), then again as yesterday the next day (the retention cells
        # beat also refreshes are not compared: the rebuild below writes them).
        day = START - ONE_DAY
        while day <= END + ONE_DAY:
            noon = midnight(day) + datetime.timedelta(hours=12)
            finance_snapshots_refresh(start=day - ONE_DAY, end=day, now=noon, cohorts=False)
            day += ONE_DAY
        by_beat = _snapshots()
        # As the rebuild command writes them (what the tests below read): seeded at its first day's
        # eve from the payments whole, then carried forward a day at a time.
        with clock.frozen(NOW):
            call_command(
                "rebuild_finance_snapshots",
                start=(START - datetime.timedelta(days=1)).isoformat(),
                end=END.isoformat(),
                stdout=io.StringIO(),
            )
        periods = defaultdict(list)  # sid -> (starts, ends, monthly, currency)
        first_paid = {}
        for payment, sid in zip(payments, links, strict=True):
            if payment.status not in PAID or payment.kind not in PERIOD_KINDS:
                continue
            periods[sid].append(payment)
            first_paid[sid] = min(first_paid.get(sid, payment.occurred_at), payment.occurred_at)
        annual_ids = {s.pk for s in subs if s.plan_id == annual.pk}
        table = {
            sid: [
                (
                    p.occurred_at,
                    add_months(p.occurred_at, 12 if sid in annual_ids else 1),
                    p.amount.amount / (12 if sid in annual_ids else 1),
                    str(p.amount.currency),
                )
                for p in ps
            ]
            for sid, ps in periods.items()
        }
        yield {"subs": subs, "periods": table, "first_paid": first_paid, "by_beat": by_beat, "rebuilt": _snapshots()}
        # Module-scoped rows outlive the per-test transactions: remove them for the tests after.
        for snapshot in (MetricsDay, RevenueDay, RetentionCell, FinanceState, FinanceCarry):
            snapshot.objects.all().delete()
        SubscriptionPayment.objects.filter(subscription__provider_subscription_id__startswith="sub_oracle_").delete()
        Payment.objects.filter(provider_reference__startswith="in_oracle_").delete()
        Subscription.objects.filter(provider_subscription_id__startswith="sub_oracle_").delete()
        Customer.objects.filter(external_id__startswith="oracle-").delete()
        ExchangeRate.objects.all().delete()
        for plan in (monthly, annual):
            plan.delete()
            plan.product.delete()


def _snapshots() -> dict:
    """Every metrics and revenue row of the oracle's days, by day and segment."""
    rows = {}
    keys = {MetricsDay: ("product", "plan", "platform", "provider", "country"), RevenueDay: ("provider",)}
    for model, key in keys.items():
        for row in model.objects.filter(day__gte=START - ONE_DAY, day__lte=END).values():
            row.pop("id"), row.pop("refreshed_at")
            rows[(model.__name__, row["day"], *(row[k] for k in key), row["currency"])] = row
    return rows


def value_at(history, at: datetime.datetime) -> dict[int, tuple[Decimal, str]]:
    """Each active subscription's MRR at an instant: its latest covering paid period's monthly value."""
    active = {}
    for sid, periods in history["periods"].items():
        covering = [p for p in periods if p[0] < at < p[1]]
        if covering:
            latest = max(covering, key=lambda p: p[0])
            active[sid] = (latest[2], latest[3])
    return active


def days():
    return [START + datetime.timedelta(days=i) for i in range((END - START).days + 1)]


def usd(amount: Decimal, currency: str) -> Decimal:
    rate = Decimal(1) if currency == "USD" else EUR_USD
    return (amount * rate).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


@pytest.mark.django_db
def test_the_beat_day_by_day_and_the_rebuild_write_the_same_snapshots(history):
    """The tests below read the rebuild's rows: the beat's, carried a day at a time, are the same."""
    assert history["by_beat"] == history["rebuilt"]
    assert len(history["rebuilt"]) > 500


@pytest.mark.django_db
def test_mrr_and_active_equal_the_definition_every_day(history):
    series = {p.day: p for p in mrr_series(start=START, end=END, currency="USD")}
    for day in days():
        active = value_at(history, midnight(day + datetime.timedelta(days=1)))
        per_currency = defaultdict(Decimal)
        for value, currency in active.values():
            per_currency[currency] += value
        assert series[day].active == len(active), day
        assert series[day].by_currency == dict(per_currency), day
        assert series[day].mrr == sum((usd(v, c) for c, v in per_currency.items()), Decimal(0)), day
    assert max(p.active for p in series.values()) > 1000  # the history is not trivially small


@pytest.mark.django_db
def test_mrr_movement_adds_up_and_equals_the_definition(history):
    movements = {(m.day, m.currency): m for m in mrr_movement(start=START, end=END)}
    for day in days():
        before = value_at(history, midnight(day))
        after = value_at(history, midnight(day + datetime.timedelta(days=1)))
        expected = defaultdict(lambda: defaultdict(Decimal))
        for sid in before.keys() | after.keys():
            old, new = before.get(sid), after.get(sid)
            currency = (new or old)[1]
            e = expected[currency]
            e["start"] += old[0] if old else 0
            e["end"] += new[0] if new else 0
            if old is None:
                e["new" if history["first_paid"][sid] >= midnight(day) else "reactivation"] += new[0]
            elif new is None:
                e["churn"] += old[0]
            elif new[0] > old[0]:
                e["expansion"] += new[0] - old[0]
            elif new[0] < old[0]:
                e["contraction"] += old[0] - new[0]
        for currency, e in expected.items():
            m = movements[(day, currency)]
            assert m.start + m.new + m.reactivation + m.expansion - m.contraction - m.churn == m.end, (day, currency)
            got = {
                k: getattr(m, k) for k in ("start", "end", "new", "reactivation", "expansion", "contraction", "churn")
            }
            assert got == {k: e[k] for k in got}, (day, currency)
    kinds = {k: sum(getattr(m, k) for m in movements.values()) for k in ("new", "reactivation", "expansion", "churn")}
    assert all(total > 0 for total in kinds.values()), kinds  # every kind of movement happens in the history
    for segment in ("plan", "currency"):
        rows = mrr_movement(start=START, end=END, segment=segment)
        for m in rows:
            assert m.start + m.new + m.reactivation + m.expansion - m.contraction - m.churn == m.end, (m, segment)
        # Every segment's day starts where it ended the day before.
        ends = {(m.day, m.segment, m.currency): m.end for m in rows}
        for m in rows:
            assert ends.get((m.day - datetime.timedelta(days=1), m.segment, m.currency), 0) == m.start or (
                m.day == START
            ), (m, segment)


@pytest.mark.django_db
@pytest.mark.parametrize("segment", ["currency", "plan", "product", "country"])
def test_segments_sum_to_the_total_every_day(history, segment):
    total = {p.day: p for p in mrr_series(start=START, end=END, currency="USD")}
    for point in mrr_series(start=START, end=END, segment=segment, currency="USD"):
        assert sum(count for count, _ in point.by_segment.values()) == total[point.day].active
        assert sum(mrr for _, mrr in point.by_segment.values()) == total[point.day].mrr
    if segment == "plan":
        assert set(point.by_segment) == {"oracle-monthly", "oracle-annual"}


@pytest.mark.django_db
def test_churn_and_trial_conversion_equal_the_definition(history):
    for start, end in [(START, END), (datetime.date(2026, 2, 1), datetime.date(2026, 2, 28))]:
        at_start = value_at(history, midnight(start))
        churned = 0
        for i in range((end - start).days + 1):
            day = start + datetime.timedelta(days=i)
            churned += len(value_at(history, midnight(day)).keys() - value_at(history, midnight(day) + ONE_DAY).keys())
        result = churn(start=start, end=end)
        assert (result.active_at_start, result.churned) == (len(at_start), churned)
        assert churned > 0
        ended = [
            s
            for s in history["subs"]
            if s.trial_end and midnight(start) <= s.trial_end < midnight(end + datetime.timedelta(days=1))
        ]
        paid_any = set(
            SubscriptionPayment.objects.filter(
                subscription__in=[s.pk for s in ended], payment__kind__in=PERIOD_KINDS
            ).values_list("subscription_id", flat=True)
        )
        conversion = trial_conversion(start=start, end=end)
        assert (conversion.ended, conversion.converted) == (len(ended), len([s for s in ended if s.pk in paid_any]))
