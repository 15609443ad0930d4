"""The daily snapshot tables Finance reads: subscription metrics per day and segment, revenue per day,
retention cohorts; computed set-based from the payments, refunds and subscriptions.

Each figure is the one ``subscriptions.selectors_finance`` defines (its docstring is where the
definitions are written). A range of days is recomputed in one ``INSERT ... SELECT ... ON CONFLICT
DO UPDATE`` per table, in one transaction with the removal of the segments it no longer finds, so a
reader sees either the old day or the new one. Refreshes are serialized by an advisory lock.

- :func:`finance_snapshots_refresh` recomputes ``[start, end]`` in chunks (the rebuild command).
- :func:`finance_snapshots_refresh_recent` (beat) recomputes today, yesterday and every day a late
  event marked (``monetization.services.finance_snapshots.finance_days_touch``), with the days its
  service period may cover after it.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection, transaction

from monetization import clock
from monetization.models import Customer, Payment
from monetization.services.finance_snapshots import (
    finance_dirty_days_take,
    midnight,
    refresh_stamp,
    revenue_days_refresh,
)
from subscriptions.models import MetricsDay, Plan, Product, RetentionCell, Subscription, SubscriptionPayment
from subscriptions.selectors_finance import PAID, PERIOD_KINDS, months_sql, periods_sql

CHUNK_DAYS = 31
COHORT_MONTHS_BACK = 25
COHORT_OFFSETS = 12
# Any number will do: it only has to be the same for every refresh.
REFRESH_LOCK = 716_016
Progress = Callable[[int, int], None]


def _tables() -> dict[str, str]:
    return {
        "sp": SubscriptionPayment._meta.db_table,
        "p": Payment._meta.db_table,
        "s": Subscription._meta.db_table,
        "pl": Plan._meta.db_table,
        "pr": Product._meta.db_table,
        "c": Customer._meta.db_table,
        "md": MetricsDay._meta.db_table,
        "rc": RetentionCell._meta.db_table,
    }


FIGURES = (
    "active",
    "mrr",
    "mrr_start",
    "new",
    "reactivation",
    "expansion",
    "contraction",
    "churn",
    "new_count",
    "reactivation_count",
    "churn_count",
    "trials_started",
    "trials_ended",
    "trials_converted",
)
SEGMENT_COLUMNS = ("product", "plan", "platform", "provider", "country", "currency")


def _metrics_sql() -> str:
    t = _tables()
    paid_before = f"""
        SELECT 1 FROM {t["sp"]} sp2 JOIN {t["p"]} p2 ON p2.id = sp2.payment_id
        WHERE sp2.subscription_id = {{sid}} AND p2.status = ANY(%(paid)s) AND p2.kind = ANY(%(kinds)s)
    """  # noqa: S608 (table names from model metadata)
    converted = paid_before.format(sid="s.id") + " AND p2.occurred_at >= s.started_at"
    returning = paid_before.format(sid="pairs.sid") + " AND p2.occurred_at < pairs.day::timestamp AT TIME ZONE 'UTC'"
    segment = "pr.code, pl.code, s.platform, s.provider, c.country"
    joins = f"""
        JOIN {t["pl"]} pl ON pl.id = s.plan_id JOIN {t["pr"]} pr ON pr.id = pl.product_id
        JOIN {t["c"]} c ON c.id = s.customer_id
    """
    columns = ", ".join(("day", *SEGMENT_COLUMNS, *FIGURES, "refreshed_at"))
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in (*FIGURES, "refreshed_at"))
    return f"""
        WITH periods AS ({periods_sql()}),
        covering AS (
            SELECT DISTINCT ON (g.day, periods.sid) g.day::date AS day, periods.sid, periods.monthly, periods.currency
            FROM periods CROSS JOIN LATERAL generate_series(
                greatest((periods.starts AT TIME ZONE 'UTC')::date, %(first)s::date),
                least((periods.ends AT TIME ZONE 'UTC')::date, %(end)s::date), interval '1 day') g(day)
            WHERE periods.starts < (g.day::date + 1)::timestamp AT TIME ZONE 'UTC'
              AND periods.ends > (g.day::date + 1)::timestamp AT TIME ZONE 'UTC'
            ORDER BY g.day, periods.sid, periods.starts DESC, periods.pid DESC
        ),
        pairs AS (
            SELECT COALESCE(a.day, b.day + 1) AS day, COALESCE(a.sid, b.sid) AS sid,
                   COALESCE(a.currency, b.currency) AS currency, b.monthly AS before, a.monthly AS after
            FROM (SELECT * FROM covering WHERE day >= %(start)s) a
            FULL OUTER JOIN (SELECT * FROM covering WHERE day < %(end)s) b ON b.sid = a.sid AND b.day = a.day - 1
        ),
        moved AS MATERIALIZED (
            SELECT pairs.*, CASE WHEN pairs.before IS NULL THEN EXISTS ({returning}) END AS back FROM pairs
        ),
        mrr AS (
            SELECT m.day, {segment}, m.currency,
                   count(*) FILTER (WHERE after IS NOT NULL), COALESCE(sum(after), 0), COALESCE(sum(before), 0),
                   COALESCE(sum(after) FILTER (WHERE NOT back), 0), COALESCE(sum(after) FILTER (WHERE back), 0),
                   COALESCE(sum(after - before) FILTER (WHERE after > before), 0),
                   COALESCE(sum(before - after) FILTER (WHERE after < before), 0),
                   COALESCE(sum(before) FILTER (WHERE after IS NULL), 0),
                   count(*) FILTER (WHERE NOT back), count(*) FILTER (WHERE back),
                   count(*) FILTER (WHERE after IS NULL), 0, 0, 0
            FROM moved m JOIN {t["s"]} s ON s.id = m.sid {joins}
            GROUP BY m.day, {segment}, m.currency
        ),
        trial_days AS (
            SELECT s.id, (s.started_at AT TIME ZONE 'UTC')::date AS day, 1 AS started, 0 AS ended, 0 AS converted
            FROM {t["s"]} s
            WHERE s.trial_end IS NOT NULL AND s.started_at >= %(since)s AND s.started_at < %(until)s
            UNION ALL
            SELECT s.id, (s.trial_end AT TIME ZONE 'UTC')::date, 0, 1,
                   CASE WHEN EXISTS ({converted.replace("%(paid)s", "%(paid_any)s")}) THEN 1 ELSE 0 END
            FROM {t["s"]} s
            WHERE s.trial_end >= %(since)s AND s.trial_end < %(until)s AND s.trial_end <= %(now)s
        ),
        trials AS (
            SELECT d.day, {segment}, '', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                   sum(d.started), sum(d.ended), sum(d.converted)
            FROM trial_days d JOIN {t["s"]} s ON s.id = d.id {joins}
            GROUP BY d.day, {segment}
        )
        INSERT INTO {t["md"]} ({columns})
        SELECT {", ".join(f"x{i}" for i in range(7))}, {", ".join(f"sum(f{i})" for i in range(len(FIGURES)))},
               %(stamp)s
        FROM (SELECT * FROM mrr UNION ALL SELECT * FROM trials)
             AS x({", ".join(f"x{i}" for i in range(7))}, {", ".join(f"f{i}" for i in range(len(FIGURES)))})
        GROUP BY {", ".join(f"x{i}" for i in range(7))}
        ON CONFLICT (day, {", ".join(SEGMENT_COLUMNS)}) DO UPDATE SET {updates}
    """  # noqa: S608 (table names from model metadata; values are parameters)


def metrics_days_refresh(*, start: datetime.date, end: datetime.date, now: datetime.datetime) -> int:
    """Recompute the metrics snapshot of every day in ``[start, end]`` (caller's transaction)."""
    first = start - datetime.timedelta(days=1)  # the day before: where each day's movement starts from
    params = {
        "paid": [str(x) for x in PAID],
        "paid_any": [str(x) for x in (*PAID, Payment.Status.REFUNDED)],  # a trial paid for converted
        "kinds": [str(x) for x in PERIOD_KINDS],
        "first": first,
        "start": start,
        "end": end,
        "since": midnight(start),
        "until": midnight(end + datetime.timedelta(days=1)),
        # A period paid longer ago than the longest plan in the catalog covers none of these days.
        "periods_since": midnight(first) - datetime.timedelta(days=_longest_period_days()),
        "now": now,
    }
    t = _tables()
    with connection.cursor() as cursor:
        params["stamp"] = refresh_stamp(cursor)
        cursor.execute(_metrics_sql(), params)
        written = cursor.rowcount
        cursor.execute(
            f"DELETE FROM {t['md']} WHERE day BETWEEN %s AND %s AND refreshed_at <> %s",  # noqa: S608
            [start, end, params["stamp"]],
        )
    return written


def retention_refresh(*, now: datetime.datetime) -> int:
    """Recompute the retention cells of the cohorts of the last ``COHORT_MONTHS_BACK`` months."""
    t = _tables()
    sql = f"""
        WITH periods AS (
            SELECT sp.subscription_id AS sid, p.occurred_at AS starts,
                   p.occurred_at + make_interval(months => {months_sql()}) AS ends
            FROM {t["sp"]} sp
            JOIN {t["p"]} p ON p.id = sp.payment_id
            JOIN {t["s"]} s ON s.id = sp.subscription_id
            JOIN {t["pl"]} pl ON pl.id = s.plan_id
            WHERE p.status = ANY(%(paid)s) AND p.kind = ANY(%(kinds)s)
        ),
        firsts AS (SELECT sid, min(starts) AS first_paid FROM periods GROUP BY sid),
        members AS (
            SELECT sid, first_paid, date_trunc('month', first_paid AT TIME ZONE 'UTC')::date AS cohort
            FROM firsts WHERE first_paid >= %(from)s AND first_paid <= %(now)s
        ),
        offsets AS (SELECT k FROM generate_series(0, %(months)s) k)
        INSERT INTO {t["rc"]} (cohort, "offset", size, kept, refreshed_at)
        SELECT m.cohort, o.k, count(DISTINCT m.sid), count(DISTINCT p.sid), %(stamp)s
        FROM members m CROSS JOIN offsets o
        LEFT JOIN periods p ON p.sid = m.sid
             AND p.starts <= m.first_paid + make_interval(months => o.k)
             AND p.ends > m.first_paid + make_interval(months => o.k)
        WHERE m.first_paid + make_interval(months => o.k) <= %(now)s
        GROUP BY 1, 2
        ON CONFLICT (cohort, "offset") DO UPDATE SET
            size = EXCLUDED.size, kept = EXCLUDED.kept, refreshed_at = EXCLUDED.refreshed_at
    """  # noqa: S608 (table names from model metadata; values are parameters)
    start = (now.date().replace(day=1) - datetime.timedelta(days=31 * (COHORT_MONTHS_BACK - 1))).replace(day=1)
    params = {
        "paid": [str(x) for x in PAID],
        "kinds": [str(x) for x in PERIOD_KINDS],
        "from": midnight(start),
        "now": now,
        "months": COHORT_OFFSETS,
    }
    with connection.cursor() as cursor:
        params["stamp"] = refresh_stamp(cursor)
        cursor.execute(sql, params)
        written = cursor.rowcount
        cursor.execute(f"DELETE FROM {t['rc']} WHERE refreshed_at <> %s", [params["stamp"]])  # noqa: S608
    return written


def _lock(cursor) -> None:
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [REFRESH_LOCK])
    # The planner cannot size a full join of days and it overestimates it by orders of magnitude:
    # compiling the statement (JIT) then costs seconds where running it costs milliseconds.
    cursor.execute("SET LOCAL jit = off")
    # A month of days over a million subscriptions sorts millions of (day, subscription) rows: in
    # memory, not in temporary files (4 MB, the default, spills them to disk).
    cursor.execute("SET LOCAL work_mem = '256MB'")


