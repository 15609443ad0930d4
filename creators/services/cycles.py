"""Revenue-share cycles: computing the pool's split, review, four-eyes approval.

The pool is ``CREATOR_POOL_SHARE`` of the period's consumer subscription revenue read from the
ledger (net credits to ``revenue:subscriptions`` of entries posted in the period, less the refunds
of such payments posted in the period, less consumer revenue lost to disputes; an annual plan's revenue
is recognized day by day out of deferred revenue, so it counts month by month, see ``period_revenue``),
per currency.

Multi-currency: per-currency pools, no conversion. Each currency's revenue funds a pool in that
currency, split by the same engagement scores; creator-subscription shares and clawbacks stay in
the fan's currency; each earning (creator, cycle, currency) is paid in its currency. Converting
would make creators carry FX risk chosen by us and need a booked rate per cycle; per-currency pools
are exact. The minimum payout in another currency is ``CREATOR_MIN_PAYOUT`` converted at the
period's last reference rate (``monetization.services.fx``), or set per currency in
``CREATOR_MIN_PAYOUT_BY_CURRENCY``.

Clawbacks (``services/clawbacks.py``): a refunded or lost-dispute fan payment takes its share back
in the month it happens; a total below zero is carried out as a debt, never paid. Consumer revenue
refunded or lost to a dispute in a month leaves that month's pool (``period_revenue``).

The split is by weighted engagement (``CREATOR_ENGAGEMENT_WEIGHTS``) of ACTIVE creators,
computed in SQL (one GROUP BY over the period's partition) with integer arithmetic:
each creator gets floor(pool * score / total) minor units and the remaining units go one each
to the largest remainders, ties by creator id, so parts sum to the pool exactly and
deterministically (``split_largest_remainder`` is the same rule in Python).

Carry-over: earnings below the minimum payout (or negative) are carried out and come back as
``carried_in`` in the creator's next cycle, per currency. The ledger gets, per chunk of creators, one
balanced entry (debit expense:creator_revenue_share, credit liability:creator_payable) for
the pool part; subscription shares were posted when the fan paid and carried balances
are already payable, so neither is posted twice. ``CreatorEarning`` is the per-creator
subledger of ``liability:creator_payable``.
"""

from __future__ import annotations

import datetime
import math
import threading
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from fractions import Fraction

from django.conf import settings
from django.db import connection, transaction
from django.db.models import CharField, Count, Exists, F, OuterRef, Sum
from django.db.models.functions import Cast
from django_fsm import can_proceed
from djmoney.money import Money

