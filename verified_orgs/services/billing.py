"""Seat billing of verified organizations: prices, periods, prorated seat changes, invoices, dunning.

An organization's subscription is a ``subscriptions.Subscription`` (Stripe, web)
on the Verified Organization monthly plan; its ``quantity`` is the number of
active affiliates. The seat count itself lives in the append-only seat ledger.

Proration, and why it never drifts: a seat change at ``t`` in a period
``[start, end)`` is worth exactly ``seat_price x delta x (end - t) / (end - start)``.
Rounding each change on its own would let n changes drift by up to n/2 minor
units; instead each ledger row carries the exact cumulative amount of the
period, and a change charges ``round(cumulative after) - charged so far``. Over
any sequence of changes the charges sum to the rounded exact total: within
half a minor unit of seat price x seat-time / period length.

Stripe Billing collects: verification creates the org's Stripe customer and subscription (seats
with our count as quantity, the base price) and opens the first invoice, booking nothing. A seat
change records its proration in the ledger and pushes it to Stripe as an invoice item, with the
new quantity; Stripe's next invoice and ours both carry it. The payment is booked when Stripe says
an invoice is paid (``invoice.paid``, recorded by the webhook under the invoice id):
:func:`org_invoice_paid_from_payment`, a payment hook, pays our invoice with it. A Stripe invoice
for a period we invoiced under another id, or for another amount, is flagged for Finance. The
organization following its subscription's state (grace, suspension for non-payment) is
:mod:`verified_orgs.services.dunning`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django_fsm import can_proceed
from djmoney.money import Money

from monetization import clock
from monetization.errors import DomainError, IllegalTransition, InvalidInput, OrgErrorCode
from monetization.models import AuditEvent, Payment, Provider
from monetization.providers.base import InvoiceReport, ProviderError, get_provider
from monetization.reasons import reason_check
from monetization.services.audit import audit_record
from monetization.services.ledger import quantize
from monetization.services.permissions import require_perm
from subscriptions.models import Plan, Platform, Price, Product, Subscription
from subscriptions.services.lifecycle import (
    Cause,
    subscription_change_state,
    subscription_create,
    subscription_quantity_set,
)
from verified_orgs.invoice_pdf import invoice_pdf
from verified_orgs.models import (
    INVOICE_MANAGE_PERM,
    Affiliation,
    InvoiceNumberCounter,
    Organization,
    OrgCreditNote,
    OrgInvoice,
    OrgInvoiceLine,
    SeatLedgerEntry,
)
from verified_orgs.services.locks import organization_lock

FALLBACK_COUNTRY = "US"
EXACT_PLACES = Decimal("1e-12")
# Payments our own org billing records (period charges, seat prorations) carry references
# under this prefix; any other payment of an org subscription came from the provider.
ORG_REFERENCE_PREFIX = "org:"
INVOICE_NUMBER_PREFIX = "VO"


class _BillingCalls:
    """The Stripe adapter's billing calls, a refusal or failure of Stripe turned into our refusal.

    The caller's transaction rolls back, so nothing changed on our side; Stripe's side is kept
    in step by the calls' idempotency keys when the change is tried again.
    """

    def __init__(self, provider):
        self._provider = provider

    def __getattr__(self, name):
        fn = getattr(self._provider, name)

        def call(**kwargs):
            try:
                return fn(**kwargs)
            except ProviderError as exc:
                again = "try again" if exc.retryable else "see Stripe"
                raise DomainError(
                    f"Stripe did not take the billing change ({exc.code}): nothing changed here; {again}.",
                    code=OrgErrorCode.BILLING_PROVIDER_FAILED,
                    status=503 if exc.retryable else 502,
                ) from exc

        return call


def org_billing_provider() -> _BillingCalls:
    """The Stripe adapter that bills organizations (the demo and the tests configure the double)."""
    return _BillingCalls(get_provider(Provider.STRIPE))


def org_tax_percent(org: Organization) -> Decimal | None:
    """The VAT or sales tax we charge the organization, in percent, or None.

    ``VERIFIED_ORG_TAX_RATES`` maps a billing country to its rate; an organization that gave a
    VAT id is billed without it (reverse charge: the business accounts for the tax itself).
    """
    rate = (getattr(settings, "VERIFIED_ORG_TAX_RATES", None) or {}).get((org.country or "").upper())
    if rate in (None, "") or org.vat_id:
        return None
    return Decimal(str(rate))


def tax_of_lines(amounts: list[Decimal], percent: Decimal, currency: str) -> Decimal:
    """Tax as Stripe computes it for a tax rate: on each line, rounded per line, then summed."""
    return sum((quantize(a * percent / 100, currency) for a in amounts), Decimal(0))


def org_plan_code() -> str:
    return getattr(settings, "VERIFIED_ORG_PLAN_CODE", "verified-org-monthly")


def org_plan() -> Plan:
    """The Verified Organization monthly plan (by code, else the organization product's monthly plan)."""
    plan = Plan.objects.filter(code=org_plan_code()).select_related("product").first()
    if plan is None:
        plan = (
            Plan.objects.filter(product__kind=Product.Kind.ORGANIZATION, interval=Plan.Interval.MONTH, is_active=True)
            .select_related("product")
            .order_by("id")
            .first()
        )
    if plan is None:
        raise InvalidInput("No Verified Organization plan in the catalog.", code=OrgErrorCode.ORG_PLAN_MISSING)
    return plan


@dataclass(frozen=True)
class OrgPrices:
    base: Money
    seat: Money

    @property
    def currency(self) -> str:
        return str(self.base.currency)


def org_prices(*, country: str, plan: Plan | None = None, at: datetime | None = None) -> OrgPrices:
    """Base and seat price for the org's billing country, falling back to US prices."""
    plan = plan or org_plan()
    at = at or clock.now()
    rows = list(
        Price.objects.filter(
            plan=plan, country__in={(country or FALLBACK_COUNTRY).upper(), FALLBACK_COUNTRY}, valid_from__lte=at
        )
        .filter(Q(platform="") | Q(platform=Platform.WEB))
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gt=at))
    )

    def pick(country_code: str, component: str) -> Price | None:
        found = [p for p in rows if p.country == country_code and p.component == component]
        found.sort(key=lambda p: (p.platform == Platform.WEB, p.valid_from), reverse=True)
        return found[0] if found else None

    for code in ((country or FALLBACK_COUNTRY).upper(), FALLBACK_COUNTRY):
        base, seat = pick(code, Price.Component.BASE), pick(code, Price.Component.SEAT)
        if base is not None and seat is not None and base.amount.currency == seat.amount.currency:
            return OrgPrices(base=base.amount, seat=seat.amount)
    raise InvalidInput(
        f"No organization prices for {country} or {FALLBACK_COUNTRY}.", code=OrgErrorCode.ORG_PRICE_MISSING
    )


