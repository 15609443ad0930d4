"""Refunds: request, four-eyes approval, execution through the provider, and the ledger.

Money safety rests on three rules:

- What may still be refunded is computed under a row lock on the Payment
  (``SELECT ... FOR UPDATE``): captured - refunded - every open refund's
  amount. An open refund *reserves* its amount from the moment it is
  requested, so two staff members (or fifty threads) refunding the same
  payment at once can never give back more than was captured.
- The provider is called with the refund's own idempotency key, so a retry
  after a timeout can never refund twice at the provider.
- The ledger entry is posted exactly once (key ``refund:<id>``) in the same
  transaction that marks the refund succeeded and raises Payment.refunded.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from djmoney.money import Money

from monetization import clock
from monetization.commission import provider_remits_tax
from monetization.errors import Conflict, DomainError, ErrorCode, InvalidInput, NotFound, PermissionDenied
from monetization.models import AuditEvent, Payment, Refund
from monetization.money import money_from_minor
from monetization.providers import provider_capabilities
from monetization.providers.base import ProviderError, RefundReport, UnsupportedOperation, get_provider
from monetization.reasons import reason_check
from monetization.registry import Registry
from monetization.services.audit import audit_record, snapshot
from monetization.services.finance_snapshots import finance_days_touch
from monetization.services.ledger import Account, Leg, Posting, journal_post, quantize
from monetization.services.permissions import require_perm

REFUND_FIELDS = ["status", "amount", "reason_code", "revoke_access", "provider_refund_id", "failure_code", "attempts"]
PERM_REQUEST = "monetization.request_refund"
PERM_APPROVE = "monetization.approve_refund"
REFUNDABLE_PAYMENT_STATUSES = (Payment.Status.SUCCEEDED, Payment.Status.PARTIALLY_REFUNDED)

# What follows from a refund beyond the money (a product app ends the access it paid for):
# refund_succeeded_hooks.register(name, fn(refund, actor)) from AppConfig.ready(). A hook runs
# inside the transaction that books the refund, after the ledger posting, so the booking and
# what the hook changes commit together; ``actor`` is the staff user, or None for a refund the
# provider reported. A refund books once, so a hook runs once per refund.
RefundHook = Callable[[Refund, object], None]
refund_succeeded_hooks: Registry[RefundHook] = Registry("refund-succeeded hook")


class RefundUnsupported(DomainError):
    """This platform does not let the developer refund; the platform itself refunds and tells us."""

    code = ErrorCode.REFUND_UNSUPPORTED_BY_PROVIDER
    status = 422


def _require_reason(text: str, what: str) -> None:
    reason_check(text, what=what)


def refund_offered(payment: Payment, user) -> bool:
    """Whether a console should offer this user a refund of this payment: the permission, a payment with
    money left to refund, and a platform that lets us refund (Apple refunds App Store purchases itself)."""
    return (
        user.has_perm(PERM_REQUEST)
        and payment.status in (Payment.Status.SUCCEEDED, Payment.Status.PARTIALLY_REFUNDED)
        and provider_capabilities(payment.provider).refund
    )


def refund_decisions_offered(refund: Refund, user) -> list[str]:
    """The decisions this user may take on this refund now (four-eyes: never on their own request)."""
    if refund.status == Refund.Status.PENDING_APPROVAL:
        if user.has_perm(PERM_APPROVE) and refund.requested_by_id != user.pk:
            return ["approve_refund", "reject_refund"]
        return []
    if refund.status == Refund.Status.FAILED and (user.has_perm(PERM_REQUEST) or user.has_perm(PERM_APPROVE)):
        return ["retry_refund"]
    return []


def refund_threshold(currency: str) -> Decimal | None:
    value = settings.REFUND_APPROVAL_THRESHOLDS.get(currency)
    return Decimal(value) if value is not None else None


def payment_refundable(payment: Payment) -> Money:
    """What can still be refunded: captured - refunded - open refunds. Call with the payment locked."""
    currency = str(payment.amount.currency)
    reserved = Refund.objects.filter(payment_id=payment.pk, status__in=Refund.RESERVING).aggregate(t=Sum("amount"))[
        "t"
    ] or Decimal(0)
    return Money(payment.amount.amount - payment.refunded.amount - reserved, currency)


def refund_needs_approval(*, customer_id: int, amount: Money, now: datetime.datetime) -> tuple[bool, str]:
    threshold = refund_threshold(str(amount.currency))
    if threshold is None:
        return True, f"no auto-approval threshold for {amount.currency}"
    if amount.amount > threshold:
        return True, f"above the {threshold} {amount.currency} threshold"
    recent = (
        Refund.objects.filter(customer_id=customer_id, requested_at__gte=now - datetime.timedelta(days=30))
        .exclude(status=Refund.Status.REJECTED)
        .count()
    )
    if recent >= settings.REFUND_APPROVAL_MAX_PER_CUSTOMER_30D:
        return True, f"customer already has {recent} refunds in 30 days"
    return False, ""


def _audit(refund: Refund, action: str, *, actor, before=None, reason: str = "", actor_kind=None, actor_label=""):
    audit_record(
        action=action,
        obj=refund,
        actor=actor,
        actor_kind=actor_kind,
        actor_label=actor_label,
        customer=refund.customer,
        before=before,
        after=snapshot(refund, REFUND_FIELDS),
        reason=reason,
    )


def refund_check(*, payment: Payment, amount: Money, revoke_access: str) -> None:
    """Refuse (nothing written) a refund the platform owns, in another currency, not positive or finer than
    the currency's minor unit, or with an unknown revoke option: what a request and its preview both check."""
    if revoke_access not in Refund.RevokeAccess.values:
        raise InvalidInput(f"Unknown revoke option '{revoke_access}'.")
    adapter = get_provider_or_none(payment.provider)
    if (
        not provider_capabilities(payment.provider).refund
        or adapter is None
        or not getattr(adapter, "supports_refunds", True)
    ):
        raise RefundUnsupported(
            f"{payment.get_provider_display()} refunds are made by the platform; they are recorded when it notifies us."
        )
    currency = str(payment.amount.currency)
    if str(amount.currency) != currency:
        raise InvalidInput(
            f"The refund must be in the payment's currency ({currency}).", code=ErrorCode.REFUND_CURRENCY_MISMATCH
        )
    if amount.amount <= 0:
        raise InvalidInput("A refund amount must be positive.")
    if quantize(amount.amount, currency) != amount.amount:
        raise InvalidInput(f"{amount.amount} is finer than {currency}'s minor unit.")


