"""Billing period arithmetic that keeps the anchor day.

A monthly subscription started on Jan 31 renews on Feb 29 (2028) or Feb 28
(2027), then on Mar 31: the day clamps to the month's length but the anchor
is never lost, which naive "add one month to the last end" would do (Jan 31
-> Feb 28 -> Mar 28). This is what Stripe's billing_cycle_anchor and the
stores do. Times are aware; the wall-clock time of day is kept in UTC, so a
period is never an hour short or long across a DST change.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta

INTERVALS = ("day", "week", "month", "year")


def _clamp(year: int, month: int, day: int) -> int:
    return min(day, calendar.monthrange(year, month)[1])


def add_interval(start: datetime, interval: str, count: int = 1, anchor_day: int | None = None) -> datetime:
    """``start`` plus ``count`` intervals; months and years land on ``anchor_day`` (clamped).

    ``anchor_day`` defaults to ``start.day``; pass the original anchor when
    stepping from a clamped date (Feb 28 with anchor 31 -> Mar 31).
    """
    if interval == "day":
        return start + timedelta(days=count)
    if interval == "week":
        return start + timedelta(weeks=count)
    if interval not in ("month", "year"):
        raise ValueError(f"Unknown interval {interval!r}; use one of {INTERVALS}")
    anchor = anchor_day or start.day
    months = count * (12 if interval == "year" else 1)
    index = start.year * 12 + (start.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    return start.replace(year=year, month=month, day=_clamp(year, month, anchor))


def nth_period_end(anchor: datetime, interval: str, count: int = 1, *, n: int = 1) -> datetime:
    """The end of the ``n``-th period of a subscription anchored at ``anchor`` (never drifts)."""
    return add_interval(anchor, interval, count * n, anchor_day=anchor.day)
