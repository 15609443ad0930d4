"""Applying stored provider events: one applier for every provider, working on neutral facts.

The provider package reads the event (``event_facts``: a subscription snapshot, a
payment, a refund, a failed charge, a revocation; Google Play's re-read through its
API); this module applies those facts the same way whoever sent them: converge the
subscription, record the payment against it, book the refund, end access, leave the
provider's details on the timeline. Registered for each provider in the money core's
``event_appliers`` (subscriptions.apps).

An applier raises ``EventIgnored`` (nothing to do), ``RetryableApplyError`` (the
provider was unreachable, or an event arrived before the one it depends on: try again
later), or anything else (a permanent failure, shown in the admin for replay). The
note it returns is shown in the admin's webhook inbox.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.db import transaction

from monetization.errors import ErrorCode
from monetization.models import Payment, Refund, WebhookEvent
from monetization.providers import provider_package
from monetization.providers.base import EventIgnored, SubjectMissing
from monetization.services.audit import audit_record
from monetization.services.consumption import consumption_request_record
from monetization.services.refunds import refunds_record_reported, refunds_reverse_reported
from monetization.services.webhooks import DONE, EventApplier, webhook_event_apply
from subscriptions.models import Subscription
from subscriptions.services.lifecycle import Cause, subscription_change_state
from subscriptions.services.payments import payment_subscription, subscription_payment_record
from subscriptions.services.provider_sync import (
    SubscriptionSyncError,
    SyncRequest,
    SyncResult,
    subscription_revoke_for_refund,
    subscription_sync_from_snapshot,
    subscriptions_sync_from_snapshots,
)

log = logging.getLogger(__name__)


def sync_note(result: SyncResult) -> str:
    sub = result.subscription
    return f"subscription {sub.pk} {sub.state}" + (" (older event)" if result.stale else "")


def _cause(event: WebhookEvent) -> Cause:
    return Cause.provider_event(event.provider, event.event_id, reason=event.event_type)


def _subscription(provider: str, provider_subscription_id: str) -> Subscription | None:
    if not provider_subscription_id:
        return None
    return (
        Subscription.objects.select_related("customer")
        .filter(provider=provider, provider_subscription_id=provider_subscription_id)
        .first()
    )


def provider_event_apply(event: WebhookEvent) -> str:
    """Apply one stored provider event (in the caller's transaction); returns its note."""
    facts = provider_package(event.provider).event_facts(event)
    cause = _cause(event)
    notes: list[str] = []
    sub = None
    if facts.snapshot is not None:
        try:
            result = subscription_sync_from_snapshot(snapshot=facts.snapshot, cause=cause)
        except SubscriptionSyncError as exc:
            if exc.code != ErrorCode.UNKNOWN_CUSTOMER:
                raise
            # The store does not wait for the app's purchase call: the event waits for the link.
            raise SubjectMissing(str(exc)) from exc
        sub = result.subscription
        notes.append(sync_note(result))
        if result.created:
            # Earlier events about it may be waiting for it (one without the customer's link, say).
            _wake_after_commit(event.provider, sub.provider_subscription_id)
        if facts.replaces and not result.stale:
            old = (
                Subscription.objects.filter(provider=event.provider, provider_subscription_id=facts.replaces)
                .exclude(state__in=[Subscription.State.EXPIRED, Subscription.State.REVOKED])
                .first()
            )
            if old is not None:
                subscription_change_state(
                    subscription=old, transition="expire", cause=cause, updates={"cancel_reason": "replaced"}
                )
                notes.append(f"replaced subscription {old.pk} expired")

    for report in facts.earlier_payments:
        if sub is not None:
            _, created = subscription_payment_record(
                subscription=sub,
                customer=sub.customer,
                provider=event.provider,
                provider_reference=report.provider_reference,
                amount=report.amount,
                fee=report.fee,
                tax=report.tax,
                kind=report.kind,
                occurred_at=report.occurred_at,
            )
            notes.append(f"earlier payment {report.provider_reference} {'recorded' if created else 'known'}")

    if facts.payment is not None:
        report = facts.payment
        alone = sub is None
        if alone:
            sub = _subscription(event.provider, facts.subscription_ref)
            if sub is None:
                # Providers do not order events: the subscription's own event is on its way.
                raise SubjectMissing(f"subscription {facts.subscription_ref} not known yet")
        payment, created = subscription_payment_record(
            subscription=sub,
            customer=sub.customer,
            provider=event.provider,
            provider_reference=report.provider_reference,
            amount=report.amount,
            fee=report.fee,
            tax=report.tax,
            kind=report.kind,
            occurred_at=report.occurred_at,
        )
        if created:
            # A refund of it may be waiting for it.
            _wake_after_commit(event.provider, sub.provider_subscription_id)
        if alone:
            return f"payment {payment.pk} {'recorded' if created else 'already recorded'}"
        notes.append(f"payment {payment.pk}")

    if facts.payment_failed is not None:
        sub = _subscription(event.provider, facts.subscription_ref)
        if sub is None:
            raise EventIgnored("payment failure for an unknown subscription")
        audit_record(
            action="payment.failed",
            obj=sub,
            actor_kind="provider",
            actor_label=cause.label,
            customer=sub.customer,
            after=facts.payment_failed,
        )
        return f"payment failure recorded on subscription {sub.pk}"

    if facts.refund is not None:
        refunded = (
            Payment.objects.select_related("customer")
            .filter(provider=event.provider, provider_reference=facts.refund.payment_reference)
            .first()
        )
        if sub is None:
            # A refund alone names its payment: that payment's subscription is the one it is about.
            sub = payment_subscription(refunded.pk) if refunded is not None else None
            if sub is None:
                raise EventIgnored("refund of a charge that paid no known subscription invoice")
            booked = refunds_record_reported(payment=refunded, report=facts.refund, cause=cause)
            created = sum(1 for _refund, new in booked if new)
            if facts.access_ends:
                subscription_revoke_for_refund(
                    subscription=sub, cause=cause, occurred_at=event.occurred_at, detail=facts.refund_reported or {}
                )
                return f"full refund ({created} booked): subscription {sub.pk} revoked"
            _refund_reported(sub, cause, facts.refund_reported)
            return f"partial refund noted ({created} booked); access unchanged"
        if refunded is None:
            # The payment's own event is on its way; the refund waits for it rather than being lost.
            raise SubjectMissing(f"payment {facts.refund.payment_reference} not known yet")
        booked = refunds_record_reported(payment=refunded, report=facts.refund, cause=cause)
        if any(new for _refund, new in booked):
            _wake_after_commit(event.provider, sub.provider_subscription_id)  # its reversal may be waiting
        for refund, new in booked:
            notes.append(f"refund {refund.pk} booked" if new else f"refund {refund.pk} already booked")
        if facts.access_ends and any(new for _refund, new in booked):
            # A refund made at the provider, booked just now: access ends with it, in this transaction.
            # Its echo of our own refund, or a redelivery, books nothing and leaves access as it is.
            subscription_revoke_for_refund(
                subscription=sub, cause=cause, occurred_at=event.occurred_at, detail=facts.refund_reported or {}
            )
            notes.append(f"subscription {sub.pk} revoked")
            return "; ".join(notes)

    if facts.refund_reversed:
        notes.append(_refund_reversal(event, facts.refund_reversed, cause))

    if facts.consumption_request is not None:
        known = _subscription(event.provider, facts.subscription_ref)
        request, created = consumption_request_record(
            provider=event.provider,
            event_id=event.event_id,
            detail=facts.consumption_request,
            customer=known.customer if known else None,
            cause=cause,
        )
        return f"consumption request {request.pk} {'recorded' if created else 'already recorded'}"

    if facts.refund_reported is not None and sub is not None:
        # Access ended with the snapshot; the provider's reasons go on the timeline.
        _refund_reported(sub, cause, facts.refund_reported)
    return "; ".join(notes)


def _refund_reversal(event: WebhookEvent, payment_reference: str, cause: Cause) -> str:
    """The provider took back the refunds it made on a payment: the money is booked back (access came
    back with the event's snapshot, in this transaction)."""
    payment = Payment.objects.filter(provider=event.provider, provider_reference=payment_reference).first()
    if payment is None:
        raise SubjectMissing(f"payment {payment_reference} not known yet")
    provider_made = Refund.objects.filter(payment=payment, requested_by__isnull=True).exclude(provider_refund_id="")
    if not provider_made.filter(status__in=[Refund.Status.SUCCEEDED, Refund.Status.REVERSED]).exists():
        # Its refund's own notification is on its way: reversing nothing now would leave it booked later.
        raise SubjectMissing(f"no refund of payment {payment_reference} booked yet")
    reversed_now = refunds_reverse_reported(payment=payment, refund_id_prefix="", cause=cause)
    return f"{len(reversed_now)} refund(s) reversed" if reversed_now else "refund already reversed"


def _refund_reported(sub: Subscription, cause: Cause, detail: dict | None) -> None:
    audit_record(
        action="subscription.refund_reported",
        obj=sub,
        actor_kind="provider",
        actor_label=cause.label,
        customer=sub.customer,
        after=detail or {},
    )


def _wake_after_commit(provider: str, subscription_ref: str) -> None:
    transaction.on_commit(lambda: provider_events_wake(provider=provider, subscription_ref=subscription_ref))


def provider_events_wake(*, provider: str, subscription_ref: str) -> int:
    """Apply now the events about a subscription that were waiting for it (its customer was just linked).

    Returns how many were applied; one that still cannot apply keeps waiting (its retry stays scheduled).
    """
    applied = 0
    waiting = (
        WebhookEvent.objects.filter(provider=provider, subscription_ref=subscription_ref)
        .exclude(status__in=DONE)
        .order_by("occurred_at", "pk")
        .values_list("pk", flat=True)
    )
    for event_id in list(waiting):
        try:
            event = webhook_event_apply(event_id=event_id)
        except Exception as exc:  # recorded on the event's row, like any failed apply
            log.info("event %s still waits: %s", event_id, exc)
        else:
            applied += event.status == WebhookEvent.Status.APPLIED
    return applied


def provider_events_apply_together(events: Sequence[WebhookEvent]) -> dict[int, str]:
    """Converge, in bulk and in the events' order, the subscriptions of the events that are snapshots alone."""
    synced = [(event, provider_package(event.provider).event_snapshot(event)) for event in events]
    synced = [(event, snapshot) for event, snapshot in synced if snapshot is not None]
    if not synced:
        return {}
    results = subscriptions_sync_from_snapshots(
        [SyncRequest(snapshot=snapshot, cause=_cause(event)) for event, snapshot in synced]
    )
    return {event.pk: sync_note(result) for (event, _snapshot), result in zip(synced, results, strict=True)}


EVENT_APPLIER = EventApplier(apply=provider_event_apply, apply_together=provider_events_apply_together)