def refund_check_payment(payment: Payment, amount: Money) -> Money:
    """Refuse a refund of a payment not in a refundable state or beyond what it still has; returns what it has.
    A request calls it with the payment locked; a preview reads it as it stands."""
    if payment.status not in REFUNDABLE_PAYMENT_STATUSES:
        raise Conflict(f"A {payment.status} payment cannot be refunded.", code=ErrorCode.REFUND_PAYMENT_NOT_REFUNDABLE)
    remaining = payment_refundable(payment)
    if amount > remaining:
        raise InvalidInput(
            f"Only {remaining} can still be refunded on this payment.",
            code=ErrorCode.REFUND_EXCEEDS_REFUNDABLE,
            extra={"refundable": str(remaining.amount), "currency": str(remaining.currency)},
        )
    return remaining


def refund_request(
    *,
    payment: Payment,
    amount: Money,
    reason_code: str,
    requested_by,
    note: str = "",
    revoke_access: str = Refund.RevokeAccess.NONE,
    execute: bool = True,
) -> Refund:
    """Ask for a refund. Small ones are approved and executed at once; the rest wait for four-eyes.

    Refused (nothing written) when the amount is not positive, exceeds what is
    still refundable, is in another currency, or the platform owns its refunds.
    """
    require_perm(requested_by, PERM_REQUEST)
    if reason_code not in Refund.Reason.values:
        raise InvalidInput(f"Unknown reason code '{reason_code}'. Use one of: {', '.join(Refund.Reason.values)}.")
    refund_check(payment=payment, amount=amount, revoke_access=revoke_access)
    now = clock.now()
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        refund_check_payment(locked, amount)
        needs_approval, why = refund_needs_approval(customer_id=locked.customer_id, amount=amount, now=now)
        refund = Refund(
            payment=locked,
            customer_id=locked.customer_id,
            amount=amount,
            reason_code=reason_code,
            note=note,
            revoke_access=revoke_access,
            requested_by=requested_by,
            requested_at=now,
        )
        if needs_approval:
            refund.hold_for_approval()
        else:
            refund.approve(by=None)
        refund.full_clean(exclude=["idempotency_key", "status"])
        refund.save()
        _audit(refund, "refund.request", actor=requested_by, reason=f"{reason_code}: {note}".strip(": "))
        if needs_approval:
            _audit(refund, "refund.hold_for_approval", actor=None, reason=why, actor_kind=AuditEvent.ActorKind.SYSTEM)
    if execute and refund.status == Refund.Status.APPROVED:
        refund = refund_execute(refund=refund, actor=requested_by)
    return refund


