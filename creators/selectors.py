"""Reads for Finance's cycle page and the creators API."""

from __future__ import annotations

import datetime
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Max, Min, Q, Sum

from .models import CreatorEarning, EligibilityDecision, Payout, PayoutHold, RevenueShareCycle
from .services.cycles import period_bounds
from .services.payouts import cycle_pay_plan


def cycle_totals(cycle: RevenueShareCycle) -> dict:
    """Earnings totals in the pool currency (``earnings``) and per currency (``by_currency``)."""
    by_currency = list(
        CreatorEarning.objects.filter(cycle=cycle)
        .values("currency")
        .annotate(
            creators=Count("id"),
            pool_amount=Sum("pool_amount"),
            clawed_back=Sum("clawed_back"),
            payable=Sum("payable"),
            carried_out=Sum("carried_out"),
        )
        .order_by("currency")
    )
    earnings = CreatorEarning.objects.filter(cycle=cycle, currency=cycle.currency).aggregate(
        creators=Count("id"),
        pool_amount=Sum("pool_amount"),
        subscription_amount=Sum("subscription_amount"),
        carried_in=Sum("carried_in"),
        total_sum=Sum("total"),
        payable=Sum("payable"),
        carried_out=Sum("carried_out"),
        max_total=Max("total"),
        min_total=Min("total"),
    )
    payouts = {
        row["status"]: {"count": row["n"], "amount": row["amount"]}
        for row in Payout.objects.filter(cycle=cycle).values("status").annotate(n=Count("id"), amount=Sum("amount"))
    }
    # Counted by the same queries the paying run claims from: what the page says is what gets paid.
    plan = cycle_pay_plan(cycle.pk)
    return {
        "earnings": earnings,
        "by_currency": by_currency,
        "payouts": payouts,
        "held_payouts": plan["held_count"],
        "pay_plan": plan,
    }


def cycle_top_earners(cycle: RevenueShareCycle, limit: int = 20):
    return list(
        CreatorEarning.objects.filter(cycle=cycle)
        .select_related("creator__customer")
        .order_by("-total", "creator_id")[:limit]
    )


def cycle_histogram(cycle: RevenueShareCycle, *, bins: int = 20) -> list[dict]:
    """Earnings distribution on a log10 scale of the total (earnings span cents to thousands)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT width_bucket(log(GREATEST(total, 0.01)), -2, 6, %s) AS b, count(*)
               FROM creators_creatorearning WHERE cycle_id = %s GROUP BY b ORDER BY b""",
            [bins, cycle.pk],
        )
        counts = dict(cursor.fetchall())
    width = 8 / bins
    return [
        {
            "low": round(10 ** (-2 + (b - 1) * width), 2),
            "high": round(10 ** (-2 + b * width), 2),
            "count": counts.get(b, 0),
        }
        for b in range(1, bins + 1)
    ]


def histogram_svg(buckets: list[dict], *, width: int = 640, height: int = 160) -> str:
    """An inline SVG bar chart rendered server-side (no JS): each bar carries its count, the axes their names,
    and the whole chart a text alternative listing every bucket (screen readers read the numbers too)."""
    peak = max((b["count"] for b in buckets), default=0) or 1
    left = 18  # room for the vertical axis's name
    bar = (width - left) / max(len(buckets), 1)
    total = sum(b["count"] for b in buckets)
    summary = "; ".join(f"${b['low']:,} to ${b['high']:,}: {b['count']}" for b in buckets) or "no earnings"
    top = 14  # room for the counts above the tallest bar
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + top + 34}" role="img" '
        f'aria-label="Creators per earnings bucket ({total} in all): {summary}">'
    ]
    for i, b in enumerate(buckets):
        h = round(b["count"] / peak * height, 1)
        x = round(left + i * bar, 1)
        y = top + height - h
        parts.append(
            f'<rect x="{x}" y="{y}" width="{bar - 2:.1f}" height="{h}" fill="#417690">'
            f"<title>${b['low']:,} - ${b['high']:,}: {b['count']} creators</title></rect>"
        )
        if b["count"]:
            middle = x + (bar - 2) / 2
            parts.append(f'<text x="{middle:.1f}" y="{y - 2}" font-size="10" text-anchor="middle">{b["count"]}</text>')
        if i % 4 == 0:
            parts.append(f'<text x="{x}" y="{top + height + 14}" font-size="10">${b["low"]:,}</text>')
    parts.append(
        f'<text x="12" y="{top + height / 2:.0f}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {top + height / 2:.0f})">creators (peak {peak if total else 0})</text>'
        f'<line x1="{left - 2}" y1="{top}" x2="{left - 2}" y2="{top + height}" stroke="#999"/>'
        f'<line x1="{left - 2}" y1="{top + height}" x2="{width}" y2="{top + height}" stroke="#999"/>'
    )
    parts.append(
        f'<text x="{width / 2:.0f}" y="{top + height + 30}" font-size="11" text-anchor="middle">'
        "earnings per creator (bucket lower bound, log scale); bar label: creators</text></svg>"
    )
    return "".join(parts)


