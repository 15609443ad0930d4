"""App Store Server Notifications V2 -> subscription state, payments, refunds."""

from __future__ import annotations

from monetization.models import Payment, WebhookEvent
from monetization.providers.app_store.adapter import (
    IGNORED_TYPES,
    PAYMENT_TYPES,
    ms,
    snapshot_from_transaction,
    transaction_amount,
)
from monetization.providers.base import EventIgnored, SubscriptionSnapshot
from monetization.services.audit import audit_record
from monetization.services.refunds import refund_record_from_provider
from subscriptions.services.lifecycle import Cause
from subscriptions.services.payments import subscription_payment_record
from subscriptions.services.provider_sync import subscription_sync_from_snapshot

from .common import sync_note


def _snapshot(event: WebhookEvent) -> SubscriptionSnapshot:
    """The notification's subscription snapshot (raises EventIgnored for what we don't act on)."""
    notification = event.payload.get("notification") or {}
    transaction = event.payload.get("transaction")
    ntype = notification.get("notificationType", "")
    if ntype in IGNORED_TYPES:
        raise EventIgnored(ntype)
    if not transaction:
        raise EventIgnored(f"{ntype} without a transaction")
    if transaction.get("type") and transaction["type"] != "Auto-Renewable Subscription":
        raise EventIgnored(f"not a subscription ({transaction['type']})")
    return snapshot_from_transaction(
        transaction,
        event.payload.get("renewal"),
        as_of=event.occurred_at,
        notification_type=ntype,
        subtype=notification.get("subtype") or "",
    )


def sync_snapshot(event: WebhookEvent) -> SubscriptionSnapshot | None:
    """Renewal-status, grace, billing-retry and expiry notifications are snapshots alone (no payment, no refund)."""
    ntype = (event.payload.get("notification") or {}).get("notificationType", "")
    if ntype in PAYMENT_TYPES or ntype in ("REFUND", "REVOKE"):
        return None
    try:
        return _snapshot(event)
    except EventIgnored:
        return None  # recorded as ignored one at a time


def apply(event: WebhookEvent) -> str:
    notification = event.payload.get("notification") or {}
    transaction = event.payload.get("transaction")
    ntype = notification.get("notificationType", "")
    subtype = notification.get("subtype") or ""
    snapshot = _snapshot(event)
    cause = Cause.provider_event("app_store", event.event_id, reason=event.event_type)
    result = subscription_sync_from_snapshot(snapshot=snapshot, cause=cause)
    sub = result.subscription
    notes = [sync_note(result)]
    amount = transaction_amount(transaction)
    if ntype in PAYMENT_TYPES and amount is not None and not transaction.get("revocationDate"):
        first = ntype == "SUBSCRIBED" and transaction.get("transactionReason", "PURCHASE") == "PURCHASE"
        payment, _created = subscription_payment_record(
            customer=sub.customer,
            provider="app_store",
            provider_reference=str(transaction["transactionId"]),
            amount=amount,
            kind=Payment.Kind.INITIAL if first and subtype != "RESUBSCRIBE" else Payment.Kind.RENEWAL,
            subscription=sub,
            occurred_at=ms(transaction.get("purchaseDate")) or event.occurred_at,
        )
        notes.append(f"payment {payment.pk}")
    if ntype == "REFUND":
        # Apple owns App Store refunds; it tells us the transaction it refunded, whole.
        refunded = Payment.objects.filter(
            provider="app_store", provider_reference=str(transaction.get("transactionId"))
        ).first()
        if refunded is not None and refunded.refunded < refunded.amount:
            _refund, created = refund_record_from_provider(
                payment=refunded,
                amount=refunded.amount - refunded.refunded,
                provider_refund_id=f"apple:{transaction.get('transactionId')}:{transaction.get('revocationDate')}",
                cause=cause,
            )
            notes.append(f"refund {_refund.pk} booked" if created else f"refund {_refund.pk} already booked")
    if ntype in ("REFUND", "REVOKE"):
        # Access ends (the snapshot above revoked it); leave the provider's reasons on the timeline.
        audit_record(
            action="subscription.refund_reported",
            obj=sub,
            actor_kind="provider",
            actor_label=cause.label,
            customer=sub.customer,
            after={
                "transaction": transaction.get("transactionId"),
                "type": ntype,
                "revocation_reason": transaction.get("revocationReason"),
                "revocation_date": transaction.get("revocationDate"),
            },
        )
    return "; ".join(notes)
