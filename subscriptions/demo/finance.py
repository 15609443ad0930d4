"""Demo: Finance's daily snapshots over the demo's history, so the Finance page and the staff metrics
API have figures from the first demo payment to today (the beat refresh keeps them current after).
Idempotent: a re-run recomputes the same rows."""

from __future__ import annotations

from monetization import clock
from monetization.models import Payment
from subscriptions.services.finance_snapshots import finance_snapshots_refresh


def seed(*, rng, out, options) -> None:
    first = Payment.objects.order_by("occurred_at").values_list("occurred_at", flat=True).first()
    if first is None:
        out.write("  no payments: no Finance snapshots")
        return
    today = clock.now().date()
    result = finance_snapshots_refresh(start=first.date(), end=today)
    out.write(f"  Finance snapshots: {result.days} days, {result.rows} rows")