def cycle_anomalies(cycle: RevenueShareCycle, *, limit: int = 50) -> list[dict]:
    """Creator-days whose impressions jump above N x the trailing 7-day average (cached per computation)."""
    key = f"creators:anomalies:v1:{cycle.pk}:{cycle.compute_run}"
    found = cache.get(key)
    if found is not None:
        return found
    factor = settings.CREATOR_ANOMALY_FACTOR
    start, end = period_bounds(cycle.period)
    window_start = start.date() - datetime.timedelta(days=7)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH d AS (
                SELECT creator_id, day, SUM(impressions) AS v FROM creators_dailyengagement
                WHERE day >= %(ws)s AND day < %(end)s GROUP BY creator_id, day
            ), w AS (
                SELECT creator_id, day, v,
                       AVG(v) OVER (PARTITION BY creator_id ORDER BY day
                                    ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING) AS avg7,
                       COUNT(*) OVER (PARTITION BY creator_id ORDER BY day
                                      ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING) AS n
                FROM d
            )
            SELECT creator_id, day, v, avg7 FROM w
            WHERE day >= %(start)s AND n >= 3 AND avg7 > 0 AND v > %(factor)s * avg7
            ORDER BY v / avg7 DESC, creator_id LIMIT %(limit)s
            """,
            {"ws": window_start, "start": start.date(), "end": end.date(), "factor": factor, "limit": limit},
        )
        rows = cursor.fetchall()
    found = [
        {
            "creator_id": cid,
            "day": day.isoformat(),
            "impressions": int(v),
            "trailing_avg": round(float(avg), 1),
            "factor": round(float(v) / float(avg), 1),
        }
        for cid, day, v, avg in rows
    ]
    cache.set(key, found, 600)
    return found


def creator_current_eligibility(creator_id: int) -> EligibilityDecision | None:
    return EligibilityDecision.objects.filter(creator_id=creator_id).order_by("-decided_at", "-id").first()


def creator_earnings(creator_id: int):
    return CreatorEarning.objects.filter(creator_id=creator_id).select_related("cycle").order_by("-cycle__period")


def creator_payouts(creator_id: int, *, status: str | None = None):
    qs = Payout.objects.filter(creator_id=creator_id).select_related("cycle").order_by("-id")
    if status:
        qs = qs.filter(status=status)
    return qs


def payouts_csv_rows(cycle: RevenueShareCycle):
    """Header then one row per payout, streamed in id order (keyset, no OFFSET)."""
    yield [
        "payout_id",
        "creator_id",
        "customer_external_id",
        "amount",
        "currency",
        "status",
        "destination",
        "transfer_id",
        "paid_at",
        "active_holds",
    ]
    if not Payout.objects.filter(cycle=cycle).exists():
        # Before approval there are no payouts yet: Finance reviews what approving would create, one row per
        # payable earning, rather than an empty file.
        yield from _proposed_payout_rows(cycle)
        return
    last = 0
    while True:
        chunk = list(
            Payout.objects.filter(cycle=cycle, pk__gt=last)
            .order_by("pk")
            .annotate(active_holds=Count("holds", filter=Q(holds__lifted_at__isnull=True)))
            .values_list(
                "pk",
                "creator_id",
                "creator__customer__external_id",
                "amount",
                "currency",
                "status",
                "destination",
                "transfer_id",
                "paid_at",
                "active_holds",
            )[:5000]
        )
        if not chunk:
            return
        for row in chunk:
            yield [*row[:3], f"{Decimal(row[3]):.2f}", *row[4:8], row[8].isoformat() if row[8] else "", row[9]]
        last = chunk[-1][0]


def _proposed_payout_rows(cycle: RevenueShareCycle):
    last = 0
    while True:
        chunk = list(
            CreatorEarning.objects.filter(cycle=cycle, payable__gt=0, pk__gt=last)
            .order_by("pk")
            .values_list("pk", "creator_id", "creator__customer__external_id", "payable", "currency")[:5000]
        )
        if not chunk:
            return
        for _, creator_id, external_id, payable, currency in chunk:
            yield ["", creator_id, external_id, f"{Decimal(payable):.2f}", currency, "proposed", "", "", "", 0]
        last = chunk[-1][0]


def creator_payouts_and_holds(creator_id: int, *, limit: int = 12) -> dict:
    """The creator page's payout section: the latest payouts (with their open holds counted) and every hold
    still in place, so Compliance reaches a payout's hold form from the creator."""
    payouts = list(
        Payout.objects.filter(creator_id=creator_id)
        .select_related("cycle")
        .annotate(active_holds=Count("holds", filter=Q(holds__lifted_at__isnull=True)))
        .order_by("-id")[:limit]
    )
    holds = list(
        PayoutHold.objects.filter(payout__creator_id=creator_id, lifted_at__isnull=True)
        .select_related("payout", "placed_by")
        .order_by("-placed_at")[:50]
    )
    return {"payouts": payouts, "holds": holds}