# --- proration -----------------------------------------------------------------


@dataclass(frozen=True)
class ProrationStep:
    exact: Decimal  # this change's exact (unrounded) amount
    period_exact_total: Decimal
    period_charged_total: Decimal
    charge: Decimal  # > 0 charge, < 0 credit, in the currency's minor unit


def proration_step(
    *,
    seat_price: Decimal,
    currency: str,
    delta: int,
    at: datetime,
    period_start: datetime,
    period_end: datetime,
    exact_so_far: Decimal,
    charged_so_far: Decimal,
) -> ProrationStep:
    """The charge (or credit) of a seat change, given what the period has accumulated so far."""
    period_seconds = Decimal(int((period_end - period_start).total_seconds()))
    remaining = Decimal(max(0, min(int((period_end - at).total_seconds()), int(period_seconds))))
    exact = (seat_price * delta * remaining / period_seconds).quantize(EXACT_PLACES)
    total_exact = exact_so_far + exact
    total_charged = quantize(total_exact, currency)
    return ProrationStep(
        exact=exact,
        period_exact_total=total_exact,
        period_charged_total=total_charged,
        charge=total_charged - charged_so_far,
    )


def _period_end(anchor: datetime, start: datetime, plan: Plan) -> datetime:
    """The first period boundary after ``start``, counted from the billing anchor.

    Counting from the anchor (like Stripe's billing_cycle_anchor) keeps a Jan 31
    subscription renewing on Feb 28, then Mar 31, rather than drifting to the 28th.
    """
    step = (
        relativedelta(years=plan.interval_count)
        if plan.interval == Plan.Interval.YEAR
        else relativedelta(months=plan.interval_count)
    )
    n = 1
    while anchor + step * n <= start:
        n += 1
    return anchor + step * n