def _days(start: datetime.date, end: datetime.date) -> int:
    return (end - start).days + 1


@dataclass
class RefreshResult:
    ranges: list[tuple[datetime.date, datetime.date]] = field(default_factory=list)
    days: int = 0
    rows: int = 0


def finance_snapshots_refresh(
    *,
    start: datetime.date,
    end: datetime.date,
    now: datetime.datetime | None = None,
    progress: Progress | None = None,
    cohorts: bool = True,
) -> RefreshResult:
    """Recompute every snapshot of ``[start, end]``, ``CHUNK_DAYS`` days a transaction."""
    now = now or clock.now()
    result = RefreshResult(ranges=[(start, end)])
    total = _days(start, end)
    chunk_start = start
    while chunk_start <= end:
        chunk_end = min(end, chunk_start + datetime.timedelta(days=CHUNK_DAYS - 1))
        with transaction.atomic(), connection.cursor() as cursor:
            _lock(cursor)
            result.rows += revenue_days_refresh(start=chunk_start, end=chunk_end)
            result.rows += metrics_days_refresh(start=chunk_start, end=chunk_end, now=now)
        result.days += _days(chunk_start, chunk_end)
        if progress:
            progress(result.days, total)
        chunk_start = chunk_end + datetime.timedelta(days=1)
    if cohorts:
        with transaction.atomic(), connection.cursor() as cursor:
            _lock(cursor)
            result.rows += retention_refresh(now=now)
    return result


