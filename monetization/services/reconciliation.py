"""Our books against what the providers say they paid: import a report, list every line that differs.

A report (a provider's file, in its own layout: :data:`report_kinds`) is parsed into lines
(:class:`~monetization.providers.base.ReportLine`) and matched line by line, by the provider's id,
against our payments and refunds: a line we do not have, a payment or refund of ours in the
report's days that it does not list, and each figure that differs (amount, the processing fee,
the store's commission, the tax it withheld) become one :class:`ReconciliationMismatch` each, in
Finance's queue until someone resolves it with a written resolution (audited). Importing the same
file again finds the first import (its digest is unique) and adds nothing. All of it runs in one
transaction: a file that cannot be read changes nothing.
"""

from __future__ import annotations

import datetime
import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, DecimalField, ExpressionWrapper, F, Sum
from django.db.models.functions import TruncDate

from monetization import clock
from monetization.errors import Conflict, InvalidInput, NotFound
from monetization.models import Payment, ProviderReport, ReconciliationMismatch, Refund
from monetization.money import quantize
from monetization.providers.app_store.reports import financial_report_lines, group_reference, sales_report_lines
from monetization.providers.base import ReportLine
from monetization.providers.google_play.reports import earnings_report_lines
from monetization.providers.stripe.reports import balance_report_lines
from monetization.registry import Registry
from monetization.services.audit import audit_record, snapshot
from monetization.services.permissions import require_perm

Kind = ReconciliationMismatch.Kind
CHUNK = 5000
TAKEN = (Payment.Status.SUCCEEDED, Payment.Status.PARTIALLY_REFUNDED, Payment.Status.REFUNDED)


@dataclass(frozen=True)
class ReportKind:
    provider: str
    parse: Callable[[str], Iterable[ReportLine]]
    # Which figures the report states, per line kind (the rest it does not say, so is not compared).
    payment_figures: tuple[str, ...]
    refund_figures: tuple[str, ...] = ("amount",)
    # The report sums sales by day (or period), storefront, currency and price instead of listing them:
    # ours are summed the same way (``app_store.reports.group_reference``) to meet its lines.
    grouped: bool = False


report_kinds: Registry[ReportKind] = Registry("provider report kind")
report_kinds.register("stripe_balance", ReportKind("stripe", balance_report_lines, ("amount", "fee")))
report_kinds.register(
    "play_earnings", ReportKind("google_play", earnings_report_lines, ("amount", "commission", "tax"))
)
report_kinds.register(
    "app_store_sales",
    ReportKind("app_store", sales_report_lines, ("amount", "proceeds"), ("amount", "proceeds"), grouped=True),
)
report_kinds.register(
    "app_store_financial",
    ReportKind("app_store", financial_report_lines, ("amount", "proceeds"), ("amount", "proceeds"), grouped=True),
)

FIGURE_KIND = {
    "amount": Kind.AMOUNT,
    "fee": Kind.FEE,
    "commission": Kind.COMMISSION,
    "tax": Kind.TAX,
    "proceeds": Kind.PROCEEDS,
}
LINE_FIGURE = {"amount": "gross", "fee": "fee", "commission": "commission", "tax": "tax", "proceeds": "proceeds"}


def _chunks(items: list, size: int = CHUNK):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _ours_payments(provider: str, references: list[str]) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for chunk in _chunks(references):
        rows = Payment.objects.filter(provider=provider, provider_reference__in=chunk, status__in=TAKEN).values(
            "provider_reference", "amount", "amount_currency", "fee", "commission", "tax"
        )
        for row in rows:
            found[row["provider_reference"]] = {**row, "currency": row["amount_currency"]}
    return found


def _ours_refunds(provider: str, references: list[str], *, by_payment: bool) -> dict[str, dict]:
    """Succeeded refunds by their provider id, or (Play refunds by order) summed by their payment's reference."""
    key = "payment__provider_reference" if by_payment else "provider_refund_id"
    found: dict[str, dict] = {}
    for chunk in _chunks(references):
        rows = (
            Refund.objects.filter(payment__provider=provider, status=Refund.Status.SUCCEEDED, **{f"{key}__in": chunk})
            .values(key, "amount_currency")
            .annotate(total=Sum("amount"))
            .order_by()
        )
        for row in rows:
            found[row[key]] = {"amount": row["total"], "currency": row["amount_currency"]}
    return found