def _active_count(org: Organization) -> int:
    return Affiliation.objects.filter(organization=org, state=Affiliation.State.ACTIVE).count()


def invoice_number_next(at: datetime) -> str:
    """The next invoice (or credit note) number of ``at``'s year: gapless.

    The year's counter row is locked until the caller's transaction ends, so numbers are
    taken one after another and a rolled-back transaction gives its number back.
    """
    year = at.year
    InvoiceNumberCounter.objects.bulk_create([InvoiceNumberCounter(year=year)], ignore_conflicts=True)
    counter = InvoiceNumberCounter.objects.select_for_update().get(year=year)
    counter.last_number += 1
    counter.save(update_fields=["last_number"])
    return f"{INVOICE_NUMBER_PREFIX}-{year}-{counter.last_number:06d}"


def _uninvoiced_prorations(org: Organization, before: datetime) -> list[SeatLedgerEntry]:
    """Seat changes before ``before`` that no invoice carries yet (Stripe's pending invoice items)."""
    carried = OrgInvoiceLine.objects.filter(seat_ledger_entry=OuterRef("pk"))
    return list(
        SeatLedgerEntry.objects.filter(organization=org, at__lt=before)
        .exclude(reason=SeatLedgerEntry.Reason.PERIOD_START)
        .exclude(proration=0)
        .filter(~Exists(carried))
        .order_by("id")
    )


def org_period_open(
    *,
    organization: Organization,
    period_start: datetime,
    cause: Cause,
    provider_invoice_id: str = "",
) -> OrgInvoice:
    """Open a billing period: the seats at its start in the ledger, and its invoice, numbered and open.

    Call with the organization locked. Idempotent per (organization, period_start). The invoice
    is what Stripe invoices for the period: base price and seats in advance, plus the seat
    prorations not invoiced yet. Nothing is booked here: the payment is recorded when Stripe says
    the invoice is paid (``invoice.paid``, :func:`org_invoice_paid_from_payment`).
    """
    org = organization
    sub = org.subscription
    plan = sub.plan
    prices = org_prices(country=org.country, plan=plan, at=period_start)
    cur = prices.currency
    period_end = _period_end(sub.started_at, period_start, plan)
    existing = OrgInvoice.objects.filter(organization=org, period_start=period_start).first()
    if existing is not None:
        return existing
    quantity = _active_count(org)
    seats_amount = quantize(prices.seat.amount * quantity, cur)
    carried = _uninvoiced_prorations(org, period_start)
    amounts = [prices.base.amount, seats_amount, *(e.proration.amount for e in carried)]
    percent = org_tax_percent(org)
    tax = tax_of_lines(amounts, percent, cur) if percent is not None else Decimal(0)
    total = sum(amounts, Decimal(0)) + tax
    entry = SeatLedgerEntry.objects.create(
        organization=org,
        at=period_start,
        quantity=quantity,
        delta=0,
        reason=SeatLedgerEntry.Reason.PERIOD_START,
        period_start=period_start,
        period_end=period_end,
        seat_price=prices.seat,
        proration=Money(0, cur),
        period_exact_total=Decimal(0),
        period_charged_total=Decimal(0),
    )
    invoice = OrgInvoice(
        organization=org,
        period_start=period_start,
        period_end=period_end,
        currency=cur,
        total=total,
        tax=tax,
        vat_id=org.vat_id,
        provider_invoice_id=provider_invoice_id,
    )
    invoice.finalize(number=invoice_number_next(period_start))
    invoice.save()
    OrgInvoiceLine.objects.bulk_create(
        [
            OrgInvoiceLine(
                invoice=invoice,
                kind=OrgInvoiceLine.Kind.BASE,
                description=plan.product.name,
                quantity=1,
                amount=prices.base.amount,
            ),
            OrgInvoiceLine(
                invoice=invoice,
                kind=OrgInvoiceLine.Kind.SEATS,
                description=f"{quantity} seats at {prices.seat}",
                quantity=quantity,
                amount=seats_amount,
                seat_ledger_entry=entry,
            ),
            *(
                OrgInvoiceLine(
                    invoice=invoice,
                    kind=OrgInvoiceLine.Kind.SEAT_PRORATION,
                    description=_proration_description(e),
                    quantity=e.delta,
                    amount=e.proration.amount,
                    seat_ledger_entry=e,
                )
                for e in carried
            ),
            *_tax_lines(invoice, org, percent, tax),
        ]
    )
    for e in carried:
        if e.proration.amount < 0:
            _seat_credit_note(e, applied_to=invoice)
    subscription_change_state(
        subscription=sub,
        transition=None if sub.state == Subscription.State.ACTIVE else "activate",
        cause=cause,
        updates={"current_period_start": period_start, "current_period_end": period_end, "quantity": quantity},
        action="subscription.period_open",
    )
    return invoice


