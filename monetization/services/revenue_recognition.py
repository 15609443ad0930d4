"""Deferred revenue: a payment for several months is revenue of those months, not of the day it is paid.

Whoever records a payment says how many months it pays for (``service_months``; the subscriptions app
passes the plan's length). A payment for more than one month is captured into
``liability:deferred_revenue`` instead of its revenue account, with a :class:`RevenueDeferral`
(its revenue net of tax, the service period from the payment to the same instant N months later).

Recognition (:func:`revenue_recognize`, Celery beat daily just after midnight UTC, and before a
revenue-share cycle reads its month): at each UTC midnight, each open deferral has recognized the
share of its revenue that the time served bears to its service period, rounded down to the
currency's minor unit (cumulatively, so daily rounding never drifts by more than one minor unit);
the day the service period ends releases all that is left, so a deferral is recognized to the minor
unit. One set-based statement per day moves every deferral, and one journal entry per (day, stream,
currency) moves the sum (debit deferred revenue, credit revenue), dated the last instant of the day it
recognizes, so a month's revenue is what was served in it whenever the job ran; a day missed (no
worker) is caught up day by day, so no month gets another's revenue.

Refunds and lost disputes of a partly recognized payment (the rule): what is given back comes out of
the revenue not yet recognized first, and only the excess out of revenue already recognized. The refund
(or the dispute's withdrawal) is booked as always against ``contra_revenue:refunds`` (``...:disputes``);
a reclassification in the same transaction moves the unrecognized part of it onto deferred revenue
(debit deferred revenue, credit the contra account), and the deferral's remaining amount shrinks by it.
What is left of a partial refund is still recognized over the rest of the period. So the contra
account carries only revenue that had been recognized, and a month's net revenue never counts a refund
of revenue it never had. A refund reversed later (a store's REFUND_REVERSED) does not put the
reclassified part back on the schedule: that revenue stays in the contra account's reversal.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from django.db import connection, transaction
from django.db.models import F
from djmoney.money import Money

from monetization import clock
from monetization.models import Payment, Refund, RevenueDeferral
from monetization.services.disputes import DISPUTES
from monetization.services.ledger import (
    Account,
    Leg,
    Posting,
    journal_post,
    journal_post_many,
    minor_unit_exponent,
    quantize,
)

DEFERRED_REVENUE = Account.DEFERRED_REVENUE
RECOGNITION_SOURCE = "monetization.revenuedeferral"
# One recognition run at a time (two would wait on each other's rows anyway); any constant will do.
_RECOGNITION_LOCK = 7_301_313


def service_end(start: datetime.datetime, months: int) -> datetime.datetime:
    return start + relativedelta(months=months)


def deferral_create(*, payment: Payment, stream: str, service_months: int) -> RevenueDeferral:
    """The schedule of a payment captured into deferred revenue (its revenue: amount less tax)."""
    currency = str(payment.amount.currency)
    deferral, _ = RevenueDeferral.objects.get_or_create(
        payment=payment,
        defaults={
            "stream": stream,
            "currency": currency,
            "amount": payment.amount.amount - payment.tax.amount,
            "service_start": payment.occurred_at,
            "service_end": service_end(payment.occurred_at, service_months),
            "recognized_through": payment.occurred_at,
            "spread_from": payment.occurred_at,
        },
    )
    return deferral


def _midnight(moment: datetime.datetime) -> datetime.datetime:
    moment = moment.astimezone(datetime.UTC)
    return datetime.datetime(moment.year, moment.month, moment.day, tzinfo=datetime.UTC)


def revenue_recognize(*, through: datetime.datetime | None = None) -> dict[str, Decimal]:
    """Recognize every deferral up to the UTC midnight at or before ``through`` (default: now).

    Idempotent: a deferral moves past a midnight once (its ``recognized_through``), so a second run,
    or two at once, posts nothing twice. Returns what was recognized, per currency.
    """
    last = _midnight(through or clock.now())
    first = (
        RevenueDeferral.objects.filter(recognized_through__lt=last)
        .filter(amount__gt=F("recognized") + F("reversed"))
        .order_by("recognized_through")
        .values_list("recognized_through", flat=True)
        .first()
    )
    totals: dict[str, Decimal] = defaultdict(Decimal)
    if first is None:
        return {}
    day = _midnight(first) + datetime.timedelta(days=1)
    while day <= last:
        for currency, amount in _recognize_day(day).items():
            totals[currency] += amount
        day += datetime.timedelta(days=1)
    return dict(totals)


def _recognize_day(midnight: datetime.datetime) -> dict[str, Decimal]:
    """Move every open deferral to ``midnight`` in one statement and post the sums; one transaction."""
    table = RevenueDeferral._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_RECOGNITION_LOCK])
        cursor.execute(
            f"SELECT DISTINCT currency FROM {table} WHERE recognized_through < %s AND amount > recognized + reversed",  # noqa: S608
            [midnight],
        )
        currencies = [row[0] for row in cursor.fetchall()]
        if not currencies:
            return {}
        cursor.execute(
            f"""WITH units AS (
                    SELECT * FROM unnest(%(currencies)s::text[], %(factors)s::numeric[]) AS u(currency, factor)
                ), due AS (
                    SELECT d.id, d.stream, d.currency,
                           CASE WHEN d.service_end <= %(at)s THEN d.amount - d.recognized - d.reversed
                                -- cumulative from the spread's start, rounded down once: no daily drift
                                ELSE d.spread_base - d.recognized
                                     + floor((d.amount - d.reversed - d.spread_base) * u.factor
                                             * EXTRACT(EPOCH FROM %(at)s - d.spread_from)
                                             / EXTRACT(EPOCH FROM d.service_end - d.spread_from)) / u.factor
                           END AS part
                    FROM {table} d JOIN units u ON u.currency = d.currency
                    WHERE d.recognized_through < %(at)s AND d.amount > d.recognized + d.reversed
                    FOR UPDATE OF d
                ), moved AS (
                    UPDATE {table} d SET recognized = d.recognized + due.part, recognized_through = %(at)s
                    FROM due WHERE d.id = due.id
                    RETURNING due.id, due.stream, due.currency, due.part
                )
                SELECT stream, currency, SUM(part), MIN(id), MAX(id), COUNT(*)
                FROM moved GROUP BY stream, currency ORDER BY stream, currency""",  # noqa: S608 (table name is a constant)
            {
                "at": midnight,
                "currencies": currencies,
                "factors": [10 ** minor_unit_exponent(c) for c in currencies],
            },
        )
        rows = cursor.fetchall()
        posted_at = midnight - datetime.timedelta(microseconds=1)  # the last instant of the day it recognizes
        day = posted_at.date()
        journal_post_many(
            [
                Posting(
                    # The ids make the key unique: a deferral passes a midnight once, so no two runs share them.
                    key=f"revenue_recognition:{day:%Y-%m-%d}:{stream}:{currency}:{low}-{high}:{count}",
                    kind="revenue_recognition",
                    legs=[
                        Leg(DEFERRED_REVENUE, Money(quantize(amount, currency), currency)),
                        Leg(Account.revenue(stream), Money(-quantize(amount, currency), currency)),
                    ],
                    memo=f"Deferred revenue recognized for {day:%Y-%m-%d}: {count} payment(s)",
                    source_type=RECOGNITION_SOURCE,
                    source_id=day.isoformat(),
                    posted_at=posted_at,
                )
                for stream, currency, amount, low, high, count in rows
                if amount
            ]
        )
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for _stream, currency, amount, *_ in rows:
            totals[currency] += amount
        return dict(totals)


def deferral_reverse(
    *, payment: Payment, net_amount: Decimal, contra_account: str, key: str, source_type: str, source_id: str
) -> Decimal:
    """Take ``net_amount`` given back on ``payment`` out of its unrecognized revenue first (the rule above).

    Returns the part moved off deferred revenue (0 for a payment with no deferral). Idempotent on ``key``.
    """
    deferral = RevenueDeferral.objects.select_for_update().filter(payment_id=payment.pk).first()
    if deferral is None or net_amount <= 0:
        return Decimal(0)
    taken = min(net_amount, deferral.remaining)
    if taken <= 0:
        return Decimal(0)
    currency = deferral.currency
    _entry, posted = journal_post(
        Posting(
            key=key,
            kind="deferred_revenue_reversal",
            legs=[Leg(DEFERRED_REVENUE, Money(taken, currency)), Leg(contra_account, Money(-taken, currency))],
            memo=f"Unrecognized revenue of payment {payment.pk} given back",
            customer=payment.customer,
            source_type=source_type,
            source_id=source_id,
        )
    )
    if not posted:
        return Decimal(0)
    deferral.reversed += taken
    # What is left is spread afresh over the rest of the period, from what has been recognized so far.
    deferral.spread_from, deferral.spread_base = deferral.recognized_through, deferral.recognized
    deferral.save(update_fields=["reversed", "spread_from", "spread_base"])
    return taken


def deferral_refund_hook(refund: Refund, actor) -> None:
    """Refund-succeeded hook: a refund of a deferred payment comes out of its unrecognized revenue first."""
    payment = refund.payment
    currency = str(refund.amount.currency)
    tax_share = Decimal(0)
    if payment.tax.amount and payment.amount.amount:
        tax_share = quantize(payment.tax.amount * refund.amount.amount / payment.amount.amount, currency)
    deferral_reverse(
        payment=payment,
        net_amount=refund.amount.amount - tax_share,
        contra_account=Account.REFUNDS,
        key=f"refund:{refund.pk}:deferred",
        source_type="monetization.refund",
        source_id=str(refund.pk),
    )


def deferral_dispute_lost_hook(payment: Payment, amount: Money, reference: str, occurred_at) -> None:
    """Dispute-lost hook: a lost chargeback of a deferred payment comes out of its unrecognized revenue first."""
    currency = str(amount.currency)
    tax_share = Decimal(0)
    if payment.tax.amount and payment.amount.amount:
        tax_share = quantize(payment.tax.amount * amount.amount / payment.amount.amount, currency)
    deferral_reverse(
        payment=payment,
        net_amount=amount.amount - tax_share,
        contra_account=DISPUTES,
        key=f"{reference}:deferred",
        source_type="monetization.dispute",
        source_id=reference,
    )