def _compare(report, line: ReportLine, ours: dict | None, figures: tuple[str, ...]) -> list[ReconciliationMismatch]:
    def mismatch(kind, mine, theirs):
        return ReconciliationMismatch(
            report=report,
            provider=report.provider,
            reference=line.reference,
            line_kind=line.line_kind,
            kind=kind,
            currency=line.currency,
            ours=mine,
            theirs=theirs,
        )

    if ours is None:
        return [mismatch(Kind.MISSING_HERE, None, line.gross)]
    if ours["currency"] != line.currency:
        return [mismatch(Kind.AMOUNT, ours["amount"], line.gross)]
    return [
        mismatch(FIGURE_KIND[f], ours[f], getattr(line, LINE_FIGURE[f]))
        for f in figures
        if getattr(line, LINE_FIGURE[f]) is not None and ours[f] != getattr(line, LINE_FIGURE[f])
    ]


def _midnight(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)


def _ours_grouped(provider: str, lines: list[ReportLine]) -> dict[tuple[str, str], dict]:
    """Our payments and refunds over each of the report's spans (a day, or a fiscal month), summed by
    storefront (the customer's country), currency and price like the report: (reference, kind) -> figures."""
    spans = {line.reference.split(" ", 1)[0] for line in lines}
    found: dict[tuple[str, str], dict] = {}
    net = ExpressionWrapper(F("amount") - F("tax") - F("commission"), output_field=DecimalField())
    for span in spans:
        first, _, last = span.partition("..")
        first_day = datetime.date.fromisoformat(first)
        last_day = datetime.date.fromisoformat(last) if last else first_day
        since, until = _midnight(first_day), _midnight(last_day + datetime.timedelta(days=1))
        by_day = not last  # a daily report's lines each say their day
        day = {"day": TruncDate("occurred_at", tzinfo=datetime.UTC)} if by_day else {}
        paid = (
            Payment.objects.filter(provider=provider, status__in=TAKEN, occurred_at__gte=since, occurred_at__lt=until)
            .annotate(**day)
            .values(*day, "customer__country", "amount_currency", "amount")
            .annotate(n=Count("id"), gross=Sum("amount"), proceeds=Sum(net))
            .order_by()
        )
        for row in paid:
            on = row.get("day", first_day)
            reference = group_reference(
                on, on if by_day else last_day, row["customer__country"], row["amount_currency"], row["amount"]
            )
            found[(reference, "payment")] = {
                "amount": row["gross"],
                "proceeds": row["proceeds"],
                "currency": row["amount_currency"],
                "day": on,
            }
        share = ExpressionWrapper(
            F("amount") * (F("payment__amount") - F("payment__tax") - F("payment__commission")) / F("payment__amount"),
            output_field=DecimalField(max_digits=30, decimal_places=12),
        )
        day = {"day": TruncDate("completed_at", tzinfo=datetime.UTC)} if by_day else {}
        refunded = (
            Refund.objects.filter(
                payment__provider=provider,
                status=Refund.Status.SUCCEEDED,
                completed_at__gte=since,
                completed_at__lt=until,
            )
            .annotate(**day)
            .values(*day, "payment__customer__country", "amount_currency", "payment__amount")
            .annotate(gross=Sum("amount"), proceeds=Sum(share))
            .order_by()
        )
        for row in refunded:
            on = row.get("day", first_day)
            currency = row["amount_currency"]
            reference = group_reference(
                on, on if by_day else last_day, row["payment__customer__country"], currency, row["payment__amount"]
            )
            found[(reference, "refund")] = {
                "amount": row["gross"],
                "proceeds": quantize(row["proceeds"], currency),
                "currency": currency,
                "day": on,
            }
    return found


def _grouped_mismatches(report, lines: list[ReportLine], spec: ReportKind) -> list[ReconciliationMismatch]:
    ours = _ours_grouped(spec.provider, lines)
    found: list[ReconciliationMismatch] = []
    for line in lines:
        figures = spec.payment_figures if line.line_kind == "payment" else spec.refund_figures
        found += _compare(report, line, ours.pop((line.reference, line.line_kind), None), figures)
    # What is left is ours in the report's spans that it does not state.
    for (reference, line_kind), mine in sorted(ours.items()):
        found.append(
            ReconciliationMismatch(
                report=report,
                provider=spec.provider,
                reference=reference,
                line_kind=line_kind,
                kind=Kind.MISSING_THERE,
                currency=mine["currency"],
                ours=mine["amount"],
            )
        )
    return found