def _seat_credit_note(entry: SeatLedgerEntry, *, applied_to: OrgInvoice) -> OrgCreditNote | None:
    """A seat removed mid-period credits the invoice of that period; the credit is netted on the next one."""
    credited = OrgInvoice.objects.filter(organization_id=entry.organization_id, period_start=entry.period_start).first()
    if credited is None:
        return None
    note, _ = OrgCreditNote.objects.get_or_create(
        reference=f"seat:{entry.pk}",
        defaults={
            "invoice": credited,
            "number": invoice_number_next(applied_to.period_start),
            "reason": OrgCreditNote.Reason.SEAT_CREDIT,
            "amount": -entry.proration.amount,
            "currency": applied_to.currency,
            "memo": f"{_proration_description(entry)}; applied to invoice {applied_to.number}",
        },
    )
    return note


def org_credit_note_for_refund(refund, actor) -> OrgCreditNote | None:
    """Refund hook: a refund of the payment of an org invoice is a credit note on that invoice."""
    invoice = OrgInvoice.objects.filter(payment_id=refund.payment_id).first()
    if invoice is None:
        return None
    note, _ = OrgCreditNote.objects.get_or_create(
        reference=f"refund:{refund.pk}",
        defaults={
            "invoice": invoice,
            "number": invoice_number_next(clock.now()),
            "reason": OrgCreditNote.Reason.REFUND,
            "amount": refund.amount.amount,
            "currency": str(refund.amount.currency),
            "memo": (refund.reason_code or "")[:200],
        },
    )
    return note


def _tax_lines(invoice: OrgInvoice, org: Organization, percent: Decimal | None, tax: Decimal) -> list[OrgInvoiceLine]:
    kind = OrgInvoiceLine.Kind.TAX
    if percent is not None:
        return [OrgInvoiceLine(invoice=invoice, kind=kind, description=f"Tax {percent.normalize()}%", amount=tax)]
    if org.vat_id:
        return [
            OrgInvoiceLine(invoice=invoice, kind=kind, description=f"Reverse charge, VAT id {org.vat_id}", amount=0)
        ]
    return []


def _proration_description(entry: SeatLedgerEntry) -> str:
    sign = "+" if entry.delta > 0 else ""
    return f"{sign}{entry.delta} seat ({entry.reason.replace('_', ' ')}) {entry.at:%Y-%m-%d %H:%M}"