from monetization import clock
from monetization.errors import (
    Conflict,
    CreatorErrorCode,
    ErrorCode,
    IllegalTransition,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from monetization.models import Dispute, JournalEntry, JournalLine, Refund, RevenueDeferral
from monetization.reasons import reason_check
from monetization.services.audit import audit_record, snapshot
from monetization.services.fx import RateMissing, convert
from monetization.services.ledger import Account, Leg, Posting, journal_post_many, minor_unit_exponent, quantize
from monetization.services.permissions import require_perm
from monetization.services.revenue_recognition import revenue_recognize

from ..models import (
    CreatorAccount,
    CreatorClawback,
    CreatorEarning,
    CreatorSubscriptionShare,
    DailyEngagement,
    Payout,
    PayoutHold,
    PayoutProfile,
    RevenueShareCycle,
)
from .payouts import cycle_pay_plan, held_payouts, payable_payouts

CYCLE_FIELDS = ["state", "pool", "revenue", "computed_by", "approved_by", "rejected_reason", "compute_run"]
METRICS = ("impressions", "replies", "reposts", "likes")


# --- pure arithmetic ---------------------------------------------------------------------


def split_largest_remainder(pool: int, scores: Mapping[int, int]) -> dict[int, int]:
    """Split ``pool`` minor units by integer ``scores``: parts sum to ``pool`` exactly.

    Each part is floor(pool * score / total) or one more; the leftover units go to the largest
    remainders, ties broken by the smaller key. Zero total (or zero pool) gives zeros.
    """
    if pool < 0:
        raise ValueError("pool must be >= 0")
    total = sum(scores.values())
    if total <= 0 or pool == 0:
        return dict.fromkeys(scores, 0)
    parts: dict[int, int] = {}
    remainders: list[tuple[int, int]] = []
    for key, score in scores.items():
        if score < 0:
            raise ValueError("scores must be >= 0")
        quotient, remainder = divmod(pool * score, total)
        parts[key] = quotient
        remainders.append((-remainder, key))
    left = pool - sum(parts.values())
    for _, key in sorted(remainders)[:left]:
        parts[key] += 1
    return parts


def integer_weights(weights: Mapping[str, object]) -> tuple[dict[str, int], int]:
    """Weights as integers (scaled by the LCM of their denominators) and that scale."""
    fractions = {name: Fraction(str(weights.get(name, 0))) for name in METRICS}
    if any(f < 0 for f in fractions.values()):
        raise InvalidInput("Engagement weights must be >= 0.")
    scale = math.lcm(*(f.denominator for f in fractions.values()))
    return {name: int(f * scale) for name, f in fractions.items()}, scale


def period_bounds(period: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    start = datetime.datetime(period.year, period.month, 1, tzinfo=datetime.UTC)
    end = datetime.datetime(period.year + (period.month == 12), period.month % 12 + 1, 1, tzinfo=datetime.UTC)
    return start, end


def to_minor(amount: Decimal, currency: str) -> int:
    return int((Decimal(amount) * (10 ** minor_unit_exponent(currency))).to_integral_value())


def from_minor(units: int, currency: str) -> Decimal:
    return Decimal(units).scaleb(-minor_unit_exponent(currency))


# --- reads --------------------------------------------------------------------------------


def period_revenue(period: datetime.date) -> dict[str, Decimal]:
    """Consumer subscription revenue of the period, per currency: net credits to revenue:subscriptions
    of entries posted in the period, less the refunds posted in the period of consumer payments, less
    the consumer revenue lost to disputes in the period.

    A multi-month plan's payment is captured into deferred revenue and recognized into
    revenue:subscriptions day by day (``monetization.services.revenue_recognition``), so the period
    counts what was recognized in it; a refund of such a payment counts only for the part of it that
    had been recognized (the rest comes out of deferred revenue).
    """
    start, end = period_bounds(period)
    line, entry = JournalLine._meta.db_table, JournalEntry._meta.db_table
    deferral = RevenueDeferral._meta.db_table
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT l.currency, -SUM(l.amount) FROM {line} l JOIN {entry} e ON e.id = l.entry_id
                WHERE l.account = %(revenue)s AND e.posted_at >= %(start)s AND e.posted_at < %(end)s
                GROUP BY l.currency""",  # noqa: S608
            {"revenue": Account.revenue("subscriptions"), "start": start, "end": end},
        )
        for currency, amount in cursor.fetchall():
            revenue[currency] += amount
    refund = Refund._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT l.currency, SUM(l.amount) FROM {line} l
                JOIN {entry} e ON e.id = l.entry_id AND e.source_type = 'monetization.refund'
                JOIN {refund} r ON e.source_id = r.id::text
                WHERE l.account = %(refunds)s AND e.posted_at >= %(start)s AND e.posted_at < %(end)s
                  AND (EXISTS (SELECT 1 FROM {line} pl JOIN {entry} pe ON pe.id = pl.entry_id
                               WHERE pe.source_type = 'monetization.payment' AND pe.source_id = r.payment_id::text
                                 AND pl.account = %(revenue)s)
                       OR EXISTS (SELECT 1 FROM {deferral} d WHERE d.payment_id = r.payment_id
                                  AND d.stream = 'subscriptions'))
                GROUP BY l.currency""",  # noqa: S608 (table names are constants)
            {"refunds": Account.REFUNDS, "revenue": Account.revenue("subscriptions"), "start": start, "end": end},
        )
        for currency, refunded in cursor.fetchall():
            revenue[currency] = revenue.get(currency, Decimal(0)) - refunded
    for currency, lost in _lost_disputes(start, end).items():
        revenue[currency] = revenue.get(currency, Decimal(0)) - lost
    return {k: v for k, v in sorted(revenue.items()) if v}


def _lost_disputes(start: datetime.datetime, end: datetime.datetime) -> dict[str, Decimal]:
    """Consumer revenue lost to chargebacks in the period, per currency: disputes lost in it of payments that
    credited revenue:subscriptions, net of their tax share (as a refund's is), so the pool shrinks as it does
    for a refund. Counted when lost, not when the funds were withdrawn: a won dispute never touches the pool."""
    captured_as_consumer_revenue = JournalLine.objects.filter(
        entry__source_type="monetization.payment",
        entry__source_id=Cast(OuterRef("payment_id"), CharField()),
        account=Account.revenue("subscriptions"),
    )
    deferred_as_consumer_revenue = RevenueDeferral.objects.filter(
        payment_id=OuterRef("payment_id"), stream="subscriptions"
    )
    disputes = Dispute.objects.filter(
        Exists(captured_as_consumer_revenue) | Exists(deferred_as_consumer_revenue),
        status=Dispute.Status.LOST,
        closed_at__gte=start,
        closed_at__lt=end,
    )
    lost: dict[str, Decimal] = defaultdict(Decimal)
    for dispute in disputes.select_related("payment"):
        currency, payment = str(dispute.amount.currency), dispute.payment
        amount = dispute.amount.amount
        tax_share = quantize(payment.tax.amount * amount / payment.amount.amount, currency) if payment.tax.amount else 0
        # What was never recognized came out of deferred revenue, not out of any month's revenue.
        unrecognized = JournalLine.objects.filter(
            entry__key=f"dispute:{dispute.provider_dispute_id}:deferred", account=Account.DEFERRED_REVENUE
        ).aggregate(total=Sum("amount"))["total"] or Decimal(0)
        lost[currency] += amount - tax_share - unrecognized
    return lost


def min_payout_minor(currency: str, day: datetime.date | None = None) -> int:
    """The smallest payout in ``currency`` (minor units).

    CREATOR_MIN_PAYOUT_BY_CURRENCY when it names the currency; else CREATOR_MIN_PAYOUT (in the pool
    currency) converted at ``day``'s reference rate; the same nominal amount when no rate is loaded.
    """
    explicit = getattr(settings, "CREATOR_MIN_PAYOUT_BY_CURRENCY", {}).get(currency)
    if explicit is not None:
        return max(1, to_minor(Decimal(str(explicit)), currency))
    amount = Money(Decimal(str(settings.CREATOR_MIN_PAYOUT)), settings.CREATOR_POOL_CURRENCY)
    if day is not None and currency != settings.CREATOR_POOL_CURRENCY:
        try:
            return max(1, to_minor(convert(amount, currency, day).amount, currency))
        except RateMissing:
            pass
    return max(1, to_minor(amount.amount, currency))


@dataclass
class EarningLine:
    creator_id: int
    score: int
    currency: str = ""
    pool_minor: int = 0
    subscription_minor: int = 0
    clawed_back_minor: int = 0
    carried_in_minor: int = 0
    total_minor: int = 0
    payable_minor: int = 0
    carried_out_minor: int = 0


@dataclass
class CycleResult:
    period: datetime.date
    currency: str
    revenue_by_currency: dict[str, Decimal]
    pool: Decimal
    weights: dict
    pools: dict[str, Decimal] = field(default_factory=dict)
    lines: list[EarningLine] = field(default_factory=list)

    def _sum(self, attr: str, currency: str | None = None) -> Decimal:
        currency = currency or self.currency
        return from_minor(sum(getattr(ln, attr) for ln in self.lines if ln.currency == currency), currency)

    @property
    def distributed(self) -> Decimal:
        return self._sum("pool_minor")

    @property
    def payable(self) -> Decimal:
        return self._sum("payable_minor")

    @property
    def carried_out(self) -> Decimal:
        return self._sum("carried_out_minor")

    def summary(self) -> dict:
        """Totals in the pool currency, and per currency under ``by_currency``."""
        currencies = sorted({ln.currency for ln in self.lines} | set(self.pools))
        return {
            "period": self.period.isoformat(),
            "currency": self.currency,
            "revenue_by_currency": {k: str(v) for k, v in self.revenue_by_currency.items()},
            "pool": str(self.pool),
            "creators": len({ln.creator_id for ln in self.lines}),
            "distributed": str(self.distributed),
            "payable": str(self.payable),
            "carried_out": str(self.carried_out),
            "payouts": sum(1 for line in self.lines if line.payable_minor > 0),
            "by_currency": {
                cur: {
                    "pool": str(self.pools.get(cur, Decimal(0))),
                    "distributed": str(self._sum("pool_minor", cur)),
                    "clawed_back": str(self._sum("clawed_back_minor", cur)),
                    "payable": str(self._sum("payable_minor", cur)),
                    "carried_out": str(self._sum("carried_out_minor", cur)),
                }
                for cur in currencies
            },
        }


def _floor_sql(p: str, score: str) -> str:
    """floor(pool * score / total score) of pool row ``p``, in bigint when ``p.small`` (pool * total < 2^63, so
    every pool * score is exact in bigint, several times cheaper than numeric), else in numeric; either way
    the quotient (<= pool) fits in bigint."""
    return (
        f"CASE WHEN {p}.small THEN {p}.pool_b * {score} / {p}.tot_b ELSE div({p}.pool * {score}, {p}.tot)::bigint END"
    )


def _remainder_sql(p: str, score: str) -> str:
    """(pool * score) mod total score of pool row ``p`` (< total score: fits in bigint)."""
    return (
        f"CASE WHEN {p}.small THEN {p}.pool_b * {score} %% {p}.tot_b ELSE mod({p}.pool * {score}, {p}.tot)::bigint END"
    )


def _part_sql(p: str, fl: str, rem: str, creator: str) -> str:
    """A creator's part of pool row ``p`` from its floor and remainder: one leftover unit more when the creator
    is at or above the pool's cut (remainder, then creator id), none when the pool has no leftover units."""
    return (
        f"({fl} + CASE WHEN {rem} > {p}.cut_rem OR ({rem} = {p}.cut_rem AND {creator} <= {p}.cut_creator)"
        " THEN 1 ELSE 0 END)::bigint"
    )


def _split_sql() -> str:
    """The CTEs ``tot``, ``pools``, ``base``, ``spare``, ``cut`` and ``pool_cut`` over a CTE ``elig`` (creator_id,
    score, score_b: the eligible creators' scores), for every currency's pool (``%(pool_currencies)s`` /
    ``%(pool_minors)s``): each ``pool_cut`` row is a pool, its total score and its cut.

    No row is ranked: each pool's leftover units go to the creators at or above one cut (remainder, then
    creator id), the last creator to get one, found by a bounded sort per pool; the creators' parts are then
    made in one pass (``_part_sql``), without a window over every row nor a join of each back to its pool's
    leftover units."""
    return f"""
        tot AS (
            SELECT SUM(score)::numeric AS s FROM elig
        ), pools AS MATERIALIZED (
            -- k numbers the pools: partitions by a bigint, not by collated text (300k+ comparisons).
            -- ``small``: pool * total score < 2^63 (see ``_floor_sql``).
            SELECT p.ord AS k, p.currency, p.pool, q.small, tot.s AS tot,
                   CASE WHEN q.small THEN p.pool::bigint END AS pool_b,
                   CASE WHEN q.small THEN tot.s::bigint END AS tot_b
            FROM unnest(%(pool_currencies)s::text[], %(pool_minors)s::numeric[])
                 WITH ORDINALITY AS p(currency, pool, ord), tot,
                 LATERAL (SELECT p.pool * tot.s < 9223372036854775807 AND tot.s < 9223372036854775807 AS small) q
        ), base AS MATERIALIZED (
            -- Each creator's floor and remainder in each pool: only bigints, to sum the floors and find the cut.
            -- (score <= total score < 2^63 when small: the casts cannot overflow)
            SELECT pools.k, creator_id, {_floor_sql("pools", "score_b")} AS fl,
                   {_remainder_sql("pools", "score_b")} AS rem
            FROM pools, elig
        ), spare AS (
            -- Each pool's units left after the floors (a row per pool).
            SELECT pools.k, (pools.pool - f.floors)::bigint AS spare
            FROM (SELECT k, SUM(fl) AS floors FROM base GROUP BY k) f JOIN pools ON pools.k = f.k
        ), cut AS (
            -- The spare-th largest (remainder, then smallest creator id) of each pool: that creator and every
            -- one before it in that order get a leftover unit, the rest none (a bounded sort per pool).
            SELECT spare.k, c.rem, c.creator_id
            FROM spare, LATERAL (
                SELECT base.rem, base.creator_id FROM base WHERE base.k = spare.k
                ORDER BY base.rem DESC, base.creator_id OFFSET spare.spare - 1 LIMIT 1
            ) c
            WHERE spare.spare > 0
        ), pool_cut AS MATERIALIZED (
            SELECT pools.*, cut.rem AS cut_rem, cut.creator_id AS cut_creator
            FROM pools LEFT JOIN cut ON cut.k = pools.k
            ORDER BY pools.k
        )"""  # noqa: S608 (no table names, only the CTE ``elig``)


def _scores_sql(weights: dict[str, int]) -> str:
    """(currency, creator_id, score, pool share in minor units) of ACTIVE creators with engagement, one
    statement for every currency's pool (``%(pool_currencies)s`` / ``%(pool_minors)s``): the engagement is
    aggregated once and each pool split by the same scores.

    Integer arithmetic (bigint when it cannot overflow, else numeric) keeps the split exact; the leftover
    units go to the largest remainders, ties by creator id: the same rule as ``split_largest_remainder``.
    """
    return f"""
        WITH {_eligible_sql(weights)}, {_split_sql()}
        -- Floor and remainder again (two bigint operations), rather than joining each creator's back.
        SELECT p.currency, e.creator_id, e.score_b AS score,
               {_part_sql("p", "s.fl", "s.rem", "e.creator_id")} AS pool_minor
        FROM elig e, pool_cut p, LATERAL (
            SELECT {_floor_sql("p", "e.score_b")} AS fl, {_remainder_sql("p", "e.score_b")} AS rem
        ) s
    """  # noqa: S608 (table names are constants, weights are ints)


def _eligible_sql(weights: dict[str, int]) -> str:
    """The CTEs ``agg`` (the period's weighted engagement per creator, ``%(start)s`` to ``%(end)s``) and ``elig``
    (creator_id, score, score_b of the ACTIVE creators among them with a score above zero)."""
    return f"""
        agg AS (
            SELECT e.creator_id,
                   SUM(e.impressions * {int(weights["impressions"])} + e.replies * {int(weights["replies"])}
                       + e.reposts * {int(weights["reposts"])} + e.likes * {int(weights["likes"])}) AS score
            FROM {DailyEngagement._meta.db_table} e
            WHERE e.day >= %(start)s AND e.day < %(end)s
            GROUP BY e.creator_id
        ), elig AS MATERIALIZED (
            -- The score in bigint once per creator, rather than cast for each pool twice (a score is stored
            -- as a bigint: one beyond it is refused here as it was when stored).
            SELECT agg.creator_id, agg.score, agg.score::bigint AS score_b
            FROM agg
            JOIN {CreatorAccount._meta.db_table} a ON a.id = agg.creator_id AND a.state = %(active)s
            WHERE agg.score > 0
        )"""  # noqa: S608 (table names are constants, weights are ints)


def _scores_params(period: datetime.date, pools_minor: Mapping[str, int]) -> dict:
    start, end = period_bounds(period)
    return {
        "start": start.date(),
        "end": end.date(),
        "active": CreatorAccount.State.ACTIVE,
        "pool_currencies": list(pools_minor),
        "pool_minors": [int(v) for v in pools_minor.values()],
    }


def _scores_by_currency(
    period: datetime.date, weights: dict[str, int], pools_minor: Mapping[str, int]
) -> list[tuple[str, int, int, int]]:
    with connection.cursor() as cursor:
        cursor.execute(_scores_sql(weights) + " ORDER BY creator_id, currency", _scores_params(period, pools_minor))
        return cursor.fetchall()


def _scores(period: datetime.date, weights: dict[str, int], pool_minor: int) -> list[tuple[int, int, int]]:
    """One pool's split: (creator_id, score, pool share in minor units)."""
    return [(cid, score, part) for _, cid, score, part in _scores_by_currency(period, weights, {"XXX": pool_minor})]


def _previous_cycle(cycle: RevenueShareCycle) -> RevenueShareCycle | None:
    return (
        RevenueShareCycle.objects.filter(period__lt=cycle.period)
        .exclude(state__in=[RevenueShareCycle.State.OPEN, RevenueShareCycle.State.COMPUTING])
        .order_by("-period")
        .first()
    )


@dataclass
class Preparation:
    currency: str
    revenue: dict[str, Decimal]
    pools: dict[str, Decimal]
    weights: dict[str, int]
    scale: int
    previous_cycle_id: int | None

    @property
    def pool(self) -> Decimal:
        return self.pools.get(self.currency, Decimal(0))

    @property
    def pools_minor(self) -> dict[str, int]:
        return {cur: to_minor(amount, cur) for cur, amount in self.pools.items()}

    @property
    def weights_json(self) -> dict:
        return {"weights": {k: str(v) for k, v in settings.CREATOR_ENGAGEMENT_WEIGHTS.items()}, "scale": self.scale}


def _prepare(cycle: RevenueShareCycle) -> Preparation:
    """Per-currency pools: each currency's net consumer revenue funds a pool in that currency, split by the
    same engagement scores and paid in that currency (no conversion). The pool currency always has a pool."""
    currency = settings.CREATOR_POOL_CURRENCY
    revenue = period_revenue(cycle.period)
    share = Decimal(str(settings.CREATOR_POOL_SHARE))
    pools = {currency: Decimal(0)}
    for cur, amount in revenue.items():
        if amount > 0:
            pools[cur] = (amount * share).quantize(Decimal(1).scaleb(-minor_unit_exponent(cur)), rounding=ROUND_DOWN)
    weights, scale = integer_weights(settings.CREATOR_ENGAGEMENT_WEIGHTS)
    previous = _previous_cycle(cycle)
    return Preparation(
        currency=currency,
        revenue=revenue,
        pools=pools,
        weights=weights,
        scale=scale,
        previous_cycle_id=previous.pk if previous else None,
    )


def cycle_plan(cycle: RevenueShareCycle) -> CycleResult:
    """Everything a computation would write, computed in Python without writing (the dry run)."""
    prep = _prepare(cycle)
    lines: dict[tuple[int, str], EarningLine] = {
        (cid, cur): EarningLine(creator_id=cid, score=score, currency=cur, pool_minor=part)
        for cur, cid, score, part in _scores_by_currency(cycle.period, prep.weights, prep.pools_minor)
    }

    def line(cid: int, cur: str) -> EarningLine:
        return lines.setdefault((cid, cur), EarningLine(creator_id=cid, score=0, currency=cur))

    start, end = period_bounds(cycle.period)
    for model, attr in ((CreatorSubscriptionShare, "subscription_minor"), (CreatorClawback, "clawed_back_minor")):
        for cid, cur, total in (
            model.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
            .values("creator_id", "currency")
            .annotate(total=Sum("amount"))
            .values_list("creator_id", "currency", "total")
        ):
            setattr(line(cid, cur), attr, to_minor(total, cur))
    if prep.previous_cycle_id is not None:
        for cid, cur, carried in (
            CreatorEarning.objects.filter(cycle_id=prep.previous_cycle_id)
            .exclude(carried_out=0)
            .values_list("creator_id", "currency", "carried_out")
        ):
            line(cid, cur).carried_in_minor = to_minor(carried, cur)
    last_day = (end - datetime.timedelta(days=1)).date()
    for ln in lines.values():
        ln.total_minor = ln.pool_minor + ln.subscription_minor - ln.clawed_back_minor + ln.carried_in_minor
        ln.payable_minor = ln.total_minor if ln.total_minor >= min_payout_minor(ln.currency, last_day) else 0
        ln.carried_out_minor = ln.total_minor - ln.payable_minor
    return CycleResult(
        period=cycle.period,
        currency=prep.currency,
        revenue_by_currency=prep.revenue,
        pool=prep.pool,
        pools=prep.pools,
        weights=prep.weights_json,
        lines=[lines[key] for key in sorted(lines)],
    )


# --- writes -------------------------------------------------------------------------------


def cycle_open(*, period: datetime.date, actor=None) -> RevenueShareCycle:
    period = period.replace(day=1)
    with transaction.atomic():
        cycle, created = RevenueShareCycle.objects.get_or_create(period=period)
        if created:
            audit_record(action="cycle.open", obj=cycle, actor=actor, after=snapshot(cycle, CYCLE_FIELDS))
        return cycle


def _lock(cycle_id: int) -> RevenueShareCycle:
    cycle = RevenueShareCycle.objects.select_for_update().filter(pk=cycle_id).first()
    if cycle is None:
        raise NotFound("No such cycle.")
    return cycle


def _earning_key(cycle: RevenueShareCycle, chunk_no: int) -> str:
    return f"cycle:{cycle.pk}:run:{cycle.compute_run}:earnings:{chunk_no}"


def cycle_compute(*, cycle_id: int, actor=None, dry_run: bool = False, chunk_size: int = 25_000, sessions: int = 2):
    """Compute a cycle's earnings and post them; resumable after a crash (state ``computing``).

    ``dry_run`` returns the :class:`CycleResult` and writes nothing at all. ``sessions``: how many database
    sessions write chunks at once (one when called inside a transaction: other sessions could not see it).
    """
    require_perm(actor, "creators.compute_cycle")
    if dry_run:
        cycle = RevenueShareCycle.objects.filter(pk=cycle_id).first()
        if cycle is None:
            raise NotFound("No such cycle.")
        return cycle_plan(cycle)
    with transaction.atomic():
        cycle = _lock(cycle_id)
        if cycle.state not in (RevenueShareCycle.State.OPEN, RevenueShareCycle.State.COMPUTING):
            raise IllegalTransition(f"A {cycle.state} cycle cannot be computed.")
        if cycle.state == RevenueShareCycle.State.OPEN:
            cycle.compute_run += 1
            cycle.start_computing()
            cycle.computed_by = actor if actor is not None and actor.is_authenticated else None
            cycle.compute_processed = 0
            cycle.save()
            audit_record(action="cycle.compute", obj=cycle, actor=actor, after=snapshot(cycle, CYCLE_FIELDS))
    # Deferred revenue served up to the period's end (or today) counts in the pool even if the daily job lags.
    revenue_recognize(through=min(period_bounds(cycle.period)[1], clock.now()))
    prep = _prepare(cycle)
    writer = _ChunkWriter(cycle, prep, chunk_size)
    with transaction.atomic():
        cycle = _lock(cycle_id)
        cycle.revenue = prep.revenue.get(prep.currency, Decimal(0))
        cycle.revenue_by_currency = {k: str(v) for k, v in prep.revenue.items()}
        cycle.pool = prep.pool
        cycle.pools = {k: str(v) for k, v in prep.pools.items()}
        cycle.pool_share = Decimal(str(settings.CREATOR_POOL_SHARE))
        cycle.currency = prep.currency
        cycle.weights = prep.weights_json
        cycle.compute_total = writer.total
        cycle.compute_processed = 0  # every chunk, written now or by a run cut short, adds its creators below
        cycle.save()
    try:
        if connection.in_atomic_block or len(writer.plan) < 2 or sessions < 2:
            results = [_compute_chunk(cycle, prep, writer, chunk) for chunk in writer.plan]
        else:
            results = _compute_chunks_in_sessions(cycle, prep, writer, sessions)
    finally:
        writer.close()
    # What this run wrote (rows, pool parts, payable, carried out): the audit's totals when it wrote every chunk.
    written, whole_run = [0, Decimal(0), Decimal(0), Decimal(0)], True
    for sums in results:
        if sums is None:
            whole_run = False  # written by a run cut short: count from the table
            continue
        for n, pool, payable, carried in sums.values():
            written = [written[0] + n, written[1] + pool, written[2] + payable, written[3] + carried]
    with transaction.atomic():
        cycle = _lock(cycle_id)
        before = snapshot(cycle, CYCLE_FIELDS)
        cycle.compute_processed = cycle.compute_total
        cycle.finish_computing()
        cycle.save()
        summary = _written_summary(cycle, *written) if whole_run else selectors_summary(cycle)
        audit_record(action="cycle.computed", obj=cycle, actor=actor, before=before, after=summary)
    return cycle


def _compute_chunk(
    cycle: RevenueShareCycle, prep: Preparation, writer: _ChunkWriter, chunk: _Chunk
) -> dict[str, tuple[int, Decimal, Decimal, Decimal]] | None:
    """One chunk's earnings and its ledger entries in one transaction; None when a run cut short wrote it.

    Chunks may be written by several sessions at once: a chunk is claimed by a transaction-scoped advisory
    lock on (cycle, run, chunk) rather than by locking the cycle's row for the whole transaction, and the
    cycle's row is updated last (its progress, and a check it is still computing), so that two chunks'
    inserts overlap and only their last statements wait for each other.
    """
    with transaction.atomic():
        writer.relax_commit()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [_earning_key(cycle, chunk.no)])
        sums = None
        if not CreatorEarning.objects.filter(
            cycle=cycle, creator_id__gte=chunk.low, creator_id__lte=chunk.high
        ).exists():
            sums = writer.write(chunk)
            parts = {cur: pool for cur, (_, pool, _, _) in sums.items()}
            journal_post_many(
                [
                    Posting(
                        # The pool currency keeps the key it always had; other currencies are suffixed.
                        key=_earning_key(cycle, chunk.no) + ("" if cur == prep.currency else f":{cur}"),
                        kind="creator_earnings",
                        legs=[
                            Leg(Account.CREATOR_REVENUE_SHARE, Money(part, cur)),
                            Leg(Account.CREATOR_PAYABLE, Money(-part, cur)),
                        ],
                        memo=f"Revenue share {cycle.period:%Y-%m}, creators {chunk.low}-{chunk.high}, {cur}",
                        source_type="creators.revenuesharecycle",
                        source_id=str(cycle.pk),
                    )
                    for cur, part in sorted(parts.items())
                    if part
                ]
            )
        progressed = RevenueShareCycle.objects.filter(
            pk=cycle.pk, state=RevenueShareCycle.State.COMPUTING, compute_run=cycle.compute_run
        ).update(compute_processed=F("compute_processed") + chunk.creators)
        if not progressed:
            raise IllegalTransition("The cycle stopped computing while its earnings were written.")
    return sums


