"""The subscription metrics Finance reads: MRR, active subscriptions, churn, trial conversion, cohorts.

Definitions (the one place they are written; the Finance page links here and repeats them):

- **Paid period.** A subscription payment that was taken (succeeded, or refunded only in part:
  a payment refunded in full never bought a period) of kind initial, renewal or upgrade pays for
  ``[occurred_at, occurred_at + plan interval)`` (a month, or twelve, times the plan's count).
  Seat changes are prorations inside a period and buy none.
- **Active subscription** at an instant: one a paid period covers. Trials and grants are not
  active: nobody paid for them. A day's figure is taken at the end of the day (00:00 UTC next day).
- **MRR** on a day: over its active subscriptions, the latest covering payment's price net of
  tax (before the store's commission), divided by the months it pays for; per currency, and in the
  reporting currency at the day's reference rate (``settings.REPORTING_CURRENCY``).
- **MRR movement** on a day, per currency (no exchange rate in it, so a rate change is not a
  movement): from each subscription's MRR at the end of the day before to the end of the day,
  *new* (first ever paid period), *reactivation* (paid again after a lapse), *expansion* and
  *contraction* (a higher or lower price: upgrade, downgrade, seats) and *churn* (no longer
  active); start + new + reactivation + expansion - contraction - churn = end, every day.
- **Churn** over ``[start, end]``: subscriptions active at the start of ``start`` that are not
  active at the end of ``end``; the rate divides them by those active at the start.
- **Trial conversion** over ``[start, end]``: subscriptions whose trial ended in the range (and
  has ended); converted when a paid period starts at or after the subscription started.
- **Retention cohorts**: a subscription's cohort is the month of its first paid period; it is
  retained at month ``k`` when a paid period covers its first payment's instant plus ``k`` months.

Every figure is one set-based query over the payments and subscriptions (``generate_series`` for
the days), never a loop over rows.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import connections

from monetization.db_routing import read_alias
from monetization.models import Customer, Payment
from monetization.services.fx import RateTable

from .models import Plan, Subscription, SubscriptionPayment

PAID = (Payment.Status.SUCCEEDED, Payment.Status.PARTIALLY_REFUNDED)
PERIOD_KINDS = (Payment.Kind.INITIAL, Payment.Kind.RENEWAL, Payment.Kind.UPGRADE)
# What a chart may be cut by, and the column that says it.
SEGMENTS = {
    "": "''",
    "provider": "s.provider",
    "platform": "s.platform",
    "plan": "pl.code",
    "country": "c.country",
    "currency": "p.amount_currency",
}
# How far back a paid period can start and still cover a day: the longest plan interval.
LONGEST_PERIOD = datetime.timedelta(days=366 * 3)


def _tables() -> dict[str, str]:
    return {
        "sp": SubscriptionPayment._meta.db_table,
        "p": Payment._meta.db_table,
        "s": Subscription._meta.db_table,
        "pl": Plan._meta.db_table,
        "c": Customer._meta.db_table,
    }


def _periods_sql(segment: str) -> str:
    """Every paid period, its monthly value net of tax, currency and segment (a CTE body)."""
    if segment not in SEGMENTS:
        raise ValueError(f"unknown segment {segment!r}")
    t = _tables()
    months = "(CASE pl.interval WHEN 'year' THEN 12 ELSE 1 END * pl.interval_count)"
    return f"""
        SELECT sp.subscription_id AS sid, p.occurred_at AS starts,
               p.occurred_at + make_interval(months => {months}) AS ends,
               (p.amount - p.tax) / {months} AS monthly, p.amount_currency AS currency,
               {SEGMENTS[segment]}::text AS segment
        FROM {t["sp"]} sp
        JOIN {t["p"]} p ON p.id = sp.payment_id
        JOIN {t["s"]} s ON s.id = sp.subscription_id
        JOIN {t["pl"]} pl ON pl.id = s.plan_id
        JOIN {t["c"]} c ON c.id = s.customer_id
        WHERE p.status = ANY(%(paid)s) AND p.kind = ANY(%(kinds)s)
          AND p.occurred_at < %(until)s AND p.occurred_at >= %(since)s
    """  # noqa: S608 (table names from model metadata, segment from a fixed map; values are parameters)


def _midnight(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)


def _params(start: datetime.date, end: datetime.date) -> dict:
    return {
        "paid": [str(x) for x in PAID],
        "kinds": [str(x) for x in PERIOD_KINDS],
        "since": _midnight(start) - LONGEST_PERIOD,
        "until": _midnight(end + datetime.timedelta(days=1)),
        "start": start,
        "end": end,
    }


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
    sql = f"""
        WITH periods AS ({_periods_sql(segment)}),
        days AS (SELECT d::date AS day FROM generate_series(%(start)s::date, %(end)s::date, interval '1 day') d),
        covering AS (
            SELECT DISTINCT ON (days.day, periods.sid) days.day, periods.monthly, periods.currency, periods.segment
            FROM days JOIN periods
              ON periods.starts < days.day + 1 AND periods.ends > (days.day + 1)::timestamp AT TIME ZONE 'UTC'
            ORDER BY days.day, periods.sid, periods.starts DESC
        )
        SELECT day, segment, currency, count(*), sum(monthly) FROM covering GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    """  # noqa: S608 (table names from model metadata, segment from a fixed map; values are parameters)
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(sql, _params(start, end))
        rows = cursor.fetchall()
    rates = RateTable(currencies={r[2] for r in rows}, to=currency, start=start, end=end)
    days = {start + datetime.timedelta(days=i): None for i in range((end - start).days + 1)}
    series = {day: MrrDay(day=day) for day in days}
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


def mrr_movement(*, start: datetime.date, end: datetime.date) -> list[MrrMovement]:
    """Each day's MRR movement per currency over ``[start, end]`` (definitions above)."""
    t = _tables()
    sql = f"""
        WITH periods AS ({_periods_sql("")}),
        days AS (SELECT d::date AS day
                 FROM generate_series(%(start)s::date - 1, %(end)s::date, interval '1 day') d),
        covering AS (
            SELECT DISTINCT ON (days.day, periods.sid) days.day, periods.sid, periods.monthly, periods.currency
            FROM days JOIN periods
              ON periods.starts < days.day + 1 AND periods.ends > (days.day + 1)::timestamp AT TIME ZONE 'UTC'
            ORDER BY days.day, periods.sid, periods.starts DESC
        ),
        firsts AS (
            SELECT sp.subscription_id AS sid, min(p.occurred_at) AS first_paid
            FROM {t["sp"]} sp JOIN {t["p"]} p ON p.id = sp.payment_id
            WHERE p.status = ANY(%(paid)s) AND p.kind = ANY(%(kinds)s)
            GROUP BY sp.subscription_id
        ),
        pairs AS (
            SELECT COALESCE(a.day, b.day + 1) AS day, COALESCE(a.sid, b.sid) AS sid,
                   COALESCE(a.currency, b.currency) AS currency, b.monthly AS before, a.monthly AS after
            FROM (SELECT * FROM covering WHERE day >= %(start)s) a
            FULL OUTER JOIN (SELECT * FROM covering WHERE day < %(end)s) b ON b.sid = a.sid AND b.day = a.day - 1
        )
        SELECT pairs.day, pairs.currency,
               COALESCE(sum(before), 0), COALESCE(sum(after), 0),
               COALESCE(sum(after) FILTER (WHERE before IS NULL
                   AND f.first_paid >= pairs.day::timestamp AT TIME ZONE 'UTC'), 0),
               COALESCE(sum(after) FILTER (WHERE before IS NULL
                   AND f.first_paid < pairs.day::timestamp AT TIME ZONE 'UTC'), 0),
               COALESCE(sum(after - before) FILTER (WHERE after > before), 0),
               COALESCE(sum(before - after) FILTER (WHERE after < before), 0),
               COALESCE(sum(before) FILTER (WHERE after IS NULL), 0)
        FROM pairs JOIN firsts f ON f.sid = pairs.sid
        GROUP BY 1, 2 ORDER BY 1, 2
    """  # noqa: S608 (table names from model metadata; values are parameters)
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(sql, _params(start, end))
        rows = cursor.fetchall()
    return [
        MrrMovement(day, currency, before, new, reactivation, expansion, contraction, churned, after)
        for day, currency, before, after, new, reactivation, expansion, contraction, churned in rows
    ]