def org_billing_start(*, organization: Organization, cause: Cause) -> Subscription:
    """Bill a newly verified organization through Stripe Billing; nothing is booked yet.

    A Stripe customer for the org and a subscription (the base price, and the seats with our
    seat count as quantity), created with idempotency keys of the organization so a retried
    verification finds the same ones; then our subscription and the first period's open
    invoice. Stripe collects it; :func:`org_invoice_paid_from_payment` books it when paid.
    """
    org = organization
    if org.subscription_id is not None:
        return org.subscription
    plan = org_plan()
    prices = org_prices(country=org.country, plan=plan)  # refuse early when the catalog has no price
    sku = plan.skus.filter(platform=Platform.WEB).first()
    provider = org_billing_provider()
    customer = org.billing_customer
    metadata = {"organization": str(org.pk), "external_id": customer.external_id}
    customer_id = org.provider_customer_id or provider.billing_customer_create(
        name=org.name,
        email=customer.email,
        metadata=metadata,
        idempotency_key=f"{ORG_REFERENCE_PREFIX}{org.pk}:customer",
    )
    quantity = _active_count(org)
    billed = provider.billing_subscription_create(
        customer=customer_id,
        seat_price_id=sku.store_product_id if sku else "",
        seat_amount=prices.seat,
        base_amount=prices.base,
        base_product=plan.product.code,
        quantity=quantity,
        tax_percent=org_tax_percent(org),
        metadata=metadata,
        idempotency_key=f"{ORG_REFERENCE_PREFIX}{org.pk}:subscription",
    )
    started = _ts(billed["current_period_start"]) or clock.now()
    sub = subscription_create(
        customer=customer,
        plan=plan,
        sku=sku,
        platform=Platform.WEB,
        provider=Provider.STRIPE,
        provider_subscription_id=billed["id"],
        quantity=quantity,
        started_at=started,
        cause=cause,
    )
    org.subscription, org.provider_customer_id = sub, customer_id
    Organization.objects.filter(pk=org.pk).update(subscription=sub, provider_customer_id=customer_id)
    org_period_open(organization=org, period_start=started, cause=cause, provider_invoice_id=billed["latest_invoice"])
    return sub


def _ts(value) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def org_renew(
    *, organization: Organization, period_start: datetime, cause: Cause, provider_invoice_id: str = ""
) -> OrgInvoice:
    """Open the period beginning at ``period_start`` (Stripe invoiced it). Idempotent per period."""
    with transaction.atomic():
        org = organization_lock(organization.pk)
        return org_period_open(
            organization=org, period_start=period_start, cause=cause, provider_invoice_id=provider_invoice_id
        )


def _period_start_at(anchor: datetime, at: datetime, plan: Plan) -> datetime:
    """The start of the billing period (counted from the anchor) that contains ``at``."""
    step = (
        relativedelta(years=plan.interval_count)
        if plan.interval == Plan.Interval.YEAR
        else relativedelta(months=plan.interval_count)
    )
    n = 0
    while anchor + step * (n + 1) <= at:
        n += 1
    return anchor + step * n