def _compute_chunks_in_sessions(
    cycle: RevenueShareCycle, prep: Preparation, writer: _ChunkWriter, sessions: int
) -> list[dict[str, tuple[int, Decimal, Decimal, Decimal]] | None]:
    """Write the chunks from ``sessions`` database sessions at once (a thread each, taking the next chunk
    in turn): an INSERT runs on one server process, and most of a chunk's cost is its earnings' index
    entries. Each chunk is still one transaction; the first error is raised once every thread has stopped."""
    results: dict[int, dict | None] = {}
    errors: list[BaseException] = []
    pending = iter(writer.plan)
    take = threading.Lock()

    def work():
        try:
            while not errors:
                with take:
                    chunk = next(pending, None)
                if chunk is None:
                    return
                results[chunk.no] = _compute_chunk(cycle, prep, writer, chunk)
        except BaseException as exc:  # re-raised in the calling thread
            errors.append(exc)
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=work, name=f"cycle-{cycle.pk}-chunks-{i}") for i in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return [results[chunk.no] for chunk in writer.plan]


def selectors_summary(cycle: RevenueShareCycle) -> dict:
    totals = CreatorEarning.objects.filter(cycle=cycle).aggregate(
        creators=Count("id"), distributed=Sum("pool_amount"), payable=Sum("payable"), carried_out=Sum("carried_out")
    )
    return {"pool": str(cycle.pool), **{k: str(v or 0) for k, v in totals.items()}}


