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

Provider payments (a payment hook, registered in verified_orgs.apps): a Stripe ``invoice.paid``
of the org subscription is recorded by the webhook under the invoice id;
:func:`org_renewal_from_payment` then opens that period with the same payment as its charge, so
the period is charged once. Our own charges (the first period at verification, seat prorations)
use ``org:`` references; a provider invoice for a period we already charged is flagged for
finance (``organization.provider_payment_unmatched``). The organization following its
subscription's state (grace, suspension for non-payment) is :mod:`verified_orgs.services.dunning`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from djmoney.money import Money

from monetization import clock
from monetization.errors import InvalidInput, OrgErrorCode
from monetization.models import AuditEvent, Payment, Provider
from monetization.services.audit import audit_record
from monetization.services.ledger import Account, Leg, Posting, journal_post, quantize
from subscriptions.models import Plan, Platform, Price, Product, Subscription
from subscriptions.services.lifecycle import (
    Cause,
    subscription_change_state,
    subscription_create,
    subscription_quantity_set,
)
from subscriptions.services.payments import subscription_payment_record
from verified_orgs.models import Affiliation, Organization, OrgInvoice, OrgInvoiceLine, SeatLedgerEntry
from verified_orgs.services.locks import organization_lock

CUSTOMER_CREDIT = "liability:customer_credit"
REVENUE_STREAM = "organizations"
FALLBACK_COUNTRY = "US"
EXACT_PLACES = Decimal("1e-12")
# Payments our own org billing records (period charges, seat prorations) carry references
# under this prefix; any other payment of an org subscription came from the provider.
ORG_REFERENCE_PREFIX = "org:"


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


def org_period_open(
    *,
    organization: Organization,
    period_start: datetime,
    cause: Cause,
    first: bool = False,
    provider_reference: str = "",
) -> OrgInvoice:
    """Open a billing period: ledger row for the seats at start, an invoice, and the charge for it.

    Call with the organization locked. Idempotent per (organization, period_start).
    ``provider_reference``: the provider's invoice id when the provider charged the period
    (a Stripe ``invoice.paid``): the charge is then that payment (payment_record dedupes on
    it), never a second one beside it.
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
    total = prices.base.amount + seats_amount
    payment = None
    own_reference = f"{ORG_REFERENCE_PREFIX}{org.pk}:period:{period_start:%Y%m%dT%H%M%S}"
    if total > 0:
        payment, _ = subscription_payment_record(
            customer=org.billing_customer,
            provider=Provider.STRIPE,
            provider_reference=provider_reference or own_reference,
            amount=Money(total, cur),
            kind=Payment.Kind.INITIAL if first else Payment.Kind.RENEWAL,
            subscription=sub,
            occurred_at=period_start,
        )
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
        payment=payment,
    )
    invoice = OrgInvoice.objects.create(
        organization=org, period_start=period_start, period_end=period_end, currency=cur, total=total
    )
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
        ]
    )
    subscription_change_state(
        subscription=sub,
        transition=None if sub.state == Subscription.State.ACTIVE else "activate",
        cause=cause,
        updates={"current_period_start": period_start, "current_period_end": period_end, "quantity": quantity},
        action="subscription.period_open",
    )
    return invoice


def org_billing_start(*, organization: Organization, cause: Cause) -> Subscription:
    """Create the organization's subscription when it is verified and charge its first period."""
    org = organization
    if org.subscription_id is not None:
        return org.subscription
    plan = org_plan()
    org_prices(country=org.country, plan=plan)  # refuse early when the catalog has no price
    now = clock.now()
    sub = subscription_create(
        customer=org.billing_customer,
        plan=plan,
        sku=plan.skus.filter(platform=Platform.WEB).first(),
        platform=Platform.WEB,
        provider=Provider.STRIPE,
        provider_subscription_id=f"sub_org_{org.pk}",
        quantity=0,
        started_at=now,
        cause=cause,
    )
    org.subscription = sub
    Organization.objects.filter(pk=org.pk).update(subscription=sub)
    org_period_open(organization=org, period_start=now, cause=cause, first=True)
    return sub


