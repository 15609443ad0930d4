"""Revenue as Finance reads it: by provider and currency, and in the reporting currency.

- **Gross**: what customers paid (tax included), by the day the payment happened.
- **Refunds**: what was given back, by the day the refund succeeded.
- **Commission, fees, tax**: what the stores kept, the processors' fees, the tax in the price.
- **Proceeds** = gross - refunds - commission - fees - tax, refunds net of the tax and commission
  they give back (a refund's tax and commission shares are taken in proportion to its payment).
- **Recognized revenue**: the ledger's revenue accounts (credits, less refunds' contra-revenue).

Amounts are summed per (provider, currency, day) into the daily snapshot ``RevenueDay``
(``services.finance_snapshots``: one set-based statement per range of days, refreshed by beat),
then read back and converted at each day's reference rate (``monetization.services.fx.RateTable``);
a currency with no rate that day is reported apart.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Q, Sum

from monetization.models import JournalLine, RevenueDay
from monetization.money import quantize
from monetization.services.fx import RateTable

FIELDS = ("gross", "refunds", "commission", "fees", "tax")


def _midnight(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)


@dataclass
class RevenueRow:
    provider: str
    currency: str
    payments: int = 0
    refunds_count: int = 0
    gross: Decimal = Decimal(0)
    refunds: Decimal = Decimal(0)
    commission: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    tax: Decimal = Decimal(0)
    reporting: dict[str, Decimal | None] = field(default_factory=dict)  # the same figures converted

    @property
    def proceeds(self) -> Decimal:
        return self.gross - self.refunds - self.commission - self.fees - self.tax


def revenue_by_provider_currency(*, start: datetime.date, end: datetime.date, to: str) -> list[RevenueRow]:
    """Gross, refunds, commission, fees, tax and proceeds over ``[start, end]`` per provider and currency.

    Read from the daily snapshot (``RevenueDay``, written by ``services.finance_snapshots``)."""
    days = (
        RevenueDay.objects.filter(day__gte=start, day__lte=end)
        .values("provider", "currency", "day", "payments", "refunds_count", *FIELDS)
        .order_by("provider", "currency", "day")
    )
    days = list(days)
    rates = RateTable(currencies={r["currency"] for r in days}, to=to, start=start, end=end)
    rows: dict[tuple[str, str], RevenueRow] = {}
    for r in days:
        currency = r["currency"]
        row = rows.setdefault((r["provider"], currency), RevenueRow(provider=r["provider"], currency=currency))
        row.payments += r["payments"]
        row.refunds_count += r["refunds_count"]
        for name in FIELDS:
            value = quantize(r[name], currency)
            setattr(row, name, getattr(row, name) + value)
            converted = rates.convert(value, currency, r["day"])
            if converted is None or row.reporting.get(name, 0) is None:
                row.reporting[name] = None
            else:
                row.reporting[name] = row.reporting.get(name, Decimal(0)) + converted
    for row in rows.values():
        values = [row.reporting.get(n) for n in FIELDS]
        row.reporting["proceeds"] = (
            None if any(v is None for v in values) else values[0] - values[1] - values[2] - values[3] - values[4]
        )
    return sorted(rows.values(), key=lambda r: (r.provider, r.currency))


def recognized_revenue(*, start: datetime.date, end: datetime.date) -> dict[str, Decimal]:
    """Revenue the ledger recognized over ``[start, end]`` per currency (credits positive, refunds deducted)."""
    since, until = _midnight(start), _midnight(end + datetime.timedelta(days=1))
    rows = (
        JournalLine.objects.filter(entry__posted_at__gte=since, entry__posted_at__lt=until)
        .filter(Q(account__startswith="revenue:") | Q(account="contra_revenue:refunds"))
        .values("currency")
        .annotate(total=Sum("amount"))
        .order_by("currency")
    )
    # Credits are negative on the ledger: revenue is their opposite.
    return {r["currency"]: -r["total"] for r in rows}