def _written_summary(cycle: RevenueShareCycle, rows: int, pool: Decimal, payable: Decimal, carried: Decimal) -> dict:
    """``selectors_summary`` of what one run wrote, without reading the cycle's earnings back."""
    places = Decimal(1).scaleb(-CreatorEarning._meta.get_field("total").decimal_places)  # as the table sums them

    def total(value: Decimal) -> str:
        return str(value.quantize(places)) if value else "0"

    return {
        "pool": str(cycle.pool),
        "creators": str(rows),
        "distributed": total(pool),
        "payable": total(payable),
        "carried_out": total(carried),
    }


@dataclass
class _Chunk:
    """A run of creators written in one transaction: its number, its creator ids and how many creators."""

    no: int
    low: int
    high: int
    creators: int = 0


class _ChunkWriter:
    """The split is staged server-side (one row per creator, one per creator and currency of what is not the
    pool's) and each chunk is one INSERT ... SELECT that makes its creators' rows itself: no row travels to
    Python and back, and the per-row work (each pool's part, the totals, the minor units scaled) is done by
    the sessions that write the chunks, side by side, rather than by one statement before them."""

    UNITS = "creators_cycle_units"

    def __init__(self, cycle: RevenueShareCycle, prep: Preparation, chunk_size: int):
        self.cycle, self.prep = cycle, prep
        # The stages are read by every session that writes chunks, so not a session's temporary tables:
        # unlogged ones of the cycle's own (never WAL-logged; emptied by a server crash, after which the
        # resumed run builds them again). A second run of the same cycle rebuilds them and the first one stops.
        self.stage = f"creators_cycle_stage_{int(cycle.pk)}"
        self.extra = f"creators_cycle_stage_{int(cycle.pk)}_extra"
        start, end = period_bounds(cycle.period)
        params = {
            **_scores_params(cycle.period, prep.pools_minor),
            "sub_start": start,
            "sub_end": end,
            "prev": prep.previous_cycle_id or 0,
            "chunk_size": max(1, int(chunk_size)),
        }
        shares, claws = CreatorSubscriptionShare._meta.db_table, CreatorClawback._meta.db_table
        earnings = CreatorEarning._meta.db_table
        with transaction.atomic(), connection.cursor() as cursor:
            # The stage's aggregate and sorts hold a row per creator (and pool): in memory, not spilled to disk.
            cursor.execute("SET LOCAL work_mem TO '256MB'")
            # Compiling the stage's expressions (JIT) costs more than it saves on a few hundred thousand rows.
            cursor.execute("SET LOCAL jit TO off")
            cursor.execute(
                f"""SELECT currency FROM {shares} WHERE occurred_at >= %(sub_start)s AND occurred_at < %(sub_end)s
                    UNION SELECT currency FROM {claws} WHERE occurred_at >= %(sub_start)s AND occurred_at < %(sub_end)s
                    UNION SELECT currency FROM {earnings} WHERE cycle_id = %(prev)s AND carried_out <> 0""",  # noqa: S608
                params,
            )
            currencies = sorted({r[0] for r in cursor.fetchall()} | set(prep.pools))
            last_day = (end - datetime.timedelta(days=1)).date()
            # Minor-unit factor of each currency the cycle touches, for the extras' amounts.
            cursor.execute(f"DROP TABLE IF EXISTS {self.UNITS}")
            cursor.execute(
                f"CREATE TEMP TABLE {self.UNITS} (k bigint, currency text PRIMARY KEY, factor numeric) ON COMMIT DROP"
            )
            # k numbers the currencies in byte order (as ``sorted``): rows are keyed and ordered by (creator, k),
            # a bigint compared for the currency's collated text.
            cursor.executemany(
                f"INSERT INTO {self.UNITS} VALUES (%s, %s, %s)",  # noqa: S608
                [(k, cur, 10 ** minor_unit_exponent(cur)) for k, cur in enumerate(currencies)],
            )
            cursor.execute(f"DROP TABLE IF EXISTS {self.extra}")
            cursor.execute(f"DROP TABLE IF EXISTS {self.stage}")
            # What is not the pool's (a few rows per fan payment, refund or carried balance), per creator and
            # currency, summed back to bigint (SUM of bigint is numeric). Amounts are whole minor units, so
            # summing rounded rows equals rounding the sum.
            cursor.execute(
                f"""CREATE UNLOGGED TABLE {self.extra} AS
                    SELECT creator_id, k, SUM(sub_minor)::bigint AS sub_minor, SUM(claw_minor)::bigint AS claw_minor,
                           SUM(carry_minor)::bigint AS carry_minor
                    FROM (
                        SELECT s.creator_id, u.k, round(s.amount * u.factor)::bigint AS sub_minor,
                               0::bigint AS claw_minor, 0::bigint AS carry_minor
                        FROM {shares} s JOIN {self.UNITS} u ON u.currency = s.currency
                        WHERE s.occurred_at >= %(sub_start)s AND s.occurred_at < %(sub_end)s
                        UNION ALL
                        SELECT c.creator_id, u.k, 0, round(c.amount * u.factor)::bigint, 0
                        FROM {claws} c JOIN {self.UNITS} u ON u.currency = c.currency
                        WHERE c.occurred_at >= %(sub_start)s AND c.occurred_at < %(sub_end)s
                        UNION ALL
                        SELECT e.creator_id, u.k, 0, 0, round(e.carried_out * u.factor)::bigint
                        FROM {earnings} e JOIN {self.UNITS} u ON u.currency = e.currency
                        WHERE e.cycle_id = %(prev)s AND e.carried_out <> 0
                    ) parts
                    GROUP BY creator_id, k""",  # noqa: S608
                params,
            )
            # Every creator with an earning, in id order: the eligible ones with their score, and those with
            # only extras (no score). ``chunk``: runs of chunk_size creators in id order.
            cursor.execute(
                f"""CREATE UNLOGGED TABLE {self.stage} AS
                    WITH {_eligible_sql(prep.weights)}
                    SELECT creator_id, elig.score_b AS score,
                           (row_number() OVER (ORDER BY creator_id) - 1) / %(chunk_size)s AS chunk
                    FROM elig FULL JOIN (SELECT DISTINCT creator_id FROM {self.extra}) x USING (creator_id)
                    ORDER BY creator_id""",  # noqa: S608
                params,
            )
            # Each pool's total score and cut (a row per pool), for the chunks to make every creator's part.
            cursor.execute(
                f"""WITH elig AS MATERIALIZED (
                        SELECT creator_id, score, score AS score_b FROM {self.stage} WHERE score IS NOT NULL
                    ), {_split_sql()}
                    SELECT currency, pool, small, tot, pool_b, tot_b, cut_rem, cut_creator FROM pool_cut""",  # noqa: S608
                params,
            )
            pools = {row[0]: row[1:] for row in cursor.fetchall()}
            # The chunks' creators.
            cursor.execute(
                f"""SELECT chunk, MIN(creator_id), MAX(creator_id), COUNT(*) FROM {self.stage}
                    GROUP BY chunk ORDER BY chunk"""  # noqa: S608
            )
            self.plan = [_Chunk(no=no, low=low, high=high, creators=n) for no, low, high, n in cursor.fetchall()]
            self.total = sum(chunk.creators for chunk in self.plan)
        # Each currency's k, unit, minimum payout and pool (none for a currency without a pool), for every chunk.
        columns = ("pool", "small", "tot", "pool_b", "tot_b", "cut_rem", "cut_creator")
        self.units = {
            "u_k": list(range(len(currencies))),
            "u_currency": currencies,
            "u_unit": [from_minor(1, cur) for cur in currencies],
            "u_min": [min_payout_minor(cur, last_day) for cur in currencies],
            "u_is_pool": [cur in pools for cur in currencies],
            **{f"u_{name}": [pools.get(cur, (None,) * 7)[i] for cur in currencies] for i, name in enumerate(columns)},
        }

    def write(self, chunk: _Chunk) -> dict[str, tuple[int, Decimal, Decimal, Decimal]]:
        """Insert the earnings of ``chunk``; per currency: (rows, pool parts, payable, carried out) written."""
        # Whole weights (scale 1, the usual case): the score is stored as summed, no division per row.
        score = "score" if self.prep.scale == 1 else "round(score::numeric / %(scale)s, 4)"
        params = {
            **self.units,
            "cycle": self.cycle.pk,
            "scale": self.prep.scale,
            "chunk": chunk.no,
            "low": chunk.low,
            "high": chunk.high,
        }
        fl, rem = _floor_sql("u", "s.score"), _remainder_sql("u", "s.score")
        with connection.cursor() as cursor:
            # The chunk's rows are held once (in memory) for the INSERT and for their sums.
            cursor.execute("SET LOCAL work_mem TO '64MB'")
            cursor.execute("SET LOCAL jit TO off")
            # Rows come in (creator, k) order (the stage's order, then each currency's): each index of the
            # earnings grows at its right edge instead of at random (that order is only speed: nothing depends
            # on it). A row per eligible creator and pool, and per creator and currency with extras. Minor units
            # times the exact unit (0.01): exact, and cheaper than a division.
            cursor.execute(
                f"""WITH u AS MATERIALIZED (
                        SELECT * FROM unnest(%(u_k)s::bigint[], %(u_currency)s::text[], %(u_unit)s::numeric[],
                            %(u_min)s::bigint[], %(u_is_pool)s::boolean[], %(u_pool)s::numeric[],
                            %(u_small)s::boolean[], %(u_tot)s::numeric[], %(u_pool_b)s::bigint[],
                            %(u_tot_b)s::bigint[], %(u_cut_rem)s::bigint[], %(u_cut_creator)s::bigint[])
                            AS u(k, currency, unit, min_minor, is_pool, pool, small, tot, pool_b, tot_b, cut_rem,
                                 cut_creator)
                    ), line AS (
                        SELECT s.creator_id, u.k, u.currency, u.unit, u.min_minor,
                               CASE WHEN u.is_pool THEN COALESCE(s.score, 0) ELSE 0 END AS score,
                               CASE WHEN u.is_pool AND s.score IS NOT NULL
                                    THEN {_part_sql("u", fl, rem, "s.creator_id")} ELSE 0 END AS pool_minor,
                               COALESCE(x.sub_minor, 0) AS sub_minor, COALESCE(x.claw_minor, 0) AS claw_minor,
                               COALESCE(x.carry_minor, 0) AS carry_minor
                        -- u is joined laterally (it names s; OFFSET 0 keeps the planner from flattening it)
                        -- so that s stays the outer side, read in creator order, and u the inner, in k order.
                        FROM {self.stage} s
                        CROSS JOIN LATERAL (SELECT u.*, s.creator_id AS of_creator FROM u OFFSET 0) u
                        LEFT JOIN (
                            SELECT * FROM {self.extra} WHERE creator_id >= %(low)s AND creator_id <= %(high)s
                        ) x ON x.creator_id = s.creator_id AND x.k = u.k
                        WHERE s.chunk = %(chunk)s AND ((u.is_pool AND s.score IS NOT NULL) OR x.creator_id IS NOT NULL)
                    ), chunk_rows AS MATERIALIZED (
                        SELECT line.*, t.total_minor,
                               CASE WHEN t.total_minor >= line.min_minor THEN t.total_minor ELSE 0 END AS payable_minor,
                               CASE WHEN t.total_minor >= line.min_minor THEN 0 ELSE t.total_minor END AS carried_minor
                        FROM line, LATERAL (
                            SELECT line.pool_minor + line.sub_minor - line.claw_minor + line.carry_minor AS total_minor
                        ) t
                    ), written AS (
                        INSERT INTO {CreatorEarning._meta.db_table} (cycle_id, creator_id, score, pool_amount,
                            subscription_amount, clawed_back, carried_in, total, payable, carried_out, currency)
                        SELECT %(cycle)s, creator_id, {score}, pool_minor * unit, sub_minor * unit,
                               claw_minor * unit, carry_minor * unit, total_minor * unit, payable_minor * unit,
                               carried_minor * unit, currency
                        FROM chunk_rows
                    )
                    SELECT currency, COUNT(*), SUM(pool_minor), SUM(payable_minor), SUM(carried_minor)
                    FROM chunk_rows GROUP BY currency""",  # noqa: S608
                params,
            )
            return {
                cur: (n, from_minor(pool, cur), from_minor(payable, cur), from_minor(carried, cur))
                for cur, n, pool, payable, carried in cursor.fetchall()
            }

    def close(self):
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.stage}")
            cursor.execute(f"DROP TABLE IF EXISTS {self.extra}")

    def relax_commit(self):
        # A chunk commit need not wait for its WAL flush: were the server to crash right after,
        # the whole chunk (earnings + its ledger entry, one transaction) is lost atomically and the
        # cycle, still ``computing``, recomputes exactly that chunk on the next run.
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