@dataclass(frozen=True)
class Churn:
    active_at_start: int
    churned: int

    @property
    def rate(self) -> Decimal | None:
        return Decimal(self.churned) / self.active_at_start if self.active_at_start else None


def churn(*, start: datetime.date, end: datetime.date) -> Churn:
    """Subscriptions active at the start of ``start`` and no longer active at the end of ``end``."""
    sql = f"""
        WITH periods AS ({_periods_sql("")}),
        at_start AS (SELECT DISTINCT sid FROM periods
                     WHERE starts < %(start)s::timestamp AT TIME ZONE 'UTC'
                       AND ends > %(start)s::timestamp AT TIME ZONE 'UTC'),
        at_end AS (SELECT DISTINCT sid FROM periods WHERE starts < %(until)s AND ends > %(until)s)
        SELECT (SELECT count(*) FROM at_start),
               (SELECT count(*) FROM (SELECT sid FROM at_start EXCEPT SELECT sid FROM at_end) gone)
    """  # noqa: S608 (table names from model metadata, segment from a fixed map; values are parameters)
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(sql, _params(start, end))
        active, churned = cursor.fetchone()
    return Churn(active_at_start=active, churned=churned)


@dataclass(frozen=True)
class TrialConversion:
    ended: int
    converted: int

    @property
    def rate(self) -> Decimal | None:
        return Decimal(self.converted) / self.ended if self.ended else None


