"""The subscription metrics Finance reads: MRR, active subscriptions, churn, trial conversion, cohorts.

Definitions (the one place they are written; the Finance page links here and repeats them):

- **Paid period.** A subscription payment that was taken (succeeded, or refunded only in part:
  a payment refunded in full never bought a period) of kind initial, renewal or upgrade pays for
  ``[occurred_at, occurred_at + plan interval)`` (a month, or twelve, times the plan's count).
  Seat changes are prorations inside a period and buy none.
- **Active subscription** at an instant: one a paid period covers. Trials and grants are not
  active: nobody paid for them. A day's figure is taken at the end of the day (00:00 UTC next day).
- **MRR** on a day: over its active subscriptions, the latest covering payment's price net of
  tax (before the store's commission), divided by the months it pays for (to 4 decimal places,
  once, so that every sum of it adds up exactly); per currency, and in the
  reporting currency at the day's reference rate (``settings.REPORTING_CURRENCY``). Of two payments
  made at the same instant, the one recorded last is the latest.
- **MRR movement** on a day, per currency (no exchange rate in it, so a rate change is not a
  movement): from each subscription's MRR at the end of the day before to the end of the day,
  *new* (first ever paid period), *reactivation* (paid again after a lapse), *expansion* and
  *contraction* (a higher or lower price: upgrade, downgrade, seats) and *churn* (no longer
  active); start + new + reactivation + expansion - contraction - churn = end, every day and
  segment. A subscription's movement belongs to the segment it is in at the end of the day (at
  the start of it when it churned).
- **Churn** over ``[start, end]``: the day-by-day churns in the range (a subscription active at the
  end of a day before and not at the end of the day; one that lapses twice counts twice); the
  rate divides them by the subscriptions active at the start of ``start``.
- **Trial conversion** over ``[start, end]``: subscriptions whose trial ended in the range (and
  had ended when the day was last refreshed); converted when a paid period starts at or after
  the subscription started (even one refunded since). **New trials**: subscriptions with a trial,
  by the day they started.
- **Retention cohorts**: a subscription's cohort is the month of its first paid period; it is
  retained at month ``k`` when a paid period covers its first payment's instant plus ``k`` months.
- **Segments**: product, plan, platform, provider and country are the subscription's (as they are
  when the day is refreshed), currency the payment's.

The figures are computed set-based into daily snapshot tables (``MetricsDay``, ``RetentionCell``,
``monetization.RevenueDay``; ``subscriptions.services.finance_snapshots``), refreshed by beat and
rebuilt by ``manage.py rebuild_finance_snapshots``; the readers below sum snapshot rows only.
Every figure in a row is additive: a segment, or the total, is a ``GROUP BY`` of the rows.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db.models import Q, Sum

from monetization.models import Payment
from monetization.services.fx import RateTable

from .models import MetricsDay, Plan, RetentionCell, Subscription, SubscriptionPayment

PAID = (Payment.Status.SUCCEEDED, Payment.Status.PARTIALLY_REFUNDED)
PERIOD_KINDS = (Payment.Kind.INITIAL, Payment.Kind.RENEWAL, Payment.Kind.UPGRADE)
# What a chart may be cut by: the snapshot column that says it.
SEGMENTS = {
    "": "",
    "product": "product",
    "plan": "plan",
    "platform": "platform",
    "provider": "provider",
    "country": "country",
    "currency": "currency",
}


def months_sql(plan: str = "pl") -> str:
    """The months a plan's period lasts, in SQL over the plan table aliased ``plan``."""
    return f"(CASE {plan}.interval WHEN 'year' THEN 12 ELSE 1 END * {plan}.interval_count)"