# Approving pays money out and closing ends the cycle for good: whoever takes either, from the admin or the
# staff API, confirms it on purpose (besides the reason the services require).
CONFIRMED_ACTIONS = frozenset({"approve", "close"})


# How a refusal names the action ("Closing a cycle needs a reason.").
_DOING = {"approve": "Approving", "reject": "Rejecting", "reopen": "Reopening", "close": "Closing"}


def cycle_action_confirmed(*, action: str, reason: str, confirmed: bool) -> None:
    """What an entry point checks before calling the action's service, in this order: the reason the
    service requires (``reason_required``, ``reason_too_long``), then, for approve and close, an explicit
    confirmation (``confirmation_required``). Nothing is read or written."""
    if action in _DOING:
        reason_check(reason, what=f"{_DOING[action]} a cycle")
    if action in CONFIRMED_ACTIONS and not confirmed:
        raise InvalidInput(
            f"Confirm that you mean to {action} this cycle: it cannot be undone from here.",
            code=CreatorErrorCode.CONFIRMATION_REQUIRED,
        )


def cycle_submit(*, cycle_id: int, actor=None) -> RevenueShareCycle:
    """Send a computed cycle to review."""
    return _simple_transition(cycle_id=cycle_id, actor=actor, name="submit", perm="creators.compute_cycle")


