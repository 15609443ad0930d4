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
    finance_dirty_days_forget,
    finance_dirty_days_read,
    midnight,
    refresh_stamp,
    revenue_days_refresh,
)
from subscriptions.models import (
    FinanceCarry,
    FinancePeriodEnd,
    FinanceSegmentChange,
    FinanceState,
    MetricsDay,
    Plan,
    Product,
    RetentionCell,
    Subscription,
    SubscriptionPayment,
)
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


def _segment_sql() -> tuple[str, str]:
    """A subscription's segment as it is now (the columns, and the joins from ``s`` that give them)."""
    t = _tables()
    joins = f"""
        JOIN {t["pl"]} pl ON pl.id = s.plan_id JOIN {t["pr"]} pr ON pr.id = pl.product_id
        JOIN {t["c"]} c ON c.id = s.customer_id
    """
    return "pr.code, pl.code, s.platform, s.provider, c.country", joins


def _params(*, at: datetime.datetime, now: datetime.datetime | None = None) -> dict:
    """The parameters of ``periods_sql`` (and the statements below) for the periods covering ``at``."""
    return {
        "paid": [str(x) for x in PAID],
        "paid_any": [str(x) for x in (*PAID, Payment.Status.REFUNDED)],  # a trial paid for converted
        "kinds": [str(x) for x in PERIOD_KINDS],
        "until": at,
        # A period paid longer ago than the longest plan in the catalog covers none of these instants.
        "periods_since": at - datetime.timedelta(days=_longest_period_days()),
        "now": now,
    }


def _state_seed(cursor, *, day: datetime.date) -> None:
    """Derive every subscription's state at the end of ``day`` from the payments whole (the start of a
    carry: a rebuild's first day, or a refresh that starts before the state table's first day)."""
    t, st, pe = _tables(), FinanceState._meta.db_table, FinancePeriodEnd._meta.db_table
    segment, joins = _segment_sql()
    cursor.execute(f"DELETE FROM {st}", [])  # noqa: S608
    cursor.execute(f"DELETE FROM {pe}", [])  # noqa: S608
    # The seed reads every segment as it is now: a change up to its day is never read again (a carry reads
    # the days after its seed only).
    cursor.execute(
        f"DELETE FROM {FinanceSegmentChange._meta.db_table} WHERE changed_at < %s",  # noqa: S608
        [midnight(day + datetime.timedelta(days=1))],
    )
    cursor.execute(
        f"""
        WITH periods AS ({periods_sql()}),
        latest AS MATERIALIZED (
            SELECT DISTINCT ON (sid) sid, monthly, currency, ends FROM periods
            WHERE starts < %(until)s AND ends > %(until)s ORDER BY sid, starts DESC, pid DESC
        ),
        ends AS (INSERT INTO {pe} (subscription_id, ends, day) SELECT sid, ends, %(day)s FROM latest)
        INSERT INTO {st} (subscription_id, since, until, product, plan, platform, provider, country, currency, mrr)
        SELECT l.sid, %(day)s, NULL, {segment}, l.currency, l.monthly
        FROM latest l JOIN {t["s"]} s ON s.id = l.sid {joins}
        """,  # noqa: S608 (table names from model metadata; values are parameters)
        {**_params(at=midnight(day + datetime.timedelta(days=1))), "day": day},
    )
    # Every row is new: without statistics the planner would take the open rows for a handful.
    cursor.execute(f"ANALYZE {st}", [])
    cursor.execute(f"ANALYZE {pe}", [])


def _state_truncate(cursor, *, day: datetime.date) -> None:
    """Forget what the days after ``day`` carried: the state is again the one at the end of ``day``.

    The period ends those days recorded stay: carrying them again records the same ones (beat carries
    yesterday and today again every few minutes, and rewrote thousands of rows each time), and one a
    late event took back only makes its subscription a candidate on the day it names, where the
    carry recomputes it exactly (as for a period superseded before its end)."""
    st = FinanceState._meta.db_table
    # The rows of the days after ``day`` by their indexes: ``since`` only grows, so the statistics never
    # know the last days, and the planner took a range of them for a tenth of the table and scanned it.
    cursor.execute("SELECT current_setting('enable_seqscan')", [])
    seqscan = cursor.fetchone()[0]
    cursor.execute("SET LOCAL enable_seqscan = off", [])
    cursor.execute(f"DELETE FROM {st} WHERE since > %s", [day])  # noqa: S608
    cursor.execute(f"UPDATE {st} SET until = NULL WHERE until > %s", [day])  # noqa: S608
    cursor.execute("SELECT set_config('enable_seqscan', %s, true)", [seqscan])