def get_provider_or_none(name: str):
    try:
        return get_provider(name)
    except KeyError:
        return None


def _lock_for_decision(refund: Refund, decider, self_decision_message: str) -> Refund:
    """Lock a held refund for a second staff member's decision; never the requester's."""
    locked = Refund.objects.select_for_update(of=("self",)).select_related("customer").get(pk=refund.pk)
    if locked.requested_by_id is not None and locked.requested_by_id == decider.pk:
        raise PermissionDenied(self_decision_message, code=ErrorCode.REFUND_SELF_APPROVAL)
    if locked.status != Refund.Status.PENDING_APPROVAL:
        raise Conflict(f"This refund is {locked.status}, not awaiting approval.", code=ErrorCode.ILLEGAL_TRANSITION)
    return locked


def refund_approve(*, refund: Refund, approved_by, reason: str, execute: bool = True) -> Refund:
    """Four-eyes: a second staff member with ``approve_refund`` lets a held refund go through."""
    require_perm(approved_by, PERM_APPROVE)
    _require_reason(reason, "Approving a refund")
    with transaction.atomic():
        locked = _lock_for_decision(refund, approved_by, "You cannot approve your own refund.")
        before = snapshot(locked, REFUND_FIELDS)
        locked.approve(by=approved_by)
        locked.decided_reason = reason
        locked.save()
        _audit(locked, "refund.approve", actor=approved_by, before=before, reason=reason)
    if execute:
        locked = refund_execute(refund=locked, actor=approved_by)
    return locked


def refund_reject(*, refund: Refund, rejected_by, reason: str) -> Refund:
    require_perm(rejected_by, PERM_APPROVE)
    _require_reason(reason, "Rejecting a refund")
    with transaction.atomic():
        locked = _lock_for_decision(refund, rejected_by, "You cannot decide on your own refund.")
        before = snapshot(locked, REFUND_FIELDS)
        locked.reject(by=rejected_by)
        locked.decided_reason = reason
        locked.save()
        _audit(locked, "refund.reject", actor=rejected_by, before=before, reason=reason)
    return locked


def refund_retry(*, refund: Refund, actor, reason: str) -> Refund:
    """Submit a failed (or stuck submitted) refund again with the same idempotency key.

    The provider refunds at most once per key, so a retry after a timeout or a
    crash between "submitted" and the provider's answer cannot refund twice.
    """
    require_perm(actor, PERM_REQUEST, or_perm=PERM_APPROVE)
    _require_reason(reason, "Retrying a refund")
    row = Refund.objects.filter(pk=refund.pk).values("status", "submitted_at", "provider_refund_id").first()
    if row is None:
        raise NotFound(f"No refund {refund.pk}.")
    stuck = (
        row["status"] == Refund.Status.SUBMITTED
        and not row["provider_refund_id"]
        and row["submitted_at"] is not None
        and row["submitted_at"] < clock.now() - settings.REFUND_SUBMITTED_STUCK_AFTER
    )
    if row["status"] != Refund.Status.FAILED and not stuck:
        raise Conflict(
            f"Only a failed refund can be retried (this one is {row['status']}).", code=ErrorCode.ILLEGAL_TRANSITION
        )
    return refund_execute(refund=refund, actor=actor, reason=reason)