def _simple_transition(
    *, cycle_id: int, actor, name: str, perm: str, reason: str = "", audit_reason: str = ""
) -> RevenueShareCycle:
    require_perm(actor, perm)
    with transaction.atomic():
        cycle = _lock(cycle_id)
        method = getattr(cycle, name)
        if not can_proceed(method):
            raise IllegalTransition(f"Cannot {name} a {cycle.state} cycle.")
        before = snapshot(cycle, CYCLE_FIELDS)
        method(reason) if reason else method()
        cycle.save()
        audit_record(
            action=f"cycle.{name}",
            obj=cycle,
            actor=actor,
            before=before,
            after=snapshot(cycle, CYCLE_FIELDS),
            reason=reason or audit_reason,
        )
        return cycle


def cycle_reject(*, cycle_id: int, actor, reason: str, reopen: bool = False) -> RevenueShareCycle:
    """Send a cycle back: to ``computed`` (re-review) or, with ``reopen``, to ``open`` for a recomputation.

    Reopening deletes the earnings and posts reversing ledger entries for the computation.
    """
    reason_check(reason, what="Rejecting a cycle")
    require_perm(actor, "creators.approve_cycle")
    if not reopen:
        return _simple_transition(
            cycle_id=cycle_id, actor=actor, name="reject", perm="creators.approve_cycle", reason=reason
        )
    with transaction.atomic():
        cycle = _lock(cycle_id)
        if cycle.state not in (RevenueShareCycle.State.IN_REVIEW, RevenueShareCycle.State.COMPUTED):
            raise IllegalTransition(f"Cannot reopen a {cycle.state} cycle.")
        before = snapshot(cycle, CYCLE_FIELDS)
        prefix = f"cycle:{cycle.pk}:run:{cycle.compute_run}:earnings:"
        entries = list(JournalEntry.objects.filter(key__startswith=prefix).exclude(key__endswith=":reversal"))
        lines = defaultdict(list)
        for line in JournalLine.objects.filter(entry__in=entries):
            lines[line.entry_id].append(Leg(line.account, Money(-line.amount, line.currency)))
        journal_post_many(
            [
                Posting(
                    key=f"{e.key}:reversal",
                    kind="creator_earnings_reversal",
                    legs=lines[e.pk],
                    memo=f"Reversal: {reason}"[:255],
                    source_type="creators.revenuesharecycle",
                    source_id=str(cycle.pk),
                )
                for e in entries
                if lines[e.pk]
            ]
        )
        CreatorEarning.objects.filter(cycle=cycle).delete()
        cycle.reopen(reason)
        cycle.computed_by = None
        cycle.computed_at = None
        cycle.compute_processed = 0
        cycle.compute_total = 0
        cycle.save()
        audit_record(
            action="cycle.reopen",
            obj=cycle,
            actor=actor,
            before=before,
            after=snapshot(cycle, CYCLE_FIELDS),
            reason=reason,
        )
        return cycle


