"""Stripe's "Balance change from activity" itemized report (CSV), as the lines our books know.

Columns used (Stripe's names; the report has more): ``created_utc``,
``reporting_category`` (``charge``, ``refund``, ...), ``currency`` (lower case), ``gross``,
``fee`` (major units, signed as the balance sees them: a refund's gross is negative),
``source_id`` (the refund's ``re_`` id for a refund) and ``invoice_id`` (the invoice a charge
paid: our payment's reference). Other categories (payouts, adjustments, Connect transfers) are
not payments or refunds of ours and are skipped.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Iterator
from decimal import Decimal

from ..base import ReportLine

REQUIRED = {"reporting_category", "currency", "gross", "fee", "source_id", "invoice_id"}


def balance_report_lines(text: str) -> Iterator[ReportLine]:
    reader = csv.DictReader(io.StringIO(text))
    missing = REQUIRED - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"not a Stripe itemized balance report: no column {', '.join(sorted(missing))}")
    for row in reader:
        category = (row.get("reporting_category") or "").strip()
        currency = row["currency"].strip().upper()
        gross, fee = abs(Decimal(row["gross"])), abs(Decimal(row["fee"] or "0"))
        created = (row.get("created_utc") or "").strip()
        day = datetime.date.fromisoformat(created[:10]) if created else None
        if category == "charge" and row["invoice_id"].strip():
            reference, line_kind = row["invoice_id"].strip(), "payment"
        elif category == "refund":
            reference, line_kind = row["source_id"].strip(), "refund"
        else:
            continue
        yield ReportLine(reference, line_kind, currency, gross=gross, fee=fee, occurred_on=day)