def org_renew(
    *, organization: Organization, period_start: datetime, cause: Cause, provider_reference: str = ""
) -> OrgInvoice:
    """Start the period beginning at ``period_start`` (the renewal the provider charged).

    Idempotent per period: a re-delivered renewal returns the period's invoice.
    """
    with transaction.atomic():
        org = organization_lock(organization.pk)
        return org_period_open(
            organization=org, period_start=period_start, cause=cause, provider_reference=provider_reference
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


def org_renewal_from_payment(payment: Payment, subscription: Subscription) -> OrgInvoice | None:
    """A provider payment of an org subscription (Stripe ``invoice.paid``) is that period's charge.

    Registered as a subscription payment hook (verified_orgs.apps): it runs inside the payment's recording, right
    after the provider's payment is recorded and posted, and opens the billing period the
    payment falls in with the *same* payment (``provider_reference`` = the invoice id), so the
    period is charged once: by the provider's payment, never again by our own period charge.
    A period our billing already opened and charged (the first one, at verification) is not
    charged twice either: the provider's payment is left to finance with an audit record.
    Idempotent: a redelivered invoice records no payment, so this does not run again; run
    twice anyway it finds the period's invoice.
    """
    if payment.provider != Provider.STRIPE:
        return None
    if payment.provider_reference.startswith(ORG_REFERENCE_PREFIX):
        return None  # our own billing's charge
    # The payment's recording loaded plan -> product to pick the revenue stream: no query here.
    if subscription.plan.product.kind != Product.Kind.ORGANIZATION:
        return None
    org = Organization.objects.filter(subscription_id=subscription.pk).select_related("subscription__plan").first()
    if org is None:
        return None
    cause = Cause(
        actor_kind=AuditEvent.ActorKind.PROVIDER,
        label=f"{payment.provider}:{payment.provider_reference}"[:200],
        reason="provider charged the period",
    )
    sub = org.subscription
    period_start = _period_start_at(sub.started_at, payment.occurred_at, sub.plan)
    existing = OrgInvoice.objects.filter(organization=org, period_start=period_start).first()
    if existing is not None or org.state not in (Organization.State.VERIFIED, Organization.State.SUSPENDED):
        audit_record(
            action="organization.provider_payment_unmatched",
            obj=org,
            actor_kind=AuditEvent.ActorKind.PROVIDER,
            actor_label=cause.label,
            customer=org.billing_customer,
            after={
                "payment": payment.pk,
                "amount": str(payment.amount.amount),
                "currency": str(payment.amount.currency),
                "period_start": period_start.isoformat(),
                "invoice": existing.pk if existing else None,
                "organization_state": org.state,
            },
            reason="Provider payment for a period already charged (or an org not billed): reconcile.",
        )
        return existing
    invoice = org_renew(
        organization=org, period_start=period_start, cause=cause, provider_reference=payment.provider_reference
    )
    if invoice.total != payment.amount.amount:
        audit_record(
            action="organization.invoice_amount_mismatch",
            obj=org,
            actor_kind=AuditEvent.ActorKind.PROVIDER,
            actor_label=cause.label,
            customer=org.billing_customer,
            after={"invoice": invoice.pk, "invoice_total": str(invoice.total), "paid": str(payment.amount.amount)},
            reason="The provider charged another amount than the seat ledger computes.",
        )
    return invoice


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
    payment = None
    if step.charge > 0:
        payment, _ = subscription_payment_record(
            customer=org.billing_customer,
            provider=Provider.STRIPE,
            provider_reference=ref,
            amount=Money(step.charge, cur),
            kind=Payment.Kind.SEAT_CHANGE,
            subscription=sub,
            occurred_at=now,
        )
    elif step.charge < 0:
        credit = Money(-step.charge, cur)
        journal_post(
            Posting(
                key=f"{ref}:credit",
                kind="org_seat_credit",
                legs=[Leg(Account.revenue(REVENUE_STREAM), credit), Leg(CUSTOMER_CREDIT, -credit)],
                memo=f"Seat credit, organization {org.handle}",
                customer=org.billing_customer,
                source_type="verified_orgs.organization",
                source_id=str(org.pk),
                posted_at=now,
            )
        )
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
        payment=payment,
    )
    invoice = OrgInvoice.objects.filter(organization=org, period_start=last.period_start).first()
    if invoice is not None:
        OrgInvoiceLine.objects.create(
            invoice=invoice,
            kind=OrgInvoiceLine.Kind.SEAT_PRORATION,
            description=f"{'+' if delta > 0 else ''}{delta} seat ({reason.replace('_', ' ')}) {now:%Y-%m-%d %H:%M}",
            quantity=delta,
            amount=step.charge,
            seat_ledger_entry=entry,
        )
        OrgInvoice.objects.filter(pk=invoice.pk).update(total=F("total") + step.charge, updated_at=now)
    # The subscription's quantity follows the ledger; the ledger row is its history.
    subscription_quantity_set(subscription=sub, quantity=quantity)
    return entry