def _longest_period_days() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(max({months_sql()}), 1) FROM {_tables()['pl']} pl", [])  # noqa: S608
        return cursor.fetchone()[0] * 31 + 1


def _merge(ranges: list[tuple[datetime.date, datetime.date]]) -> list[tuple[datetime.date, datetime.date]]:
    merged: list[tuple[datetime.date, datetime.date]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + datetime.timedelta(days=1):
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def finance_snapshots_refresh_recent(*, now: datetime.datetime | None = None) -> RefreshResult:
    """Today, yesterday and every marked day with the days its service period may cover (beat).

    The marks are taken in the same transaction as the recomputation: a crash leaves them for the next run.
    """
    now = now or clock.now()
    today = now.date()
    with transaction.atomic():
        with connection.cursor() as cursor:
            _lock(cursor)
        dirty = finance_dirty_days_take()
        reach = datetime.timedelta(days=_longest_period_days()) if dirty else datetime.timedelta(0)
        ranges = _merge(
            [(today - datetime.timedelta(days=1), today)] + [(d, min(today, d + reach)) for d in dirty if d <= today]
        )
        result = RefreshResult()
        for start, end in ranges:
            part = finance_snapshots_refresh(start=start, end=end, now=now, cohorts=False)
            result.ranges.append((start, end))
            result.days += part.days
            result.rows += part.rows
        result.rows += retention_refresh(now=now)
    return result