STATE_COLUMNS = ("product", "plan", "platform", "provider", "country", "currency", "mrr")


def _moved_sql() -> str:
    """The subscriptions that may move on the day ``[%(t0)s, %(t1)s)``, with what the day before counted
    (``b_*``, ``before``: their open state row) and what the end of the day counts (``after``: the latest
    paid period covering it, and its end ``a_ends``; the segment as it is now). A subscription moves
    when a paid period starts in the day (a payment of the day, by the payments' time index), when its
    latest period ends in it (``FinancePeriodEnd``, by its index: the latest period at the end of the
    day before was recorded on the day it became the latest), or when what segments it changed that day
    (``FinanceSegmentChange``: a plan change moves it to another segment without a payment); every
    other one is where the day before left it. Periods of one subscription all last its plan's length,
    so the latest started covering one also ends last: none but the latest can end a subscription's
    cover."""
    t, st, pe = _tables(), FinanceState._meta.db_table, FinancePeriodEnd._meta.db_table
    sc = FinanceSegmentChange._meta.db_table
    months_of = months_sql()
    now = ", ".join(("product", "plan", "platform", "provider", "country", "a_currency", "after"))
    was = ", ".join(f"b_{c}" for c in STATE_COLUMNS[:-1]) + ", before"
    # ``changed``: the segment or the MRR, what makes the state a new row.
    return f"""
        SELECT *, ({now}) IS DISTINCT FROM ({was}) AS changed FROM (
        WITH day_paid AS MATERIALIZED (
            SELECT sp.subscription_id AS sid, p.id AS pid, p.occurred_at, p.status, p.kind, p.amount, p.tax,
                   p.amount_currency
            FROM {t["p"]} p JOIN {t["sp"]} sp ON sp.payment_id = p.id
            WHERE p.occurred_at >= %(t0)s AND p.occurred_at < %(t1)s
        ),
        -- A paid period starting in the day covers its end and is the latest to: no need to read the
        -- subscription's older payments.
        day_latest AS (
            SELECT DISTINCT ON (sid) sid, amount, tax, amount_currency, occurred_at FROM day_paid
            WHERE status = ANY(%(paid)s) AND kind = ANY(%(kinds)s)
            ORDER BY sid, occurred_at DESC, pid DESC
        ),
        plans AS MATERIALIZED (
            SELECT pl.id, pl.code AS plan, pr.code AS product, {months_of} AS months
            FROM {t["pl"]} pl JOIN {t["pr"]} pr ON pr.id = pl.product_id
        ),
        cand AS (
            SELECT sid, bool_or(resegment) AS resegment FROM (
                SELECT sid, false AS resegment FROM day_paid
                UNION ALL
                SELECT subscription_id, false FROM {pe} WHERE ends > %(t0)s AND ends <= %(t1)s
                UNION ALL
                SELECT subscription_id, true FROM {sc} WHERE changed_at >= %(t0)s AND changed_at < %(t1)s
            ) found GROUP BY sid
        )
        SELECT cand.sid, seg.product, seg.plan, seg.platform, seg.provider, seg.country,
               b.product AS b_product, b.plan AS b_plan, b.platform AS b_platform, b.provider AS b_provider,
               b.country AS b_country, b.currency AS b_currency, b.mrr AS before, b.id AS b_id,
               COALESCE(round((d.amount - d.tax) / seg.months, 4), a.monthly) AS after,
               COALESCE(d.amount_currency, a.currency) AS a_currency,
               COALESCE(d.occurred_at + make_interval(months => seg.months), a.ends) AS a_ends,
               CASE WHEN b.mrr IS NULL THEN e.paid IS NOT NULL END AS back
        FROM cand LEFT JOIN day_latest d ON d.sid = cand.sid
        -- A day's candidates are a few thousand of millions of subscriptions: each one's open state row
        -- by its index (OFFSET 0 keeps these lookups per candidate: joined flat, the planner would
        -- rather hash the whole tables); the catalog's few plans are hashed once.
        LEFT JOIN LATERAL (
            SELECT * FROM {st} WHERE subscription_id = cand.sid AND until IS NULL OFFSET 0
        ) b ON true
        LEFT JOIN plans pb ON pb.plan = b.plan
        -- Its segment as it is now: read (subscription and customer, by their keys) only when what
        -- segments it changed that day, or when it has no state row (it starts being counted) or its
        -- plan is no longer in the catalog; otherwise the segment its state row holds.
        LEFT JOIN LATERAL (
            SELECT ps.product, ps.plan, s.platform, s.provider, c.country, ps.months
            FROM {t["s"]} s JOIN {t["c"]} c ON c.id = s.customer_id JOIN plans ps ON ps.id = s.plan_id
            WHERE s.id = cand.sid AND (cand.resegment OR pb.id IS NULL) OFFSET 0
        ) now_ ON true
        CROSS JOIN LATERAL (
            SELECT now_.* WHERE now_.months IS NOT NULL
            UNION ALL
            SELECT b.product, b.plan, b.platform, b.provider, b.country, pb.months
            WHERE now_.months IS NULL AND NOT cand.resegment AND pb.id IS NOT NULL
        ) seg
        LEFT JOIN LATERAL (
            SELECT round((p.amount - p.tax) / seg.months, 4) AS monthly, p.amount_currency AS currency,
                   p.occurred_at + make_interval(months => seg.months) AS ends
            FROM {t["sp"]} sp JOIN {t["p"]} p ON p.id = sp.payment_id
            WHERE d.sid IS NULL AND sp.subscription_id = cand.sid
              AND p.status = ANY(%(paid)s) AND p.kind = ANY(%(kinds)s)
              AND p.occurred_at < %(t1)s AND p.occurred_at >= %(periods_since)s
              AND p.occurred_at + make_interval(months => seg.months) > %(t1)s
            ORDER BY p.occurred_at DESC, p.id DESC LIMIT 1
        ) a ON true
        -- Paid before the day, for one counted as new or as a reactivation (a lateral with LIMIT: as
        -- an EXISTS the planner may hash every payment once instead).
        LEFT JOIN LATERAL (
            SELECT true AS paid FROM {t["sp"]} sp JOIN {t["p"]} p ON p.id = sp.payment_id
            WHERE b.mrr IS NULL AND sp.subscription_id = cand.sid
              AND p.status = ANY(%(paid)s) AND p.kind = ANY(%(kinds)s) AND p.occurred_at < %(t0)s
            LIMIT 1
        ) e ON true
        WHERE b.mrr IS NOT NULL OR d.sid IS NOT NULL OR a.monthly IS NOT NULL
        ) moved
    """  # noqa: S608 (table names from model metadata; values are parameters)


