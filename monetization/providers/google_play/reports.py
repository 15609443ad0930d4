"""Google Play's monthly earnings report (CSV), as the lines our books know.

One row per money movement of an order (``Description`` is the order id, ``GPA....``, our
payment's reference), ``Transaction Type`` saying which: ``Charge`` (the price, tax included),
``Google fee`` (the commission, negative), ``Tax`` (the tax Google withholds and remits,
negative), and for a refund ``Charge refund`` (negative), ``Google fee refund`` and
``Tax refund``. Amounts are read in the buyer's currency (``Buyer Currency``,
``Amount (Buyer Currency)``): the currency our payment is in. A refunded order is one refund
line per order (Play refunds by order), under the order id.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal

from ..base import ReportLine

REQUIRED = {"Description", "Transaction Type", "Buyer Currency", "Amount (Buyer Currency)"}
PAYMENT_TYPES = {"Charge": "gross", "Google fee": "commission", "Tax": "tax"}
REFUND_TYPES = {"Charge refund": "gross", "Google fee refund": "commission", "Tax refund": "tax"}


def earnings_report_lines(text: str) -> Iterator[ReportLine]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = REQUIRED - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"not a Google Play earnings report: no column {', '.join(sorted(missing))}")
    # (order, kind) -> currency and its figures; an order's rows may be anywhere in the file.
    totals: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    currencies: dict[tuple[str, str], str] = {}
    days: dict[tuple[str, str], datetime.date] = {}
    for row in reader:
        kind_type = row["Transaction Type"].strip()
        if kind_type in PAYMENT_TYPES:
            line_kind, figure = "payment", PAYMENT_TYPES[kind_type]
        elif kind_type in REFUND_TYPES:
            line_kind, figure = "refund", REFUND_TYPES[kind_type]
        else:
            continue
        key = (row["Description"].strip(), line_kind)
        totals[key][figure] += abs(Decimal(row["Amount (Buyer Currency)"].replace(",", "")))
        currencies[key] = row["Buyer Currency"].strip().upper()
        when = (row.get("Transaction Date") or "").strip()
        if when:
            days[key] = datetime.datetime.strptime(when, "%b %d, %Y").date()  # "Mar 10, 2026"
    for (order, line_kind), figures in totals.items():
        yield ReportLine(
            reference=order,
            line_kind=line_kind,
            currency=currencies[(order, line_kind)],
            gross=figures["gross"],
            commission=figures["commission"],
            tax=figures["tax"],
            occurred_on=days.get((order, line_kind)),
        )