def refund_execute(*, refund: Refund, actor, reason: str = "") -> Refund:
    """Submit an approved (or failed) refund to the provider and book the outcome.

    Three short transactions, so no row lock is held across the network call:
    mark submitted; call the provider; record success (ledger, payment, and what the
    refund-succeeded hooks change, access) or failure (nothing posted, retryable). The provider's own notification
    of the same refund (charge.refunded) may land in between: whichever books
    first wins, the other sees a succeeded refund and books nothing.
    """
    with transaction.atomic():
        locked = Refund.objects.select_for_update(of=("self",)).select_related("payment", "customer").get(pk=refund.pk)
        if locked.status == Refund.Status.SUBMITTED:
            # A retry of a stuck submission: same key, no second submit transition.
            locked.attempts += 1
            locked.save(update_fields=["attempts"])
        elif locked.status in (Refund.Status.APPROVED, Refund.Status.FAILED):
            before = snapshot(locked, REFUND_FIELDS)
            locked.submit()
            locked.save()
            _audit(locked, "refund.submit", actor=actor, before=before, reason=reason)
        else:
            raise Conflict(f"A {locked.status} refund cannot be submitted.", code=ErrorCode.ILLEGAL_TRANSITION)
    payment = locked.payment
    try:
        result = get_provider(payment.provider).refund(
            payment_reference=payment.provider_reference,
            amount=locked.amount,
            idempotency_key=locked.idempotency_key,
            reason=locked.reason_code,
        )
    except ProviderError as exc:
        code = (
            ErrorCode.REFUND_UNSUPPORTED_BY_PROVIDER if isinstance(exc, UnsupportedOperation) else (exc.code or "error")
        )
        with transaction.atomic():
            locked = Refund.objects.select_for_update(of=("self",)).select_related("customer").get(pk=refund.pk)
            if locked.status != Refund.Status.SUBMITTED:
                return locked
            before = snapshot(locked, REFUND_FIELDS)
            locked.fail(code=code[:64], message=str(exc))
            locked.save()
            _audit(locked, "refund.fail", actor=actor, before=before, reason=str(exc))
        return locked
    with transaction.atomic():
        # Same lock order as refund_record_from_provider: payment, then refund.
        Payment.objects.select_for_update().get(pk=payment.pk)
        locked = Refund.objects.select_for_update(of=("self",)).select_related("customer").get(pk=refund.pk)
        if locked.status != Refund.Status.SUBMITTED:
            return locked  # the provider's notification booked it already
        if result.status != "succeeded":
            # Asynchronous at the provider: keep it submitted; its notification finishes it.
            locked.provider_refund_id = result.provider_refund_id
            locked.save(update_fields=["provider_refund_id"])
            _audit(locked, "refund.pending_at_provider", actor=actor, reason=result.status)
            return locked
        _book_success(refund=locked, provider_refund_id=result.provider_refund_id, actor=actor)
    return locked


def refund_legs(payment: Payment, amount: Money) -> list[Leg]:
    """Give back ``amount``: its tax share out of tax payable, the rest against revenue; cash leaves the provider.

    The provider keeps its processing fee (Stripe does), so fees are not reversed; a store gives
    back its commission on what it refunds (it takes back only the proceeds it paid), and the tax
    it remitted itself never passed through our cash or our tax payable.
    """
    currency = str(amount.currency)
    tax_share = commission_share = Decimal(0)
    if payment.amount.amount:
        ratio = amount.amount / payment.amount.amount
        tax_share = quantize(payment.tax.amount * ratio, currency)
        commission_share = quantize(payment.commission.amount * ratio, currency)
    remitted = provider_remits_tax(payment.provider)
    legs = [
        Leg(Account.REFUNDS, Money(amount.amount - tax_share, currency)),
        Leg(Account.STORE_COMMISSION, Money(-commission_share, currency)),
        Leg(
            Account.cash(payment.provider),
            Money(-(amount.amount - commission_share - (tax_share if remitted else 0)), currency),
        ),
    ]
    if not remitted:
        legs.append(Leg(Account.TAX_PAYABLE, Money(tax_share, currency)))
    return legs


