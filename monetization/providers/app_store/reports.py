"""App Store Connect's reports (tab-separated), as the lines our books know.

Apple reports no transaction ids: a row sums the units sold at one customer price, in one
storefront and currency, over a day (the *Summary Sales Report*: ``Begin Date``/``End Date``
MM/DD/YYYY, ``Units``, ``Customer Price``, ``Developer Proceeds`` per unit, ``Customer Currency``,
``Country Code``, ``Currency of Proceeds``) or over Apple's fiscal month (the *financial report*:
``Start Date``/``End Date``, ``Quantity``, ``Partner Share`` per unit, ``Extended Partner Share``,
``Partner Share Currency``, ``Sales or Return`` S/R, ``Country Of Sale``, ``Customer Price``,
``Customer Currency``; its closing total rows are not sales). So a line here is such a group,
referenced by :func:`group_reference`, and our payments are summed the same way to meet it. A
return is a row with negative units (sales report) or ``R`` (financial report). Proceeds are
compared only when Apple paid them in the customer's currency (ours are booked in it).
"""

from __future__ import annotations

import csv
import datetime
import io
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal

from monetization.money import quantize

from ..base import ReportLine

SALES_REQUIRED = {
    "Units",
    "Developer Proceeds",
    "Begin Date",
    "End Date",
    "Customer Currency",
    "Country Code",
    "Currency of Proceeds",
    "Customer Price",
}
FINANCIAL_REQUIRED = {
    "Start Date",
    "End Date",
    "Quantity",
    "Partner Share",
    "Partner Share Currency",
    "Sales or Return",
    "Country Of Sale",
    "Customer Price",
    "Customer Currency",
}


def group_reference(first: datetime.date, last: datetime.date, country: str, currency: str, price: Decimal) -> str:
    """The reference of one group: its days, storefront, currency and unit price (e.g.
    ``2026-03-10 GB GBP 9.99``, or ``2026-02-01..2026-02-28 GB GBP 9.99`` over a fiscal month)."""
    days = first.isoformat() if first == last else f"{first.isoformat()}..{last.isoformat()}"
    return f"{days} {country.upper()} {currency.upper()} {quantize(abs(price), currency)}"


def _day(text: str) -> datetime.date:
    return datetime.datetime.strptime(text.strip(), "%m/%d/%Y").date()


def _rows(text: str, required: set[str], what: str) -> csv.DictReader:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")), delimiter="\t")
    missing = required - {name.strip() for name in reader.fieldnames or ()}
    if missing:
        raise ValueError(f"not an App Store {what}: no column {', '.join(sorted(missing))}")
    return reader


def _lines(groups: dict, currencies: dict, days: dict) -> Iterator[ReportLine]:
    for (reference, line_kind), figures in groups.items():
        yield ReportLine(
            reference=reference,
            line_kind=line_kind,
            currency=currencies[reference],
            gross=figures["gross"],
            proceeds=figures.get("proceeds") if figures.get("proceeds_known", 1) else None,
            occurred_on=days[reference],
        )


def sales_report_lines(text: str) -> Iterator[ReportLine]:
    """A Summary Sales Report (daily): one line per (day, storefront, currency, price) and sale or return."""
    groups: dict = defaultdict(lambda: defaultdict(Decimal))
    currencies, days = {}, {}
    for row in _rows(text, SALES_REQUIRED, "sales report"):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        units = Decimal(row["Units"])
        if not units:
            continue
        first, last = _day(row["Begin Date"]), _day(row["End Date"])
        currency, price = row["Customer Currency"].upper(), Decimal(row["Customer Price"])
        reference = group_reference(first, last, row["Country Code"], currency, price)
        figures = groups[(reference, "payment" if units > 0 else "refund")]
        figures["gross"] += abs(units) * abs(price)
        figures["proceeds"] += abs(units) * abs(Decimal(row["Developer Proceeds"]))
        if row["Currency of Proceeds"].upper() != currency:
            figures["proceeds_known"] = 0
        else:
            figures.setdefault("proceeds_known", 1)
        currencies[reference], days[reference] = currency, first
    yield from _lines(groups, currencies, days)


def financial_report_lines(text: str) -> Iterator[ReportLine]:
    """A financial report (Apple's fiscal month): one line per (storefront, currency, price) and sale or return."""
    groups: dict = defaultdict(lambda: defaultdict(Decimal))
    currencies, days = {}, {}
    for row in _rows(text, FINANCIAL_REQUIRED, "financial report"):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        try:
            first, last = _day(row["Start Date"]), _day(row["End Date"])
        except ValueError:
            continue  # the closing Total_Rows / Total_Amount / Total_Units rows
        quantity = abs(Decimal(row["Quantity"]))
        currency, price = row["Customer Currency"].upper(), Decimal(row["Customer Price"])
        reference = group_reference(first, last, row["Country Of Sale"], currency, price)
        figures = groups[(reference, "refund" if row["Sales or Return"].upper() == "R" else "payment")]
        figures["gross"] += quantity * abs(price)
        figures["proceeds"] += quantity * abs(Decimal(row["Partner Share"]))
        if row["Partner Share Currency"].upper() != currency:
            figures["proceeds_known"] = 0
        else:
            figures.setdefault("proceeds_known", 1)
        currencies[reference], days[reference] = currency, first
    yield from _lines(groups, currencies, days)