def _day_sql(*, baseline_from_state: bool) -> str:
    """One day's metrics rows: the day before's active subscriptions and MRR per segment, less what the
    moved subscriptions were counted as there, plus their movement (``finance_moved``), plus the
    day's trials."""
    t, st = _tables(), FinanceState._meta.db_table
    segment, joins = _segment_sql()
    seg = ", ".join(SEGMENT_COLUMNS[:-1])
    zeros = lambda n: ", ".join(["0"] * n)  # noqa: E731
    if baseline_from_state:  # the day before is a seed: no metrics row was written for it
        baseline = f"""SELECT {seg}, currency, count(*), sum(mrr), sum(mrr), {zeros(11)}, count(*)
                       FROM {st} WHERE until IS NULL GROUP BY {seg}, currency"""  # noqa: S608
    else:
        baseline = f"""SELECT {seg}, currency, active, mrr, mrr, {zeros(11)}, active
                       FROM {t["md"]} WHERE day = %(before)s AND currency <> ''"""  # noqa: S608
    columns = ", ".join(("day", *SEGMENT_COLUMNS, *FIGURES, "refreshed_at"))
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in (*FIGURES, "refreshed_at"))
    figures = ", ".join(f"f{i}" for i in range(len(FIGURES)))
    return f"""
        WITH trial_days AS (
            SELECT s.id, 1 AS started, 0 AS ended, 0 AS converted
            FROM {t["s"]} s
            WHERE s.trial_end IS NOT NULL AND s.started_at >= %(t0)s AND s.started_at < %(t1)s
            UNION ALL
            SELECT s.id, 0, 1, (e.paid IS NOT NULL)::int
            FROM {t["s"]} s
            -- A lateral with LIMIT, not an EXISTS: the planner may hash every payment once for that.
            LEFT JOIN LATERAL (
                SELECT true AS paid FROM {t["sp"]} sp2 JOIN {t["p"]} p2 ON p2.id = sp2.payment_id
                WHERE sp2.subscription_id = s.id AND p2.status = ANY(%(paid_any)s) AND p2.kind = ANY(%(kinds)s)
                  AND p2.occurred_at >= s.started_at
                LIMIT 1
            ) e ON true
            WHERE s.trial_end >= %(t0)s AND s.trial_end < %(t1)s AND s.trial_end <= %(now)s
        ),
        rows AS (
            {baseline}
            UNION ALL
            -- A candidate that did not change (renewed at the same price in the same segment) adds as much
            -- as it takes out: only the changed ones are counted.
            SELECT b_product, b_plan, b_platform, b_provider, b_country, b_currency, -1, -before, -before,
                   {zeros(11)}, -1
            FROM finance_moved WHERE before IS NOT NULL AND changed
            UNION ALL
            SELECT product, plan, platform, provider, country, COALESCE(a_currency, b_currency),
                   (after IS NOT NULL)::int, COALESCE(after, 0), COALESCE(before, 0),
                   CASE WHEN before IS NULL AND NOT back THEN after ELSE 0 END,
                   CASE WHEN before IS NULL AND back THEN after ELSE 0 END,
                   CASE WHEN after > before THEN after - before ELSE 0 END,
                   CASE WHEN after < before THEN before - after ELSE 0 END,
                   CASE WHEN after IS NULL THEN before ELSE 0 END,
                   (before IS NULL AND NOT back)::int, (before IS NULL AND back)::int, (after IS NULL)::int,
                   0, 0, 0, 1
            FROM finance_moved WHERE changed
            UNION ALL
            SELECT {segment}, '', {zeros(11)}, d.started, d.ended, d.converted, 1
            FROM trial_days d JOIN {t["s"]} s ON s.id = d.id {joins}
        )
        INSERT INTO {t["md"]} ({columns})
        SELECT %(day)s, x.*, %(stamp)s FROM (
            SELECT {", ".join(SEGMENT_COLUMNS)}, {", ".join(f"sum(f{i})" for i in range(len(FIGURES)))}
            FROM rows AS r({", ".join(SEGMENT_COLUMNS)}, {figures}, presence)
            GROUP BY {", ".join(SEGMENT_COLUMNS)}
            -- A segment with nobody counted in it that day has no row, as if computed from scratch.
            HAVING sum(presence) > 0
        ) x
        ON CONFLICT (day, {", ".join(SEGMENT_COLUMNS)}) DO UPDATE SET {updates}
    """  # noqa: S608 (table names from model metadata; values are parameters)