def provider_report_import(*, actor, kind: str, name: str, content: bytes) -> tuple[ProviderReport, bool]:
    """Import one provider report and queue what differs; returns (report, created)."""
    require_perm(actor, "monetization.add_providerreport")
    try:
        spec = report_kinds.get(kind)
    except LookupError as exc:
        raise InvalidInput(str(exc)) from exc
    digest = hashlib.sha256(content).hexdigest()
    existing = ProviderReport.objects.filter(sha256=digest).first()
    if existing is not None:
        return existing, False
    try:
        lines = list(spec.parse(content.decode("utf-8-sig")))
    except (ValueError, KeyError, ArithmeticError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{name}: {exc}") from exc
    if not lines:
        raise InvalidInput(f"{name}: no payments or refunds in the report.")
    payments = [line for line in lines if line.line_kind == "payment"]
    refunds = [line for line in lines if line.line_kind == "refund"]
    if not spec.grouped:
        ours_paid = _ours_payments(spec.provider, [line.reference for line in payments])
        by_payment = spec.provider == "google_play"
        ours_refunded = _ours_refunds(spec.provider, [line.reference for line in refunds], by_payment=by_payment)
    with transaction.atomic():
        report = ProviderReport.objects.create(
            provider=spec.provider,
            kind=kind,
            name=name[:255],
            sha256=digest,
            lines=len(lines),
            imported_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        found: list[ReconciliationMismatch] = []
        if spec.grouped:
            found += _grouped_mismatches(report, lines, spec)
        else:
            for line in payments:
                found += _compare(report, line, ours_paid.get(line.reference), spec.payment_figures)
            for line in refunds:
                found += _compare(report, line, ours_refunded.get(line.reference), spec.refund_figures)
            found += _missing_there(report, spec.provider, lines)
        ReconciliationMismatch.objects.bulk_create(found, batch_size=CHUNK)
        differing = {(m.reference, m.line_kind) for m in found if m.kind != Kind.MISSING_THERE}
        report.matched = len(lines) - len(differing)
        report.mismatches = len(found)
        report.save(update_fields=["matched", "mismatches"])
        audit_record(
            action="reconciliation.import",
            obj=report,
            actor=actor,
            after={"kind": kind, "name": name, "lines": len(lines), "mismatches": len(found)},
        )
    return report, True


def _missing_there(report: ProviderReport, provider: str, lines: list[ReportLine]) -> list[ReconciliationMismatch]:
    """Our payments of the report's days (UTC) that it does not list."""
    days = [line.occurred_on for line in lines if line.occurred_on is not None]
    if not days:
        return []
    since = datetime.datetime.combine(min(days), datetime.time(), tzinfo=datetime.UTC)
    until = datetime.datetime.combine(max(days) + datetime.timedelta(days=1), datetime.time(), tzinfo=datetime.UTC)
    listed = {line.reference for line in lines if line.line_kind == "payment"}
    ours = Payment.objects.filter(provider=provider, status__in=TAKEN, occurred_at__gte=since, occurred_at__lt=until)
    missing = defaultdict(list)
    for reference, currency, amount in ours.values_list("provider_reference", "amount_currency", "amount").iterator(
        chunk_size=CHUNK
    ):
        if reference not in listed:
            missing[reference] = [currency, amount]
    return [
        ReconciliationMismatch(
            report=report,
            provider=provider,
            reference=reference,
            line_kind="payment",
            kind=Kind.MISSING_THERE,
            currency=currency,
            ours=amount,
        )
        for reference, (currency, amount) in sorted(missing.items())
    ]


MISMATCH_FIELDS = ["status", "resolution", "resolved_by_id", "resolved_at"]


def mismatch_resolve(*, actor, mismatch_id: int, resolution: str) -> ReconciliationMismatch:
    """Close one mismatch with what was found and done about it (audited)."""
    require_perm(actor, "monetization.resolve_reconciliationmismatch")
    resolution = (resolution or "").strip()
    if not resolution:
        raise InvalidInput("Say what was found and done: the resolution is recorded.")
    with transaction.atomic():
        mismatch = ReconciliationMismatch.objects.select_for_update().filter(pk=mismatch_id).first()
        if mismatch is None:
            raise NotFound(f"No reconciliation mismatch {mismatch_id}.")
        if mismatch.status != ReconciliationMismatch.Status.OPEN:
            raise Conflict(f"Mismatch {mismatch_id} is resolved already.")
        before = snapshot(mismatch, MISMATCH_FIELDS)
        mismatch.status = ReconciliationMismatch.Status.RESOLVED
        mismatch.resolution = resolution
        mismatch.resolved_by = actor if getattr(actor, "is_authenticated", False) else None
        mismatch.resolved_at = clock.now()
        mismatch.save(update_fields=["status", "resolution", "resolved_by", "resolved_at"])
        audit_record(
            action="reconciliation.resolve",
            obj=mismatch,
            actor=actor,
            before=before,
            after=snapshot(mismatch, MISMATCH_FIELDS),
            reason=resolution,
        )
    return mismatch