def periods_sql() -> str:
    """Every paid period that may cover a day up to ``%(until)s`` and paid since ``%(periods_since)s``:
    subscription, start, end, monthly value net of tax and currency (a CTE body; parameters ``paid``,
    ``kinds``). ``periods_since`` is a constant (the first day less the longest plan in the catalog),
    not a subquery, so that the planner sizes the payments' range from the index."""
    sp, p, s, pl = (
        SubscriptionPayment._meta.db_table,
        Payment._meta.db_table,
        Subscription._meta.db_table,
        Plan._meta.db_table,
    )
    months = months_sql()
    return f"""
        SELECT sp.subscription_id AS sid, p.id AS pid, p.occurred_at AS starts,
               p.occurred_at + make_interval(months => {months}) AS ends,
               round((p.amount - p.tax) / {months}, 4) AS monthly, p.amount_currency AS currency
        FROM {sp} sp
        JOIN {p} p ON p.id = sp.payment_id
        JOIN {s} s ON s.id = sp.subscription_id
        JOIN {pl} pl ON pl.id = s.plan_id
        WHERE p.status = ANY(%(paid)s) AND p.kind = ANY(%(kinds)s) AND p.occurred_at < %(until)s
          AND p.occurred_at >= %(periods_since)s
    """  # noqa: S608 (table names from model metadata; values are parameters)


def _rows(start: datetime.date, end: datetime.date, segment: str = "", **filters):
    if segment not in SEGMENTS:
        raise ValueError(f"unknown segment {segment!r}")
    rows = MetricsDay.objects.filter(day__gte=start, day__lte=end, **filters)
    return rows, ([SEGMENTS[segment]] if segment else [])


def _values(group: list[str]) -> list[str]:
    """The columns to group by: day, currency and the segment's (once, when it is the currency)."""
    return ["day", "currency", *[g for g in group if g != "currency"]]


@dataclass
class MrrDay:
    day: datetime.date
    active: int = 0
    mrr: Decimal | None = Decimal(0)  # in the reporting currency; None when a rate is missing
    by_currency: dict[str, Decimal] = field(default_factory=dict)
    by_segment: dict[str, tuple[int, Decimal | None]] = field(default_factory=dict)
    missing_rates: set[str] = field(default_factory=set)


def mrr_series(*, start: datetime.date, end: datetime.date, segment: str = "", currency: str = "") -> list[MrrDay]:
    """Active subscriptions and MRR at the end of each day of ``[start, end]``, by segment."""
    currency = currency or settings.REPORTING_CURRENCY
    qs, group = _rows(start, end, segment)
    rows = [
        (r["day"], r[group[0]] if group else "", r["currency"], r["n"], r["value"])
        for r in qs.exclude(currency="")
        .values(*_values(group))
        .annotate(n=Sum("active"), value=Sum("mrr"))
        .filter(n__gt=0)
        .order_by(*_values(group))
    ]
    rates = RateTable(currencies={r[2] for r in rows}, to=currency, start=start, end=end)
    series = {
        start + datetime.timedelta(days=i): MrrDay(day=start + datetime.timedelta(days=i))
        for i in range((end - start).days + 1)
    }
    for day, seg, cur, count, monthly in rows:
        point = series[day]
        point.active += count
        point.by_currency[cur] = point.by_currency.get(cur, Decimal(0)) + monthly
        converted = rates.convert(monthly, cur, day)
        seg_count, seg_mrr = point.by_segment.get(seg, (0, Decimal(0)))
        if converted is None:
            point.missing_rates.add(cur)
            point.mrr = None
            seg_mrr = None
        else:
            if point.mrr is not None:
                point.mrr += converted
            if seg_mrr is not None:
                seg_mrr += converted
        point.by_segment[seg] = (seg_count + count, seg_mrr)
    return list(series.values())


@dataclass
class MrrMovement:
    day: datetime.date
    currency: str
    start: Decimal = Decimal(0)
    new: Decimal = Decimal(0)
    reactivation: Decimal = Decimal(0)
    expansion: Decimal = Decimal(0)
    contraction: Decimal = Decimal(0)
    churn: Decimal = Decimal(0)
    end: Decimal = Decimal(0)
    segment: str = ""