def _state_carry_sql() -> tuple[str, str, str]:
    """Close the open state rows of the moved subscriptions whose segment or MRR changed; open their new
    ones; record when their latest periods end."""
    st = FinanceState._meta.db_table
    now = ", ".join(("product", "plan", "platform", "provider", "country", "a_currency", "after"))
    # By the open rows' keys: a day's few changed rows by the index, not by hashing the whole state.
    close = f"""
        UPDATE {st} SET until = %(day)s
        WHERE id = ANY(ARRAY(SELECT b_id FROM finance_moved WHERE changed AND b_id IS NOT NULL))
    """  # noqa: S608
    open_ = f"""
        INSERT INTO {st} (subscription_id, since, until, {", ".join(STATE_COLUMNS)})
        SELECT sid, %(day)s, NULL, {now} FROM finance_moved WHERE after IS NOT NULL AND changed
    """  # noqa: S608
    # The end of each moved subscription's latest period, for the day it ends (see ``_moved_sql``). A day
    # carried again finds its rows already there (``_state_truncate`` keeps them): read as one range of
    # the day's rows, not probed one by one (the conflict clause is then only a guard).
    pe = FinancePeriodEnd._meta.db_table
    ends = f"""
        WITH recorded AS MATERIALIZED (SELECT subscription_id, ends FROM {pe} WHERE day = %(day)s)
        INSERT INTO {pe} (subscription_id, ends, day)
        SELECT sid, a_ends, %(day)s FROM finance_moved m
        WHERE after IS NOT NULL
          AND NOT EXISTS (SELECT FROM recorded r WHERE r.subscription_id = m.sid AND r.ends = m.a_ends)
        ORDER BY a_ends, sid
        ON CONFLICT DO NOTHING
    """  # noqa: S608
    return close, open_, ends