def _decision_summary(decision: EligibilityDecision | None) -> str:
    if decision is None:
        return "never evaluated"
    verdict = "eligible" if decision.eligible else "not eligible"
    parts = []
    for name, rule in (decision.reasons or {}).items():
        if isinstance(rule, dict):
            mark = "✓" if rule.get("passed") else "✗"
            parts.append(f"{mark} {name} {rule.get('measured')} (needs {rule.get('threshold')})")
    return f"{verdict} on {decision.decided_at:%Y-%m-%d}" + (": " + "; ".join(parts) if parts else "")


def customer_creator_panel(customer) -> list[dict]:
    """The support page's "Creator" panel: five queries at most (one when the customer is no creator).

    The account's state and payout readiness, the current eligibility decision with its reasons,
    the latest earnings and payouts with their status, and the active holds, with admin links.
    """
    from django.urls import reverse
    from django.utils.html import format_html

    from .models import CreatorAccount, PayoutHold

    creator = CreatorAccount.objects.select_related("payout_profile").filter(customer=customer).first()
    if creator is None:
        return []
    profile = getattr(creator, "payout_profile", None)
    decision = creator_current_eligibility(creator.pk)
    earnings = list(creator_earnings(creator.pk)[:3])
    payouts = list(
        Payout.objects.filter(creator=creator)
        .select_related("cycle")
        .annotate(active_holds=Count("holds", filter=Q(holds__lifted_at__isnull=True)))
        .order_by("-id")[:3]
    )
    holds = list(
        PayoutHold.objects.filter(payout__creator=creator, lifted_at__isnull=True)
        .select_related("payout__cycle")
        .order_by("-placed_at")[:10]
    )
    rows = [
        {
            "creator": format_html(
                '<a href="{}">creator #{}</a>',
                reverse("admin:creators_creatoraccount_change", args=[creator.pk]),
                creator.pk,
            ),
            "state": creator.get_state_display() + (f" ({creator.state_reason[:60]})" if creator.state_reason else ""),
            "payout profile": "complete" if profile is not None and profile.is_complete else "incomplete",
            "eligibility": _decision_summary(decision),
        }
    ]
    for e in earnings:
        rows.append(
            {
                "earning": f"{e.cycle.period:%Y-%m}",
                "total": f"{e.total} {e.currency}",
                "payable": f"{e.payable} {e.currency}",
                "carried over": f"{e.carried_out} {e.currency}",
                "cycle": e.cycle.get_state_display(),
            }
        )
    for p in payouts:
        rows.append(
            {
                "payout": format_html(
                    '<a href="{}">#{}</a>', reverse("admin:creators_payout_change", args=[p.pk]), p.pk
                ),
                "cycle": f"{p.cycle.period:%Y-%m}",
                "amount": f"{p.amount} {p.currency}",
                "status": p.get_status_display() + (f": {p.failure_reason}" if p.failure_reason else ""),
                "active holds": p.active_holds,
            }
        )
    for h in holds:
        rows.append(
            {
                "hold": h.get_kind_display(),
                "payout": format_html(
                    '<a href="{}">#{}</a> ({})',
                    reverse("admin:creators_payout_change", args=[h.payout_id]),
                    h.payout_id,
                    f"{h.payout.cycle.period:%Y-%m}",
                ),
                "since": f"{h.placed_at:%Y-%m-%d}",
                "reason": h.reason[:80],
            }
        )
    return rows


