"""Stripe events -> subscription state, payments and refund-driven revocations."""

from __future__ import annotations

from monetization.models import Payment, WebhookEvent
from monetization.providers.base import EventIgnored, RetryableApplyError, SubscriptionSnapshot, get_provider
from monetization.providers.stripe.adapter import (
    invoice_subscription_id,
    money_from_minor,
    snapshot_from_subscription,
    ts,
)
from monetization.services.audit import audit_record
from monetization.services.refunds import refund_record_from_provider
from subscriptions.models import Subscription
from subscriptions.services.lifecycle import Cause
from subscriptions.services.payments import payment_subscription, subscription_payment_record
from subscriptions.services.provider_sync import subscription_revoke_for_refund, subscription_sync_from_snapshot

from .common import sync_note

BILLING_REASON_KIND = {
    "subscription_create": Payment.Kind.INITIAL,
    "subscription_cycle": Payment.Kind.RENEWAL,
    "subscription_update": Payment.Kind.UPGRADE,
}


def _subscription(sub_id: str) -> Subscription | None:
    if not sub_id:
        return None
    return (
        Subscription.objects.select_related("customer")
        .filter(provider="stripe", provider_subscription_id=sub_id)
        .first()
    )


def _invoice_tax(invoice: dict) -> int:
    taxes = invoice.get("total_taxes")
    if taxes:
        return sum(int(t.get("amount") or 0) for t in taxes)
    return int(invoice.get("tax") or 0)


def _invoice_fee(invoice: dict) -> int:
    """The processing fee, when the charge's balance transaction came expanded with the event."""
    charge = invoice.get("charge")
    if isinstance(charge, dict):
        bt = charge.get("balance_transaction")
        if isinstance(bt, dict):
            return int(bt.get("fee") or 0)
    return 0


def sync_snapshot(event: WebhookEvent) -> SubscriptionSnapshot | None:
    """customer.subscription.* events are whole snapshots of the subscription."""
    if event.event_type.startswith("customer.subscription."):
        return snapshot_from_subscription(event.payload["data"]["object"], as_of=event.occurred_at)
    return None


def apply(event: WebhookEvent) -> str:
    data = event.payload
    obj = data["data"]["object"]
    cause = Cause.provider_event("stripe", event.event_id, reason=event.event_type)
    kind = event.event_type
    snapshot = sync_snapshot(event)
    if snapshot is not None:
        return sync_note(subscription_sync_from_snapshot(snapshot=snapshot, cause=cause))
    if kind == "invoice.paid":
        sub_id = invoice_subscription_id(obj)
        if not sub_id:
            raise EventIgnored("invoice without a subscription")
        if int(obj.get("amount_paid") or 0) <= 0:
            raise EventIgnored("zero-amount invoice (trial or credit)")
        sub = _subscription(sub_id)
        if sub is None:
            # Stripe does not order events: the subscription's own event is on its way.
            raise RetryableApplyError(f"subscription {sub_id} not known yet")
        currency = obj["currency"]
        paid_at = ts((obj.get("status_transitions") or {}).get("paid_at")) or event.occurred_at
        payment, created = subscription_payment_record(
            customer=sub.customer,
            provider="stripe",
            provider_reference=obj["id"],
            amount=money_from_minor(obj["amount_paid"], currency),
            fee=money_from_minor(_invoice_fee(obj), currency),
            tax=money_from_minor(_invoice_tax(obj), currency),
            kind=BILLING_REASON_KIND.get(obj.get("billing_reason"), Payment.Kind.RENEWAL),
            subscription=sub,
            occurred_at=paid_at,
        )
        return f"payment {payment.pk} {'recorded' if created else 'already recorded'}"
    if kind == "invoice.payment_failed":
        sub = _subscription(invoice_subscription_id(obj))
        if sub is None:
            raise EventIgnored("payment failure for an unknown subscription")
        # State follows customer.subscription.updated (past_due); here we keep the attempt on the timeline.
        audit_record(
            action="payment.failed",
            obj=sub,
            actor_kind="provider",
            actor_label=cause.label,
            customer=sub.customer,
            after={
                "invoice": obj.get("id"),
                "amount_due": obj.get("amount_due"),
                "currency": obj.get("currency"),
                "attempt_count": obj.get("attempt_count"),
                "next_payment_attempt": obj.get("next_payment_attempt"),
            },
        )
        return f"payment failure recorded on subscription {sub.pk}"
    if kind == "charge.refunded":
        return _apply_charge_refunded(event, obj, cause)
    raise EventIgnored(f"unhandled type {kind}")


def _apply_charge_refunded(event: WebhookEvent, charge: dict, cause: Cause) -> str:
    invoice_id = charge.get("invoice") or ""
    if isinstance(invoice_id, dict):
        invoice_id = invoice_id.get("id", "")
    if not invoice_id and charge.get("payment_intent"):
        invoice_id = get_provider("stripe").invoice_for_payment_intent(charge["payment_intent"])
    payment = (
        Payment.objects.select_related("customer").filter(provider="stripe", provider_reference=invoice_id).first()
        if invoice_id
        else None
    )
    sub = payment_subscription(payment.pk) if payment is not None else None
    if sub is None:
        raise EventIgnored("refund of a charge that paid no known subscription invoice")
    amount, refunded = int(charge.get("amount") or 0), int(charge.get("amount_refunded") or 0)
    full = bool(charge.get("refunded")) or (amount > 0 and refunded >= amount)
    booked = _book_stripe_refunds(payment, charge, refunded, cause)
    detail = {
        "charge": charge.get("id"),
        "invoice": invoice_id,
        "amount_refunded": str(money_from_minor(refunded, charge.get("currency", "usd")).amount),
        "currency": (charge.get("currency") or "").upper(),
        "full": full,
    }
    if not full:
        audit_record(
            action="subscription.refund_reported",
            obj=sub,
            actor_kind="provider",
            actor_label=cause.label,
            customer=payment.customer,
            after=detail,
        )
        return f"partial refund noted ({booked} booked); access unchanged"
    subscription_revoke_for_refund(subscription=sub, cause=cause, occurred_at=event.occurred_at, detail=detail)
    return f"full refund ({booked} booked): subscription {sub.pk} revoked"


def _book_stripe_refunds(payment: Payment, charge: dict, refunded_minor: int, cause: Cause) -> int:
    """Book the money side of refunds Stripe reports (ours come back here too, and dedupe on the re_ id).

    With the refund list expanded, each refund is booked under its own id; without it,
    what Stripe has refunded beyond what we booked is recorded under the charge's
    cumulative total, which a redelivery reproduces exactly.
    """
    currency = (charge.get("currency") or str(payment.amount.currency)).upper()
    listed = [
        r for r in ((charge.get("refunds") or {}).get("data") or []) if r.get("status", "succeeded") == "succeeded"
    ]
    booked = 0
    if listed:
        for item in listed:
            _refund, created = refund_record_from_provider(
                payment=payment,
                amount=money_from_minor(int(item["amount"]), currency),
                provider_refund_id=item["id"],
                cause=cause,
            )
            booked += int(created)
        return booked
    payment.refresh_from_db()
    missing = money_from_minor(refunded_minor, currency) - payment.refunded
    if missing.amount > 0:
        _refund, created = refund_record_from_provider(
            payment=payment, amount=missing, provider_refund_id=f"{charge.get('id')}:{refunded_minor}", cause=cause
        )
        booked += int(created)
    return booked