def cycle_approve(*, cycle_id: int, actor, reason: str = "") -> RevenueShareCycle:
    """Four-eyes approval with a reason; schedules the payouts (held when Compliance must look first)."""
    reason_check(reason, what="Approving a cycle")
    if actor is None or not actor.is_authenticated:
        raise PermissionDenied("Approving a cycle needs a staff member.")
    require_perm(actor, "creators.approve_cycle")
    with transaction.atomic():
        cycle = _lock(cycle_id)
        if cycle.computed_by_id is not None and cycle.computed_by_id == actor.pk:
            raise PermissionDenied("Whoever computed a cycle cannot approve it (four-eyes).", code=ErrorCode.FOUR_EYES)
        if cycle.state != RevenueShareCycle.State.IN_REVIEW:
            raise IllegalTransition(f"Cannot approve a {cycle.state} cycle.")
        before = snapshot(cycle, CYCLE_FIELDS)
        cycle.approve()
        cycle.approved_by = actor
        cycle.save()
        created, held = _schedule_payouts(cycle)
        cycle.pay_total = created
        cycle.pay_processed = 0
        cycle.save(update_fields=["pay_total", "pay_processed"])
        audit_record(
            action="cycle.approve",
            obj=cycle,
            actor=actor,
            before=before,
            after={**snapshot(cycle, CYCLE_FIELDS), "payouts": created, "held": held},
            reason=reason,
        )
        return cycle


