"""Revenue as Finance reads it: by provider and currency, and in the reporting currency.

- **Gross**: what customers paid (tax included), by the day the payment happened.
- **Refunds**: what was given back, by the day the refund succeeded.
- **Commission, fees, tax**: what the stores kept, the processors' fees, the tax in the price.
- **Proceeds** = gross - refunds - commission - fees - tax, refunds net of the tax and commission
  they give back (a refund's tax and commission shares are taken in proportion to its payment).
- **Recognized revenue**: the ledger's revenue accounts (credits, less refunds' contra-revenue).

Amounts are summed per (provider, currency, day) in SQL, then converted at each day's reference
rate (``monetization.services.fx.RateTable``); a currency with no rate that day is reported apart.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, DecimalField, ExpressionWrapper, F, Q, Sum
from django.db.models.functions import TruncDate

from monetization.models import JournalLine, Payment, Refund
from monetization.money import quantize
from monetization.services.fx import RateTable

TAKEN = (Payment.Status.SUCCEEDED, Payment.Status.PARTIALLY_REFUNDED, Payment.Status.REFUNDED)
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
    """Gross, refunds, commission, fees, tax and proceeds over ``[start, end]`` per provider and currency."""
    since, until = _midnight(start), _midnight(end + datetime.timedelta(days=1))
    payments = (
        Payment.objects.filter(status__in=TAKEN, occurred_at__gte=since, occurred_at__lt=until)
        .annotate(day=TruncDate("occurred_at", tzinfo=datetime.UTC))
        .values("provider", "amount_currency", "day")
        .annotate(n=Count("id"), gross=Sum("amount"), commission=Sum("commission"), fees=Sum("fee"), tax=Sum("tax"))
        .order_by()
    )
    share = ExpressionWrapper(
        F("amount") / F("payment__amount"), output_field=DecimalField(max_digits=30, decimal_places=12)
    )
    refunds = (
        Refund.objects.filter(status=Refund.Status.SUCCEEDED, completed_at__gte=since, completed_at__lt=until)
        .annotate(day=TruncDate("completed_at", tzinfo=datetime.UTC), share=share)
        .values("payment__provider", "amount_currency", "day")
        .annotate(
            n=Count("id"),
            amount=Sum("amount"),
            commission=Sum(F("share") * F("payment__commission")),
            tax=Sum(F("share") * F("payment__tax")),
        )
        .order_by()
    )
    # (provider, currency, day) -> figures; refunds give back their share of tax and commission.
    by_day: dict[tuple[str, str, datetime.date], dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in payments:
        key = (r["provider"], r["amount_currency"], r["day"])
        for name, column in (("gross", "gross"), ("commission", "commission"), ("fees", "fees"), ("tax", "tax")):
            by_day[key][name] += r[column]
        counts[key[:2]][0] += r["n"]
    for r in refunds:
        currency = r["amount_currency"]
        key = (r["payment__provider"], currency, r["day"])
        by_day[key]["refunds"] += r["amount"]
        by_day[key]["commission"] -= quantize(r["commission"] or Decimal(0), currency)
        by_day[key]["tax"] -= quantize(r["tax"] or Decimal(0), currency)
        counts[key[:2]][1] += r["n"]
    rates = RateTable(currencies={k[1] for k in by_day}, to=to, start=start, end=end)
    rows: dict[tuple[str, str], RevenueRow] = {}
    for (provider, currency, day), figures in sorted(by_day.items()):
        row = rows.setdefault((provider, currency), RevenueRow(provider=provider, currency=currency))
        for name in FIELDS:
            value = figures.get(name, Decimal(0))
            setattr(row, name, getattr(row, name) + value)
            converted = rates.convert(value, currency, day)
            if converted is None or row.reporting.get(name, 0) is None:
                row.reporting[name] = None
            else:
                row.reporting[name] = row.reporting.get(name, Decimal(0)) + converted
    for key, row in rows.items():
        row.payments, row.refunds_count = counts[key]
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