def _book_success(*, refund: Refund, provider_refund_id: str, actor, actor_kind=None, actor_label="", reason=""):
    """Refund succeeded: raise Payment.refunded, move its status, post the ledger once. Caller holds locks."""
    payment = Payment.objects.select_for_update().get(pk=refund.payment_id)
    before = snapshot(refund, REFUND_FIELDS)
    refund.succeed(provider_refund_id=provider_refund_id)
    refund.save()
    payment.refunded = payment.refunded + refund.amount
    if payment.refunded.amount >= payment.amount.amount:
        payment.refund_fully()
    else:
        payment.refund_partially()
    payment.save(update_fields=["refunded", "status"])
    # A refund in full takes back the period its payment bought: that payment's days change.
    finance_days_touch(payment.occurred_at, refund.completed_at or clock.now())
    journal_post(
        Posting(
            key=f"refund:{refund.pk}",
            kind="refund",
            legs=refund_legs(payment, refund.amount),
            memo=f"Refund of {payment.provider_reference} ({refund.reason_code})",
            customer=refund.customer,
            source_type="monetization.refund",
            source_id=str(refund.pk),
        )
    )
    _audit(
        refund,
        "refund.succeed",
        actor=actor,
        before=before,
        actor_kind=actor_kind,
        actor_label=actor_label,
        reason=reason,
    )
    for hook in refund_succeeded_hooks:
        hook(refund, actor)


def refund_record_from_provider(
    *, payment: Payment, amount: Money, provider_refund_id: str, cause, revoke_access: str = Refund.RevokeAccess.NONE
) -> tuple[Refund, bool]:
    """Record a refund the platform made itself (App Store REFUND, Stripe charge.refunded, Play voided purchase).

    Idempotent on (payment, provider_refund_id): a re-delivered notification
    returns the existing refund (created=False). Posts the ledger like any refund.
    ``cause`` names who reported it: ``actor_kind``, ``label`` and ``reason`` (a provider event).
    """
    if not provider_refund_id:
        raise InvalidInput("A provider refund needs the provider's refund id.")
    currency = str(payment.amount.currency)
    if str(amount.currency) != currency or amount.amount <= 0:
        raise InvalidInput("A provider refund must be positive and in the payment's currency.")
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        existing = (
            Refund.objects.select_for_update(of=("self",))
            .select_related("customer")
            .filter(payment_id=locked.pk, provider_refund_id=provider_refund_id)
            .first()
        )
        if existing is None:
            # Our own refund, submitted, whose answer has not been booked yet (the
            # notification overtook it): same payment, same amount, no provider id yet.
            existing = (
                Refund.objects.select_for_update(of=("self",))
                .select_related("customer")
                .filter(payment_id=locked.pk, status=Refund.Status.SUBMITTED, provider_refund_id="", amount=amount)
                .order_by("id")
                .first()
            )
        if existing is not None:
            if existing.status == Refund.Status.SUBMITTED:
                _book_success(
                    refund=existing,
                    provider_refund_id=provider_refund_id,
                    actor=None,
                    actor_kind=cause.actor_kind,
                    actor_label=cause.label,
                    reason=cause.reason,
                )
            return existing, False
        if locked.status not in REFUNDABLE_PAYMENT_STATUSES:
            raise Conflict(
                f"A {locked.status} payment cannot be refunded.", code=ErrorCode.REFUND_PAYMENT_NOT_REFUNDABLE
            )
        # The platform has already moved the money: it wins over open staff requests,
        # but never beyond what was captured.
        if amount.amount > locked.amount.amount - locked.refunded.amount:
            raise InvalidInput(
                "The provider refund exceeds what was captured.", code=ErrorCode.REFUND_EXCEEDS_REFUNDABLE
            )
        refund = Refund(
            payment=locked,
            customer_id=locked.customer_id,
            amount=amount,
            reason_code=Refund.Reason.REQUESTED_BY_CUSTOMER,
            note=f"Refunded by {locked.get_provider_display()} ({cause.label})",
            revoke_access=revoke_access,
            requested_by=None,
        )
        refund.save()
        _audit(
            refund,
            "refund.record_from_provider",
            actor=None,
            actor_kind=cause.actor_kind,
            actor_label=cause.label,
            reason=cause.reason,
        )
        _book_success(
            refund=refund,
            provider_refund_id=provider_refund_id,
            actor=None,
            actor_kind=cause.actor_kind,
            actor_label=cause.label,
            reason=cause.reason,
        )
    return refund, True