def org_invoice_paid_from_payment(payment: Payment, subscription: Subscription) -> OrgInvoice | None:
    """Stripe says an org's invoice is paid (``invoice.paid``, recorded and booked by the webhook
    under the invoice id): that invoice of ours is paid by this payment.

    Registered as a subscription payment hook (verified_orgs.apps): it runs inside the payment's
    recording. The invoice is ours by its Stripe id (the first one, opened at verification),
    else the period the payment falls in is opened with it (a renewal). A period already
    invoiced under another Stripe invoice is flagged for Finance, as is a paid amount other
    than what our seat ledger computes. A redelivered invoice records no payment, so this does
    not run again.
    """
    if payment.provider != Provider.STRIPE:
        return None
    if payment.provider_reference.startswith(ORG_REFERENCE_PREFIX):
        return None  # a charge recorded by our own billing before it went through Stripe
    # The payment's recording loaded plan -> product to pick the revenue stream: no query here.
    if subscription.plan.product.kind != Product.Kind.ORGANIZATION:
        return None
    org = Organization.objects.filter(subscription_id=subscription.pk).select_related("subscription__plan").first()
    if org is None:
        return None
    cause = Cause(
        actor_kind=AuditEvent.ActorKind.PROVIDER,
        label=f"{payment.provider}:{payment.provider_reference}"[:200],
        reason="Stripe collected the invoice",
    )
    invoice = OrgInvoice.objects.filter(organization=org, provider_invoice_id=payment.provider_reference).first()
    if invoice is None:
        sub = org.subscription
        period_start = _period_start_at(sub.started_at, payment.occurred_at, sub.plan)
        existing = OrgInvoice.objects.filter(organization=org, period_start=period_start).first()
        if existing is not None and not existing.provider_invoice_id and existing.status == OrgInvoice.Status.OPEN:
            OrgInvoice.objects.filter(pk=existing.pk).update(provider_invoice_id=payment.provider_reference)
            invoice = existing
        elif existing is not None or org.state not in (Organization.State.VERIFIED, Organization.State.SUSPENDED):
            _flag(
                org,
                cause,
                "organization.provider_payment_unmatched",
                {
                    "payment": payment.pk,
                    "amount": str(payment.amount.amount),
                    "currency": str(payment.amount.currency),
                    "period_start": period_start.isoformat(),
                    "invoice": existing.pk if existing else None,
                    "organization_state": org.state,
                },
                "Stripe invoice for a period already invoiced (or an org not billed): reconcile.",
            )
            return existing
        else:
            invoice = org_renew(
                organization=org,
                period_start=period_start,
                cause=cause,
                provider_invoice_id=payment.provider_reference,
            )
    invoice = OrgInvoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status in (OrgInvoice.Status.OPEN, OrgInvoice.Status.UNCOLLECTIBLE):
        invoice.pay(payment=payment)
        invoice.updated_at = clock.now()
        invoice.save(update_fields=["status", "payment", "paid_at", "updated_at"])
    if invoice.total != payment.amount.amount or invoice.currency != str(payment.amount.currency):
        _flag(
            org,
            cause,
            "organization.invoice_amount_mismatch",
            {
                "invoice": invoice.pk,
                "number": invoice.number,
                "invoice_total": str(invoice.total),
                "paid": str(payment.amount.amount),
                "currency": str(payment.amount.currency),
            },
            "Stripe collected another amount than our seat ledger computes.",
        )
    return invoice


def org_invoice_from_provider(subscription: Subscription, report: InvoiceReport, cause: Cause) -> str | None:
    """Invoice hook: our invoice follows Stripe's invoice of the org's subscription, found by its id.

    An invoice we do not have yet (a renewal whose charge failed: finalized, open, retried by
    Stripe) is opened for the period it bills, numbered, with that id, so the org's admins and
    Finance see what is owed and its payment, whenever it comes, finds it by id. Stripe voiding
    an invoice or writing it off is applied here too. Runs before the event's payment is recorded.
    """
    if subscription.provider != Provider.STRIPE or not subscription.is_organization_subscription():
        return None
    org = Organization.objects.filter(subscription_id=subscription.pk).select_related("subscription__plan").first()
    if org is None:
        return None
    invoice = _invoice_of_provider(org, report, cause)
    if invoice is None:
        return f"Stripe invoice {report.provider_invoice_id} unmatched: flagged"
    transition = PROVIDER_CLOSING.get(report.status)
    if transition is None:
        return f"invoice {invoice.number} {invoice.status}"
    invoice = OrgInvoice.objects.select_for_update().get(pk=invoice.pk)
    method = getattr(invoice, transition)
    if not can_proceed(method):
        return f"invoice {invoice.number} {invoice.status} (Stripe: {report.status})"
    before = invoice.status
    method()
    invoice.updated_at = clock.now()
    invoice.save(update_fields=["status", "updated_at"])
    audit_record(
        action=f"organization.invoice_{transition}",
        obj=org,
        actor_kind=AuditEvent.ActorKind.PROVIDER,
        actor_label=cause.label,
        customer=org.billing_customer,
        before={"status": before, "invoice": invoice.number},
        after={"status": invoice.status, "invoice": invoice.number},
        reason=f"Stripe: invoice {report.status}",
    )
    return f"invoice {invoice.number} {invoice.status}"


# Stripe's closing of an invoice -> our invoice's transition.
PROVIDER_CLOSING = {"void": "void", "uncollectible": "mark_uncollectible"}


