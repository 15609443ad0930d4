"""Revenue snapshots (one row per day, provider and currency) and the late-day markers.

The figures are those ``monetization.selectors_finance`` defines, computed set-based over a range of
days in one ``INSERT ... SELECT ... ON CONFLICT DO UPDATE``; a segment left with nothing on a
recomputed day is removed in the same transaction, so a reader never sees half a refresh.

A late event (a payment recorded for a day before yesterday, a refund or a store's refund reversal
of an earlier payment) marks its day with :func:`finance_days_touch`; the beat refresh recomputes
today, yesterday and every marked day (``subscriptions.services.finance_snapshots``).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db import connection, transaction

from monetization import clock
from monetization.models import FinanceDirtyDay, Payment, Refund, RevenueDay

TAKEN = (Payment.Status.SUCCEEDED, Payment.Status.PARTIALLY_REFUNDED, Payment.Status.REFUNDED)
# Today and yesterday are refreshed on every run: only a day older than that needs a marker.
RECENT_DAYS = 1


def midnight(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)


def finance_days_touch(*instants: datetime.datetime) -> None:
    """Mark the days of ``instants`` older than yesterday for the next snapshot refresh (one insert,
    which waits on nothing: see ``FinanceDirtyDay``)."""
    oldest_recent = clock.now().date() - datetime.timedelta(days=RECENT_DAYS)
    days = sorted({i.astimezone(datetime.UTC).date() for i in instants})
    days = [d for d in days if d < oldest_recent]
    if not days:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {FinanceDirtyDay._meta.db_table} (day, marked_at) SELECT unnest(%s::date[]), %s",
            [days, clock.now()],
        )


@dataclass(frozen=True)
class DirtyDays:
    """The marks a refresh read: the days to recompute, and the rows to remove once it has."""

    days: list[datetime.date]
    mark_ids: list[int]


def finance_dirty_days_read() -> DirtyDays:
    """The marked days, read without a lock. A mark is committed with its event's rows, so the
    refresh that read the mark sees the event; marks committed later are not read and stay."""
    rows = list(FinanceDirtyDay.objects.values_list("id", "day"))
    return DirtyDays(days=sorted({day for _id, day in rows}), mark_ids=[mark_id for mark_id, _day in rows])


def finance_dirty_days_forget(dirty: DirtyDays) -> None:
    """Remove the marks a refresh read, last in its transaction (a crash before it keeps them)."""
    if dirty.mark_ids:
        FinanceDirtyDay.objects.filter(id__in=dirty.mark_ids).delete()


def revenue_days_refresh(*, start: datetime.date, end: datetime.date) -> int:
    """Recompute the revenue snapshot of every day in ``[start, end]``; returns the rows written."""
    p, r, t = Payment._meta.db_table, Refund._meta.db_table, RevenueDay._meta.db_table
    sql = f"""
        INSERT INTO {t} (day, provider, currency, payments, refunds_count, gross, refunds, commission, fees, tax,
                         refreshed_at)
        SELECT day, provider, currency, sum(n), sum(rn), sum(gross), sum(refunds), sum(commission), sum(fees),
               sum(tax), %(stamp)s
        FROM (
            SELECT (p.occurred_at AT TIME ZONE 'UTC')::date AS day, p.provider, p.amount_currency AS currency,
                   count(*) AS n, 0 AS rn, sum(p.amount) AS gross, 0 AS refunds, sum(p.commission) AS commission,
                   sum(p.fee) AS fees, sum(p.tax) AS tax
            FROM {p} p
            WHERE p.status = ANY(%(taken)s) AND p.occurred_at >= %(since)s AND p.occurred_at < %(until)s
            GROUP BY 1, 2, 3
            UNION ALL
            -- A refund gives back its share of the payment's tax and commission.
            SELECT (r.completed_at AT TIME ZONE 'UTC')::date, p.provider, r.amount_currency, 0, count(*), 0,
                   sum(r.amount), -round(sum(r.amount / p.amount * p.commission), 4), 0,
                   -round(sum(r.amount / p.amount * p.tax), 4)
            FROM {r} r JOIN {p} p ON p.id = r.payment_id
            WHERE r.status = %(refunded)s AND r.completed_at >= %(since)s AND r.completed_at < %(until)s
            GROUP BY 1, 2, 3
        ) figures
        GROUP BY 1, 2, 3
        ON CONFLICT (day, provider, currency) DO UPDATE SET
            payments = EXCLUDED.payments, refunds_count = EXCLUDED.refunds_count, gross = EXCLUDED.gross,
            refunds = EXCLUDED.refunds, commission = EXCLUDED.commission, fees = EXCLUDED.fees, tax = EXCLUDED.tax,
            refreshed_at = EXCLUDED.refreshed_at
    """  # noqa: S608 (table names from model metadata; values are parameters)
    params = {
        "taken": [str(s) for s in TAKEN],
        "refunded": str(Refund.Status.SUCCEEDED),
        "since": midnight(start),
        "until": midnight(end + datetime.timedelta(days=1)),
    }
    with transaction.atomic(), connection.cursor() as cursor:
        params["stamp"] = refresh_stamp(cursor)
        cursor.execute(sql, params)
        written = cursor.rowcount
        cursor.execute(
            f"DELETE FROM {t} WHERE day BETWEEN %s AND %s AND refreshed_at <> %s",  # noqa: S608
            [start, end, params["stamp"]],
        )
    return written


def refresh_stamp(cursor) -> datetime.datetime:
    """This refresh's instant, the ``refreshed_at`` of every row it writes: a row of the range not
    stamped with it was not found again, so goes. The wall clock, not the transaction's start: two
    refreshes in one transaction must not share it."""
    cursor.execute("SELECT clock_timestamp()", [])
    return cursor.fetchone()[0]