TAX_TOTALS_HEADER = [
    "creator_id",
    "customer_external_id",
    "country",
    "tax_form_type",
    "payout_account",
    "currency",
    "earned",
    "clawed_back",
    "paid",
    "payouts",
    "paid_q1",
    "paid_q2",
    "paid_q3",
    "paid_q4",
]


def annual_creator_totals_rows(year: int):
    """Header then one row per creator and currency for tax reporting (1099-K / DAC7 style): what was earned
    in the year's cycles (pool and subscription shares, before clawbacks), clawed back, and paid out (by the
    date it was paid, in total and per quarter, with the number of payouts)."""
    from django.db.models.functions import ExtractQuarter

    yield TAX_TOTALS_HEADER
    rows: dict[tuple[int, str], dict] = {}

    def row(creator_id: int, currency: str) -> dict:
        return rows.setdefault(
            (creator_id, currency),
            {"earned": Decimal(0), "clawed_back": Decimal(0), "paid": Decimal(0), "payouts": 0, "q": [Decimal(0)] * 4},
        )

    for r in (
        CreatorEarning.objects.filter(cycle__period__year=year)
        .values("creator_id", "currency")
        .annotate(pool=Sum("pool_amount"), subs=Sum("subscription_amount"), claw=Sum("clawed_back"))
    ):
        entry = row(r["creator_id"], r["currency"])
        entry["earned"] += (r["pool"] or 0) + (r["subs"] or 0)
        entry["clawed_back"] += r["claw"] or 0
    for r in (
        Payout.objects.filter(status=Payout.Status.PAID, paid_at__year=year)
        .annotate(quarter=ExtractQuarter("paid_at"))
        .values("creator_id", "currency", "quarter")
        .annotate(amount=Sum("amount"), n=Count("id"))
    ):
        entry = row(r["creator_id"], r["currency"])
        entry["paid"] += r["amount"]
        entry["payouts"] += r["n"]
        entry["q"][r["quarter"] - 1] += r["amount"]
    from .models import CreatorAccount

    people = {
        c["id"]: c
        for c in CreatorAccount.objects.filter(id__in={cid for cid, _ in rows}).values(
            "id",
            "customer__external_id",
            "customer__country",
            "payout_profile__tax_form_type",
            "payout_profile__payout_account_id",
        )
    }
    for (creator_id, currency), t in sorted(rows.items()):
        who = people.get(creator_id, {})
        yield [
            creator_id,
            who.get("customer__external_id", ""),
            who.get("customer__country", ""),
            who.get("payout_profile__tax_form_type") or "",
            who.get("payout_profile__payout_account_id") or "",
            currency,
            *(f"{v:.2f}" for v in (t["earned"], t["clawed_back"], t["paid"])),
            t["payouts"],
            *(f"{v:.2f}" for v in t["q"]),
        ]