def _invoice_of_provider(org: Organization, report: InvoiceReport, cause: Cause) -> OrgInvoice | None:
    """Our invoice of a Stripe invoice: by its id, else the period it bills opened with that id.

    A period already invoiced under another Stripe id, a period older than one we opened since
    (its seats and prorations are on the later invoice already) or an org no longer billed is
    flagged for Finance instead.
    """
    invoice = OrgInvoice.objects.filter(organization=org, provider_invoice_id=report.provider_invoice_id).first()
    if invoice is not None or report.period_start is None:
        return invoice
    sub = org.subscription
    period_start = _period_start_at(sub.started_at, report.period_start, sub.plan)
    existing = OrgInvoice.objects.filter(organization=org, period_start=period_start).first()
    if existing is not None and not existing.provider_invoice_id:
        OrgInvoice.objects.filter(pk=existing.pk).update(provider_invoice_id=report.provider_invoice_id)
        existing.provider_invoice_id = report.provider_invoice_id
        return existing
    later = OrgInvoice.objects.filter(organization=org, period_start__gt=period_start).exists()
    billed = org.state in (Organization.State.VERIFIED, Organization.State.SUSPENDED)
    if existing is not None or later or not billed:
        _flag(
            org,
            cause,
            "organization.provider_invoice_unmatched",
            {
                "provider_invoice": report.provider_invoice_id,
                "status": report.status,
                "amount_due": str(report.amount_due.amount),
                "currency": str(report.amount_due.currency),
                "period_start": period_start.isoformat(),
                "invoice": existing.pk if existing else None,
                "organization_state": org.state,
            },
            "Stripe invoice for a period already (or later) invoiced, or of an org not billed: reconcile.",
        )
        return None
    return org_renew(
        organization=org, period_start=period_start, cause=cause, provider_invoice_id=report.provider_invoice_id
    )


def org_seat_counts_since(subscription: Subscription, since: datetime) -> set[int] | None:
    """The seat counts an org's ledger held from ``since`` on (what we pushed to Stripe since)."""
    org_id = Organization.objects.filter(subscription_id=subscription.pk).values_list("pk", flat=True).first()
    if org_id is None:
        return None
    rows = SeatLedgerEntry.objects.filter(organization_id=org_id)
    held = set(rows.filter(at__gt=since).values_list("quantity", flat=True))
    then = rows.filter(at__lte=since).order_by("-at", "-id").values_list("quantity", flat=True).first()
    return held | ({then} if then is not None else set())


def _flag(org: Organization, cause: Cause, action: str, after: dict, reason: str) -> None:
    """Something for Finance to reconcile, on the organization's audit trail."""
    audit_record(
        action=action,
        obj=org,
        actor_kind=AuditEvent.ActorKind.PROVIDER,
        actor_label=cause.label,
        customer=org.billing_customer,
        after=after,
        reason=reason,
    )


def org_seat_change(
    *, organization: Organization, delta: int, affiliation: Affiliation, reason: str, cause: Cause
) -> SeatLedgerEntry:
    """Record a seat change with its proration, the payment or credit, and the invoice line.

    Call inside the caller's transaction with the organization row locked, which
    serializes seat changes of one organization (the cumulative totals need that).
    """
    org = organization
    sub = org.subscription
    if sub is None:
        raise InvalidInput("This organization has no subscription.", code=OrgErrorCode.ORG_NOT_VERIFIED)
    last = SeatLedgerEntry.objects.filter(organization=org).order_by("-id").first()
    now = clock.now()
    cur = str(last.seat_price.currency)
    step = proration_step(
        seat_price=last.seat_price.amount,
        currency=cur,
        delta=delta,
        at=now,
        period_start=last.period_start,
        period_end=last.period_end,
        exact_so_far=last.period_exact_total,
        charged_so_far=last.period_charged_total,
    )
    quantity = last.quantity + delta
    ref = f"{ORG_REFERENCE_PREFIX}{org.pk}:seat:{affiliation.pk}:{reason}"
    entry = SeatLedgerEntry.objects.create(
        organization=org,
        at=now,
        quantity=quantity,
        delta=delta,
        reason=reason,
        affiliation=affiliation,
        period_start=last.period_start,
        period_end=last.period_end,
        seat_price=last.seat_price,
        proration=Money(step.charge, cur),
        period_exact_total=step.period_exact_total,
        period_charged_total=step.period_charged_total,
    )
    _seat_change_push(org, sub, entry, ref)
    # The subscription's quantity follows the ledger; the ledger row is its history.
    subscription_quantity_set(subscription=sub, quantity=quantity)
    return entry