def _schedule_payouts(cycle: RevenueShareCycle) -> tuple[int, int]:
    """One payout per earning with something payable; auto-holds where Compliance must look first.

    One statement: the payouts are inserted from the earnings joined to each creator's account and
    payout profile, and the holds from the payouts just inserted (no row goes through Python: at 100k
    creators model instances and ``bulk_create`` cost four times the SQL). The hold reasons below are the
    only source of truth for why a new payout is held; ``destination`` is the profile's account id or ''.
    Payouts are inserted as the earnings are read (their write order: creator by creator, not by amount), so
    the payouts' indexes grow near their right edge; no sort (it spilled to disk at 167k rows).
    """
    payout, hold = Payout._meta.db_table, PayoutHold._meta.db_table
    missing, connect, review = (
        PayoutHold.Kind.MISSING_TAX_FORM,
        PayoutHold.Kind.CONNECT_ACCOUNT,
        PayoutHold.Kind.SANCTIONS_REVIEW,
    )
    params = {
        "cycle": cycle.pk,
        "now": clock.now(),
        "tax_ok": [PayoutProfile.TaxFormStatus.SUBMITTED, PayoutProfile.TaxFormStatus.VERIFIED],
        "active": CreatorAccount.State.ACTIVE,
        "held": Payout.Status.HELD,
        "approved": Payout.Status.APPROVED,
        "missing": missing.value,
        "missing_reason": "No payout account or tax form on file.",
        "connect": connect.value,
        "connect_reason": "Stripe says the account cannot receive payouts.",
        "review": review.value,
    }
    with connection.cursor() as cursor:
        cursor.execute(
            f"""WITH source AS MATERIALIZED (
                    SELECT e.id AS earning_id, e.creator_id, e.payable, e.currency, e.total,
                           COALESCE(p.payout_account_id, '') AS destination,
                           (COALESCE(p.payout_account_id, '') = ''
                            OR p.tax_form_status IS NULL OR p.tax_form_status <> ALL(%(tax_ok)s)) AS no_tax_form,
                           COALESCE(p.payouts_enabled = false, false) AS cannot_receive,
                           a.state IS DISTINCT FROM %(active)s AS under_review,
                           a.state
                    FROM {CreatorEarning._meta.db_table} e
                    LEFT JOIN {PayoutProfile._meta.db_table} p ON p.creator_id = e.creator_id
                    LEFT JOIN {CreatorAccount._meta.db_table} a ON a.id = e.creator_id
                    WHERE e.cycle_id = %(cycle)s AND e.payable > 0
                ),
                inserted AS (
                    INSERT INTO {payout} (cycle_id, creator_id, earning_id, amount, currency, status, destination,
                        transfer_id, failure_reason, attempts, sends, claim_token, claimed_at, created_at, paid_at)
                    SELECT %(cycle)s, creator_id, earning_id, payable, currency,
                           CASE WHEN no_tax_form OR cannot_receive OR under_review THEN %(held)s ELSE %(approved)s END,
                           destination, '', '', 0, 0, '', NULL, %(now)s, NULL
                    FROM source
                    RETURNING id, earning_id, status
                ),
                holds AS (
                    INSERT INTO {hold} (payout_id, kind, reason, placed_by_id, placed_at, lifted_by_id, lifted_at,
                        lift_reason)
                    SELECT i.id, h.kind, h.reason, NULL, %(now)s, NULL, NULL, ''
                    FROM inserted i JOIN source s USING (earning_id)
                    CROSS JOIN LATERAL (VALUES
                        (1, s.no_tax_form, %(missing)s, %(missing_reason)s),
                        (2, s.cannot_receive, %(connect)s, %(connect_reason)s),
                        (3, s.under_review, %(review)s,
                         'Creator account is ' || COALESCE(s.state, 'None') || '; Compliance to review.')
                    ) AS h(n, applies, kind, reason)
                    WHERE i.status = %(held)s AND h.applies
                    ORDER BY i.id, h.n
                    RETURNING 1
                )
                SELECT (SELECT count(*) FROM inserted),
                       (SELECT count(*) FROM inserted WHERE status = %(held)s),
                       (SELECT count(*) FROM holds)""",  # noqa: S608
            params,
        )
        created, held, _ = cursor.fetchone()
    return created, held


def cycle_close(*, cycle_id: int, actor=None, confirm: bool = False, reason: str = "") -> RevenueShareCycle:
    """Close a paid cycle, with a reason for the audit trail. Held payouts stay owed (and held); closing
    over them needs ``confirm``."""
    reason_check(reason, what="Closing a cycle")
    with transaction.atomic():
        cycle = _lock(cycle_id)
        held = 0
        if cycle.state == RevenueShareCycle.State.PAID:
            if payable_payouts(cycle_id).exists():
                raise Conflict("Payouts are still being paid.")
            held = held_payouts(cycle_id).count()
        if held and not confirm:
            raise Conflict(
                f"{held} payout(s) are held by Compliance; confirm to close the cycle with them held.",
                code=CreatorErrorCode.CONFIRMATION_REQUIRED,
                extra={"held": held},
            )
    return _simple_transition(
        cycle_id=cycle_id, actor=actor, name="close", perm="creators.approve_cycle", audit_reason=reason
    )


def cycle_dry_run(*, cycle_id: int, actor) -> dict:
    """What the cycle's next run would do, writing nothing: the computation's plan while the cycle
    is open or computing, else what a paying run would pay and leave held (the same queries it uses)."""
    require_perm(actor, "creators.compute_cycle", or_perm="creators.approve_cycle")
    cycle = RevenueShareCycle.objects.filter(pk=cycle_id).first()
    if cycle is None:
        raise NotFound("No such cycle.")
    if cycle.state in (RevenueShareCycle.State.OPEN, RevenueShareCycle.State.COMPUTING):
        result = {"run": "compute", **cycle_plan(cycle).summary()}
    else:
        plan = cycle_pay_plan(cycle_id)
        result = {
            "run": "pay",
            "payable_count": plan["payable_count"],
            "payable": {cur: str(row["amount"]) for cur, row in plan["payable"].items()},
            "held_count": plan["held_count"],
        }
    audit_record(action="cycle.dry_run", obj=cycle, actor=actor, after=result)
    return result