MOVEMENT = ("mrr_start", "new", "reactivation", "expansion", "contraction", "churn", "mrr")


def mrr_movement(*, start: datetime.date, end: datetime.date, segment: str = "") -> list[MrrMovement]:
    """Each day's MRR movement per currency (and segment) over ``[start, end]`` (definitions above)."""
    qs, group = _rows(start, end, segment)
    rows = (
        qs.exclude(currency="")
        .values(*_values(group))
        .annotate(**{f"t_{name}": Sum(name) for name in MOVEMENT})
        .order_by(*_values(group))
    )
    return [
        MrrMovement(
            r["day"],
            r["currency"],
            r["t_mrr_start"],
            r["t_new"],
            r["t_reactivation"],
            r["t_expansion"],
            r["t_contraction"],
            r["t_churn"],
            r["t_mrr"],
            segment=r[group[0]] if group else "",
        )
        for r in rows
    ]


@dataclass(frozen=True)
class Churn:
    active_at_start: int
    churned: int

    @property
    def rate(self) -> Decimal | None:
        return Decimal(self.churned) / self.active_at_start if self.active_at_start else None


def churn(*, start: datetime.date, end: datetime.date, **filters) -> Churn:
    """Churns over ``[start, end]`` beside the subscriptions active at the start of ``start``."""
    before = start - datetime.timedelta(days=1)
    totals = MetricsDay.objects.filter(day__gte=before, day__lte=end, **filters).aggregate(
        active=Sum("active", filter=Q(day=before)),
        churned=Sum("churn_count", filter=Q(day__gte=start)),
    )
    return Churn(active_at_start=totals["active"] or 0, churned=totals["churned"] or 0)


@dataclass(frozen=True)
class TrialConversion:
    ended: int
    converted: int
    started: int = 0

    @property
    def rate(self) -> Decimal | None:
        return Decimal(self.converted) / self.ended if self.ended else None


def trial_conversion(*, start: datetime.date, end: datetime.date, **filters) -> TrialConversion:
    """Trials that ended in ``[start, end]`` and how many of them were paid for; trials started."""
    totals = MetricsDay.objects.filter(day__gte=start, day__lte=end, **filters).aggregate(
        ended=Sum("trials_ended"), converted=Sum("trials_converted"), started=Sum("trials_started")
    )
    return TrialConversion(
        ended=totals["ended"] or 0, converted=totals["converted"] or 0, started=totals["started"] or 0
    )


@dataclass
class Cohort:
    month: datetime.date
    size: int
    retained: list[int]  # retained[k]: still active k months after the first payment

    def share(self, k: int) -> Decimal | None:
        return Decimal(self.retained[k]) / self.size if self.size and k < len(self.retained) else None


def retention_cohorts(*, start: datetime.date, end: datetime.date, months: int) -> list[Cohort]:
    """Cohorts by month of first payment in ``[start, end]``, retained at each month offset up to ``months``.

    An offset that lay after the last refresh is not counted (a cohort's row stops where time does),
    nor one that only some of the cohort had reached (it would show short).
    """
    cells = RetentionCell.objects.filter(
        cohort__gte=start.replace(day=1), cohort__lte=end, offset__lte=months
    ).order_by("cohort", "offset")
    cohorts: dict[datetime.date, Cohort] = {}
    retained: dict[datetime.date, list[int]] = defaultdict(list)
    for cell in cells:
        if cell.offset == 0:
            cohorts[cell.cohort] = Cohort(month=cell.cohort, size=cell.size, retained=[])
        if cell.cohort in cohorts and cell.size == cohorts[cell.cohort].size:
            retained[cell.cohort].append(cell.kept)
    for month, cohort in cohorts.items():
        cohort.retained = retained[month]
    return list(cohorts.values())
