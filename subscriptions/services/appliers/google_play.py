"""Google Play RTDN -> re-read subscriptionsv2 -> converge; acknowledge; record payments."""

from __future__ import annotations

from dataclasses import replace

from monetization import clock
from monetization.models import Payment, WebhookEvent
from monetization.providers.base import EventIgnored, ProviderError, RetryableApplyError, get_provider
from monetization.providers.google_play.adapter import PAYMENT_CODES, play_money
from monetization.services.audit import audit_record
from subscriptions.models import Subscription
from subscriptions.services.lifecycle import Cause, subscription_change_state
from subscriptions.services.payments import subscription_payment_record
from subscriptions.services.provider_sync import subscription_sync_from_snapshot

ACCESS_STATES = {"SUBSCRIPTION_STATE_ACTIVE", "SUBSCRIPTION_STATE_IN_GRACE_PERIOD", "SUBSCRIPTION_STATE_CANCELED"}


def apply(event: WebhookEvent) -> str:
    notification = event.payload.get("notification") or {}
    sub_note = notification.get("subscriptionNotification") or {}
    voided = notification.get("voidedPurchaseNotification") or {}
    resync = notification.get("resync") or {}
    token = sub_note.get("purchaseToken") or voided.get("purchaseToken") or resync.get("purchaseToken")
    if not token:
        raise EventIgnored(event.event_type)
    if voided and int(voided.get("productType") or 1) != 1:
        raise EventIgnored("voided one-time product")
    code = int(sub_note.get("notificationType") or 0)
    provider = get_provider("google_play")
    try:
        # Notifications say only that something changed: the truth is read back every time.
        snapshot = provider.fetch_subscription(token)
    except ProviderError as exc:
        if exc.retryable:
            raise RetryableApplyError(str(exc)) from exc
        raise
    revoked = code == 12 or (voided and int(voided.get("refundType") or 1) == 1)
    if revoked:
        snapshot = replace(snapshot, status="revoked")
    if (
        snapshot.extra.get("acknowledgement_state") == "ACKNOWLEDGEMENT_STATE_PENDING"
        and snapshot.status in ACCESS_STATES
    ):
        # Unacknowledged purchases are refunded by Google after 3 days.
        try:
            provider.acknowledge(product_id=snapshot.store_product_id, token=token)
        except ProviderError as exc:
            if exc.retryable:
                raise RetryableApplyError(str(exc)) from exc
            raise
        snapshot = replace(snapshot, extra={**snapshot.extra, "acknowledged": True, "acknowledged_at": clock.now()})
    elif snapshot.extra.get("acknowledgement_state") == "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED":
        snapshot = replace(snapshot, extra={**snapshot.extra, "acknowledged": True})
    cause = Cause.provider_event("google_play", event.event_id, reason=event.event_type)
    result = subscription_sync_from_snapshot(snapshot=snapshot, cause=cause)
    sub = result.subscription
    notes = [f"subscription {sub.pk} {sub.state}"]
    linked = snapshot.extra.get("linked_purchase_token")
    if linked and not result.stale:
        # An upgrade, downgrade or resubscribe on Play is a new purchase token; the old one is over.
        old = (
            Subscription.objects.filter(provider="google_play", provider_subscription_id=linked)
            .exclude(state__in=[Subscription.State.EXPIRED, Subscription.State.REVOKED])
            .first()
        )
        if old is not None:
            subscription_change_state(
                subscription=old, transition="expire", cause=cause, updates={"cancel_reason": "replaced"}
            )
            notes.append(f"replaced subscription {old.pk} expired")
    amount = play_money(snapshot.extra.get("recurring_price"))
    order_id = snapshot.extra.get("latest_order_id")
    if (code in PAYMENT_CODES or event.event_type == "RESYNC") and amount is not None and order_id and not revoked:
        payment, _created = subscription_payment_record(
            customer=sub.customer,
            provider="google_play",
            provider_reference=order_id,
            # Play order ids: GPA.x for the first charge, GPA.x..N for the N-th renewal.
            kind=Payment.Kind.RENEWAL if ".." in order_id else Payment.Kind.INITIAL,
            amount=amount,
            subscription=sub,
            occurred_at=event.occurred_at,
        )
        notes.append(f"payment {payment.pk}")
    if revoked:
        audit_record(
            action="subscription.refund_reported",
            obj=sub,
            actor_kind="provider",
            actor_label=cause.label,
            customer=sub.customer,
            after={"purchase_token": token[:64], "type": event.event_type, "order_id": voided.get("orderId")},
        )
    return "; ".join(notes)