def _seat_change_push(org: Organization, sub: Subscription, entry: SeatLedgerEntry, ref: str) -> None:
    """Tell Stripe: the proration as an invoice item on the next invoice, and the new seat count.

    Called with the organization locked, so pushes of one org are in order; the idempotency keys
    are the seat change's own (affiliation and reason), so a seat change retried after a failure
    finds Stripe's first answer instead of charging twice. An org billed before Stripe Billing
    (no Stripe customer) has nothing to push to.
    """
    if not org.provider_customer_id:
        return
    provider = org_billing_provider()
    if entry.proration.amount:
        provider.billing_invoice_item_create(
            customer=org.provider_customer_id,
            subscription=sub.provider_subscription_id,
            amount=entry.proration,
            description=_proration_description(entry),
            idempotency_key=f"{ref}:item",
        )
    provider.billing_quantity_set(
        subscription=sub.provider_subscription_id, quantity=entry.quantity, idempotency_key=f"{ref}:quantity"
    )


INVOICE_VIEW_PERM = "verified_orgs.view_orginvoice"


def org_invoice_pdf_for_staff(*, invoice_id: int, actor) -> tuple[OrgInvoice, bytes]:
    """Finance downloads an issued invoice as a PDF; the download is on the audit trail.

    Raises ``DomainError`` (no permission) or ``OrgInvoice.DoesNotExist`` (no such issued invoice).
    """
    require_perm(actor, INVOICE_VIEW_PERM)
    invoice = OrgInvoice.objects.select_related("organization").exclude(number=None).get(pk=invoice_id)
    audit_record(
        action="organization.invoice_download",
        obj=invoice.organization,
        actor=actor,
        customer=invoice.organization.billing_customer,
        after={"invoice": invoice.number},
    )
    return invoice, invoice_pdf(invoice)


CLOSING_TRANSITIONS = {"void": False, "mark_uncollectible": True}  # transition -> uncollectible at Stripe


def org_invoice_close(*, invoice: OrgInvoice, transition: str, actor, reason: str) -> OrgInvoice:
    """Finance voids an open invoice or writes it off as uncollectible, at Stripe and here, audited.

    Stripe is told first (it stops collecting); our transaction then records the change, and a
    Stripe refusal (an invoice paid meanwhile) changes nothing here.
    """
    require_perm(actor, INVOICE_MANAGE_PERM)
    if transition not in CLOSING_TRANSITIONS:
        raise InvalidInput(f"Unknown invoice transition {transition!r}.")
    reason = reason_check(reason, what="Closing an invoice").strip()
    with transaction.atomic():
        invoice = OrgInvoice.objects.select_for_update().select_related("organization").get(pk=invoice.pk)
        method = getattr(invoice, transition)
        if not can_proceed(method):
            raise IllegalTransition(f"Cannot {transition.replace('_', ' ')} an invoice that is {invoice.status}.")
        if invoice.provider_invoice_id:
            org_billing_provider().billing_invoice_close(
                invoice=invoice.provider_invoice_id,
                uncollectible=CLOSING_TRANSITIONS[transition],
                idempotency_key=f"{ORG_REFERENCE_PREFIX}invoice:{invoice.pk}:{transition}",
            )
        before = {"status": invoice.status}
        method()
        invoice.updated_at = clock.now()
        invoice.save(update_fields=["status", "updated_at"])
        audit_record(
            action=f"organization.invoice_{transition}",
            obj=invoice.organization,
            actor=actor,
            customer=invoice.organization.billing_customer,
            before={**before, "invoice": invoice.number},
            after={"status": invoice.status, "invoice": invoice.number},
            reason=reason,
        )
    return invoice