def metrics_day_carry(cursor, *, day: datetime.date, now: datetime.datetime, baseline_from_state: bool) -> int:
    """Refresh one day's metrics from the state at the end of the day before, and carry the state to
    the end of ``day`` (caller's transaction, the refresh lock held)."""
    t0, t1 = midnight(day), midnight(day + datetime.timedelta(days=1))
    params = {
        **_params(at=t1, now=now),
        "t0": t0,
        "t1": t1,
        "day": day,
        "before": day - datetime.timedelta(days=1),
    }
    # One temporary table per transaction, emptied for each day: a table made and dropped per day would
    # hold its locks until commit, and a rebuild carries hundreds of days in one transaction.
    cursor.execute("SELECT to_regclass('pg_temp.finance_moved') IS NOT NULL, current_setting('enable_seqscan')", [])
    exists, seqscan = cursor.fetchone()
    # Every read of the day's movers is an index lookup or range. A rebuild grows the state and the
    # period ends from nothing inside one transaction, where their statistics still say empty: the
    # planner would then scan them whole once per candidate.
    cursor.execute("SET LOCAL enable_seqscan = off", [])
    if exists:
        cursor.execute("TRUNCATE finance_moved", [])
        cursor.execute(f"INSERT INTO finance_moved {_moved_sql()}", params)
    else:
        cursor.execute(f"CREATE TEMPORARY TABLE finance_moved ON COMMIT DROP AS {_moved_sql()}", params)
    cursor.execute("SELECT set_config('enable_seqscan', %s, true)", [seqscan])
    params["stamp"] = refresh_stamp(cursor)
    cursor.execute(_day_sql(baseline_from_state=baseline_from_state), params)
    written = cursor.rowcount
    cursor.execute(
        f"DELETE FROM {_tables()['md']} WHERE day = %s AND refreshed_at <> %s",  # noqa: S608
        [day, params["stamp"]],
    )
    for statement in _state_carry_sql():
        cursor.execute(statement, params)
    return written


def metrics_days_refresh(
    *, start: datetime.date, end: datetime.date, now: datetime.datetime, reseed: bool = False
) -> int:
    """Refresh the metrics of every day in ``[start, end]`` a day at a time, each from the day before's
    state (caller's transaction, the refresh lock held).

    The state must be the one at the end of ``start - 1``: when the state table holds that day it is
    cut back to it (the days after are carried again); otherwise, or with ``reseed``, it is derived
    from the payments whole at that day (as much work as computing one day from scratch)."""
    before = start - datetime.timedelta(days=1)
    carry = FinanceCarry.objects.select_for_update().first()
    with connection.cursor() as cursor:
        if carry and not reseed and carry.seed <= before <= carry.through:
            if before < carry.through:
                _state_truncate(cursor, day=before)
        else:
            _state_seed(cursor, day=before)
            carry = carry or FinanceCarry(seed=before, through=before)
            carry.seed = before
        from_state = before == carry.seed
        written = 0
        day = start
        while day <= end:
            written += metrics_day_carry(cursor, day=day, now=now, baseline_from_state=from_state)
            from_state = False
            day += datetime.timedelta(days=1)
    carry.through = end
    carry.save()
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
    rebuild: bool = False,
    recarry: bool = True,
) -> RefreshResult:
    """Refresh every snapshot of ``[start, end]``, ``CHUNK_DAYS`` days a transaction, each day carried
    forward from the day before.

    Days after ``end`` that an earlier refresh carried are carried again (their state follows from
    these days'), unless ``recarry`` is off: then the state ends at ``end`` and a later refresh of a
    later day derives it afresh. ``rebuild`` derives the state at ``start - 1`` from the payments
    whole instead of cutting back the one carried (the rebuild command: history written without the
    late-event marks a live system makes)."""
    now = now or clock.now()
    carried = FinanceCarry.objects.values_list("through", flat=True).first()
    if recarry and carried and start <= carried + datetime.timedelta(days=1):
        end = max(end, carried)
    result = RefreshResult(ranges=[(start, end)])
    total = _days(start, end)
    chunk_start = start
    while chunk_start <= end:
        chunk_end = min(end, chunk_start + datetime.timedelta(days=CHUNK_DAYS - 1))
        with transaction.atomic(), connection.cursor() as cursor:
            _lock(cursor)
            result.rows += revenue_days_refresh(start=chunk_start, end=chunk_end)
            result.rows += metrics_days_refresh(
                start=chunk_start, end=chunk_end, now=now, reseed=rebuild and chunk_start == start
            )
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

    The marks it read are removed last, in the recomputation's transaction: a crash leaves them for the next
    run, and a mark made while it runs was not read, so it stays.
    """
    now = now or clock.now()
    today = now.date()
    with transaction.atomic():
        with connection.cursor() as cursor:
            _lock(cursor)
        dirty = finance_dirty_days_read()
        reach = datetime.timedelta(days=_longest_period_days()) if dirty.days else datetime.timedelta(0)
        ranges = _merge(
            [(today - datetime.timedelta(days=1), today)]
            + [(d, min(today, d + reach)) for d in dirty.days if d <= today]
        )
        result = RefreshResult()
        for start, end in ranges:
            part = finance_snapshots_refresh(start=start, end=end, now=now, cohorts=False)
            result.ranges.append((start, end))
            result.days += part.days
            result.rows += part.rows
        result.rows += retention_refresh(now=now)
        finance_dirty_days_forget(dirty)
    return result