def trial_conversion(*, start: datetime.date, end: datetime.date, now: datetime.datetime) -> TrialConversion:
    """Trials that ended in ``[start, end]`` (and before ``now``), and how many of them were paid for."""
    t = _tables()
    sql = f"""
        SELECT count(*),
               count(*) FILTER (WHERE EXISTS (
                   SELECT 1 FROM {t["sp"]} sp JOIN {t["p"]} p ON p.id = sp.payment_id
                   WHERE sp.subscription_id = s.id AND p.status = ANY(%(paid_any)s) AND p.kind = ANY(%(kinds)s)
                     AND p.occurred_at >= s.started_at))
        FROM {t["s"]} s
        WHERE s.trial_end >= %(from)s AND s.trial_end < %(until)s AND s.trial_end <= %(now)s
    """  # noqa: S608 (table names from model metadata, segment from a fixed map; values are parameters)
    params = {
        "paid_any": [
            str(x) for x in (*PAID, Payment.Status.REFUNDED)
        ],  # a trial paid for converted, even if refunded since
        "kinds": [str(x) for x in PERIOD_KINDS],
        "from": _midnight(start),
        "until": _midnight(end + datetime.timedelta(days=1)),
        "now": now,
    }
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(sql, params)
        ended, converted = cursor.fetchone()
    return TrialConversion(ended=ended, converted=converted)


@dataclass
class Cohort:
    month: datetime.date
    size: int
    retained: list[int]  # retained[k]: still active k months after the first payment

    def share(self, k: int) -> Decimal | None:
        return Decimal(self.retained[k]) / self.size if self.size and k < len(self.retained) else None


def retention_cohorts(*, start: datetime.date, end: datetime.date, months: int, now: datetime.datetime) -> list[Cohort]:
    """Cohorts by month of first payment in ``[start, end]``, retained at each month offset up to ``months``.

    An offset that lies after ``now`` is not counted (a cohort's row stops where time does).
    """
    t = _tables()
    sql = f"""
        WITH periods AS (
            SELECT sp.subscription_id AS sid, p.occurred_at AS starts,
                   p.occurred_at + make_interval(months =>
                       (CASE pl.interval WHEN 'year' THEN 12 ELSE 1 END * pl.interval_count)) AS ends
            FROM {t["sp"]} sp
            JOIN {t["p"]} p ON p.id = sp.payment_id
            JOIN {t["s"]} s ON s.id = sp.subscription_id
            JOIN {t["pl"]} pl ON pl.id = s.plan_id
            WHERE p.status = ANY(%(paid)s) AND p.kind = ANY(%(kinds)s)
        ),
        firsts AS (SELECT sid, min(starts) AS first_paid FROM periods GROUP BY sid),
        members AS (
            SELECT sid, first_paid, date_trunc('month', first_paid AT TIME ZONE 'UTC')::date AS cohort
            FROM firsts WHERE first_paid >= %(from)s AND first_paid < %(until)s
        ),
        offsets AS (SELECT k FROM generate_series(0, %(months)s) k)
        SELECT m.cohort, o.k, count(DISTINCT m.sid) AS size, count(DISTINCT p.sid) AS kept
        FROM members m CROSS JOIN offsets o
        LEFT JOIN periods p ON p.sid = m.sid
             AND p.starts <= m.first_paid + make_interval(months => o.k)
             AND p.ends > m.first_paid + make_interval(months => o.k)
        WHERE m.first_paid + make_interval(months => o.k) <= %(now)s
        GROUP BY 1, 2 ORDER BY 1, 2
    """  # noqa: S608 (table names from model metadata, segment from a fixed map; values are parameters)
    params = {
        "paid": [str(x) for x in PAID],
        "kinds": [str(x) for x in PERIOD_KINDS],
        "from": _midnight(start.replace(day=1)),
        "until": _midnight(end + datetime.timedelta(days=1)),
        "months": months,
        "now": now,
    }
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    cohorts: dict[datetime.date, Cohort] = {}
    retained: dict[datetime.date, dict[int, int]] = defaultdict(dict)
    sizes: dict[tuple[datetime.date, int], int] = {}
    for month, k, size, kept in rows:
        sizes[(month, k)] = size
        if k == 0:
            cohorts[month] = Cohort(month=month, size=size, retained=[])
        # An offset some members have not reached yet is left out rather than shown short.
        if size == sizes[(month, 0)]:
            retained[month][k] = kept
    for month, cohort in cohorts.items():
        cohort.retained = [retained[month][k] for k in sorted(retained[month])]
    return list(cohorts.values())