def refunds_record_reported(*, payment: Payment, report: RefundReport, cause) -> list[tuple[Refund, bool]]:
    """Book what a provider reports it refunded on ``payment``; returns (refund, created) per refund booked.

    Listed refunds are booked each under its own id (a redelivery finds them booked);
    otherwise what the provider's total (the whole payment when it names none) adds to
    what is booked already, under the report's ``remainder_id``, which a redelivery
    reproduces exactly.
    """
    currency = (report.currency or str(payment.amount.currency)).upper()
    if report.refunds:
        return [
            refund_record_from_provider(
                payment=payment, amount=money_from_minor(minor, currency), provider_refund_id=refund_id, cause=cause
            )
            for refund_id, minor in report.refunds
        ]
    payment.refresh_from_db()
    total = payment.amount if report.refunded_minor is None else money_from_minor(report.refunded_minor, currency)
    missing = total - payment.refunded
    if missing.amount <= 0:
        return []
    return [
        refund_record_from_provider(
            payment=payment, amount=missing, provider_refund_id=report.remainder_id, cause=cause
        )
    ]


def refunds_reverse_reported(*, payment: Payment, refund_id_prefix: str, cause) -> list[Refund]:
    """The provider took back the refunds it made on ``payment`` (those whose provider id starts with
    ``refund_id_prefix``): each is marked reversed, Payment.refunded lowered and the ledger entry
    reversed, once (a redelivery finds them reversed). Returns the refunds reversed now."""
    reversed_now = []
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        refunds = (
            Refund.objects.select_for_update(of=("self",))
            .select_related("customer")
            .filter(
                payment_id=locked.pk,
                status=Refund.Status.SUCCEEDED,
                requested_by__isnull=True,
                provider_refund_id__startswith=refund_id_prefix,
            )
            .order_by("id")
        )
        for refund in refunds:
            before = snapshot(refund, REFUND_FIELDS)
            refund.reverse()
            refund.save()
            locked.refunded = locked.refunded - refund.amount
            journal_post(
                Posting(
                    key=f"refund_reversal:{refund.pk}",
                    kind="refund_reversal",
                    legs=[Leg(leg.account, -leg.amount) for leg in refund_legs(locked, refund.amount)],
                    memo=f"Refund of {locked.provider_reference} reversed by {locked.get_provider_display()}",
                    customer=refund.customer,
                    source_type="monetization.refund",
                    source_id=str(refund.pk),
                )
            )
            _audit(
                refund,
                "refund.reverse",
                actor=None,
                before=before,
                actor_kind=cause.actor_kind,
                actor_label=cause.label,
                reason=cause.reason,
            )
            reversed_now.append(refund)
        if reversed_now:
            finance_days_touch(locked.occurred_at, *(r.completed_at for r in reversed_now if r.completed_at))
            if locked.refunded.amount <= 0:
                locked.refund_reversed_fully()
            else:
                locked.refund_reversed_partially()
            locked.save(update_fields=["refunded", "status"])
    return reversed_now


def refund_get(refund_id: int) -> Refund:
    refund = Refund.objects.select_related("payment", "customer").filter(pk=refund_id).first()
    if refund is None:
        raise NotFound(f"No refund {refund_id}.")
    return refund
