"""Applying stored provider events: one applier for every provider, working on neutral facts.

The provider package reads the event (``event_facts``: a subscription snapshot, a
payment, a refund, a failed charge, a revocation; Google Play's re-read through its
API); this module applies those facts the same way whoever sent them: converge the
subscription, record the payment against it, book the refund, end access, leave the
provider's details on the timeline. Registered for each provider in the money core's
``event_appliers`` (subscriptions.apps).

An applier raises ``EventIgnored`` (nothing to do), ``SubjectMissing`` (an event arrived
before the one that creates its subject: it waits for it), ``RetryableApplyError`` (the
provider was unreachable: try again later), or anything else (a permanent failure, shown in the admin for replay). The
note it returns is shown in the admin's webhook inbox.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.db import transaction
from django.db.models import Q

from monetization.errors import ErrorCode
from monetization.models import Payment, Provider, Refund, WebhookEvent
from monetization.providers import provider_package
from monetization.providers.base import EventFacts, EventIgnored, PaymentReport, SubjectMissing
from monetization.services.audit import audit_record
from monetization.services.consumption import consumption_request_record
from monetization.services.disputes import dispute_record_reported
from monetization.services.refunds import refunds_record_reported, refunds_reverse_reported
from monetization.services.webhooks import EventApplier
from monetization.webhook_queue import webhook_events_wake
from subscriptions.models import Subscription
from subscriptions.services.lifecycle import Cause, subscription_change_state
from subscriptions.services.payments import (
    SubscriptionPaymentToRecord,
    invoice_hooks_run,
    payment_subscription,
    subscription_payments_record,
)
from subscriptions.services.provider_sync import (
    SubscriptionSyncError,
    SyncRequest,
    SyncResult,
    sku_for,
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
    # Plan and product too: a payment's revenue stream and its hooks read them (two queries fewer per payment).
    return (
        Subscription.objects.select_related("customer", "plan__product")
        .filter(provider=provider, provider_subscription_id=provider_subscription_id)
        .first()
    )


def _subscriptions(refs: set[tuple[str, str]]) -> dict[tuple[str, str], Subscription]:
    """The subscriptions of these (provider, provider subscription id) pairs, as ``_subscription`` reads one."""
    # One ``= ANY(...)`` per provider, not an OR per pair: a batch's hundred ORs cost more to build in Django
    # and to plan in PostgreSQL than the read itself.
    by_provider: dict[str, list[str]] = {}
    for provider, provider_subscription_id in refs:
        by_provider.setdefault(provider, []).append(provider_subscription_id)
    match = Q()
    for provider, provider_subscription_ids in by_provider.items():
        match |= Q(provider=provider, provider_subscription_id__in=provider_subscription_ids)
    return {
        (sub.provider, sub.provider_subscription_id): sub
        for sub in Subscription.objects.select_related("customer", "plan__product").filter(match)
    }


def _event_facts(event: WebhookEvent) -> EventFacts:
    """What the event says, read once per event object: Google Play's facts are read from its API, and an event
    the batch read but could not take is applied alone with the facts already read (not a second API call)."""
    facts = getattr(event, "_facts_read", None)
    if facts is None:
        facts = provider_package(event.provider).event_facts(event)
        event._facts_read = facts
    return facts


def provider_event_apply(event: WebhookEvent) -> str:
    """Apply one stored provider event (in the caller's transaction); returns its note."""
    facts = _event_facts(event)
    cause = _cause(event)
    notes: list[str] = []
    sub = None
    if facts.snapshot is not None:
        try:
            result = subscription_sync_from_snapshot(snapshot=facts.snapshot, cause=cause)
        except SubscriptionSyncError as exc:
            if exc.code != ErrorCode.UNKNOWN_CUSTOMER:
                raise
            # The store does not wait for the app's purchase call: the event waits for the link
            # (woken when the subscription or the customer's identity is created).
            raise SubjectMissing(str(exc)) from exc
        sub = result.subscription
        notes.append(sync_note(result))
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
            _, created = _payment_record(event, sub, report)
            notes.append(f"earlier payment {report.provider_reference} {'recorded' if created else 'known'}")

    if _payment_alone(facts):
        # The same as a batch's payments (provider_events_apply_together), for a batch of one.
        sub = _subscription(event.provider, facts.subscription_ref)
        if sub is None:
            # Providers do not order events: the subscription's own event is on its way.
            raise SubjectMissing(f"subscription {facts.subscription_ref} not known yet")
        return _payment_alone_note(*_payments_apply([(event, facts, sub)])[0])

    invoiced = None
    if facts.invoice is not None:
        invoiced = sub or _subscription(event.provider, facts.subscription_ref)
        if invoiced is None:
            raise SubjectMissing(f"subscription {facts.subscription_ref} not known yet")
        notes.extend(invoice_hooks_run(invoiced, facts.invoice, cause))
        if facts.payment is None and facts.payment_failed is None:
            return "; ".join(notes) or f"invoice {facts.invoice.provider_invoice_id} {facts.invoice.status}"

    if facts.payment is not None:
        report = facts.payment
        alone = sub is None
        if alone:
            # The invoice's subscription, when the event is an invoice: read above already.
            sub = invoiced or _subscription(event.provider, facts.subscription_ref)
            if sub is None:
                # Providers do not order events: the subscription's own event is on its way.
                raise SubjectMissing(f"subscription {facts.subscription_ref} not known yet")
        payment, created = _payment_record(event, sub, report)
        if alone:
            return "; ".join([*notes, f"payment {payment.pk} {'recorded' if created else 'already recorded'}"])
        notes.append(f"payment {payment.pk}")

    if facts.payment_failed is not None:
        if not facts.subscription_ref:
            raise EventIgnored("payment failure of no subscription")
        sub = invoiced or _subscription(event.provider, facts.subscription_ref)
        if sub is None:
            # Support reads dunning on the subscription's timeline: wait for the subscription.
            raise SubjectMissing(f"subscription {facts.subscription_ref} not known yet")
        audit_record(
            action="payment.failed",
            obj=sub,
            actor_kind="provider",
            actor_label=cause.label,
            customer=sub.customer,
            after=facts.payment_failed,
        )
        return "; ".join([*notes, f"payment failure recorded on subscription {sub.pk}"])

    if facts.dispute is not None:
        return _dispute_apply(event, facts, cause)

    if facts.refund is not None:
        reference = facts.refund.payment_reference
        refunded = (
            Payment.objects.select_related("customer")
            .filter(provider=event.provider, provider_reference=reference)
            .first()
        )
        if refunded is None:
            # The payment's own event is on its way (providers do not order events): wait for it.
            raise _payment_missing(reference)
        # Booking and any access change below run in the caller's transaction: they commit together.
        booked = refunds_record_reported(payment=refunded, report=facts.refund, cause=cause)
        if sub is None:
            # A refund alone names its payment: that payment's subscription is the one it is about.
            created = sum(1 for _refund, new in booked if new)
            sub = payment_subscription(refunded.pk)
            if sub is None:
                return f"refund of payment {refunded.pk} ({created} booked)"
            if facts.access_ends:
                subscription_revoke_for_refund(
                    subscription=sub, cause=cause, occurred_at=event.occurred_at, detail=facts.refund_reported or {}
                )
                return f"full refund ({created} booked): subscription {sub.pk} revoked"
            _refund_reported(sub, cause, facts.refund_reported)
            return f"refund noted ({created} booked); access unchanged"
        for refund, new in booked:
            notes.append(f"refund {refund.pk} booked" if new else f"refund {refund.pk} already booked")
        if any(new for _refund, new in booked):
            webhook_events_wake(provider=event.provider, subject_refs=[reference])  # its reversal may be waiting
            if facts.access_ends:
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


def _payment_record(event: WebhookEvent, sub: Subscription, report: PaymentReport) -> tuple[Payment, bool]:
    return _payments_record(event.provider, [(sub, report)])[0]


def _payments_record(provider: str, items: Sequence[tuple[Subscription, PaymentReport]]) -> list[tuple[Payment, bool]]:
    """Record the payments ``provider`` reported of these subscriptions (one batch); wake what waits for them."""
    records = []
    for sub, report in items:
        plan = None
        if report.store_product_id:
            try:
                plan = sku_for(provider, report.store_product_id).plan
            except SubscriptionSyncError:
                plan = None  # a product we don't sell: the subscription's plan it is
        records.append(
            SubscriptionPaymentToRecord(
                subscription=sub,
                customer=sub.customer,
                provider=provider,
                provider_reference=report.provider_reference,
                amount=report.amount,
                fee=report.fee,
                tax=report.tax,
                kind=report.kind,
                occurred_at=report.occurred_at,
                plan=plan,
                paid_service_since=report.paid_service_since,
            )
        )
    results = subscription_payments_record(records)
    created = [payment.provider_reference for payment, new in results if new]
    if created:
        # Refunds, reversals and disputes of these payments that came first wait for them: apply them now.
        webhook_events_wake(provider=provider, subject_refs=created)
    return results


def _nothing_more(facts: EventFacts) -> bool:
    """The event carries no earlier payments, failure, dispute, refund, consumption request or end of access."""
    return (
        not facts.earlier_payments
        and facts.payment_failed is None
        and facts.dispute is None
        and facts.refund is None
        and not facts.refund_reversed
        and facts.refund_reported is None
        and facts.consumption_request is None
        and not facts.access_ends
    )


def _payment_alone(facts: EventFacts) -> bool:
    """The event records a payment of a known subscription and nothing else (its invoice aside): ``invoice.paid``."""
    return facts.payment is not None and facts.snapshot is None and _nothing_more(facts)


def _payments_apply(
    items: Sequence[tuple[WebhookEvent, EventFacts, Subscription]],
) -> list[tuple[list[str], Payment, bool]]:
    """Record the payments of events about known subscriptions, as one batch: each invoice's hooks first (the
    payment finds its invoice by id), then the payments, in a few statements per provider. Per event, in order:
    the invoice hooks' notes, the payment and whether it was created."""
    hook_notes = [
        invoice_hooks_run(sub, facts.invoice, _cause(event)) if facts.invoice is not None else []
        for event, facts, sub in items
    ]
    by_provider: dict[str, list[int]] = {}
    for index, (event, _facts, _sub) in enumerate(items):
        by_provider.setdefault(event.provider, []).append(index)
    recorded: dict[int, tuple[Payment, bool]] = {}
    for provider, indexes in by_provider.items():
        results = _payments_record(provider, [(items[i][2], items[i][1].payment) for i in indexes])
        recorded.update(zip(indexes, results, strict=True))
    return [(hook_notes[i], *recorded[i]) for i in range(len(items))]


def _payment_alone_note(notes: list[str], payment: Payment, created: bool) -> str:
    return "; ".join([*notes, f"payment {payment.pk} {'recorded' if created else 'already recorded'}"])


def _payment_missing(reference: str) -> SubjectMissing:
    """The payment (the provider's invoice or transaction) is not recorded yet: wait for it by its reference."""
    error = SubjectMissing(f"payment {reference} not known yet")
    error.subject_ref = reference  # woken when the payment is recorded
    return error


def _dispute_apply(event: WebhookEvent, facts, cause: Cause) -> str:
    """Record the dispute on its payment; access follows the provider package's rule (on the timeline either way)."""
    report = facts.dispute
    disputed = (
        Payment.objects.select_related("customer")
        .filter(provider=event.provider, provider_reference=report.payment_reference)
        .first()
    )
    if disputed is None:
        raise _payment_missing(report.payment_reference)
    dispute, changed = dispute_record_reported(payment=disputed, report=report, cause=cause)
    note = f"dispute {dispute.pk} {dispute.status}" + ("" if changed else " (no change)")
    sub = payment_subscription(disputed.pk)
    if sub is not None and changed:
        detail = {"dispute": report.provider_dispute_id, "status": dispute.status, "payment": disputed.pk}
        if facts.access_ends and dispute.status == dispute.Status.LOST:
            subscription_revoke_for_refund(subscription=sub, cause=cause, occurred_at=event.occurred_at, detail=detail)
            return f"{note}: subscription {sub.pk} revoked"
        audit_record(
            action="subscription.dispute_reported",
            obj=sub,
            actor_kind="provider",
            actor_label=cause.label,
            customer=sub.customer,
            after=detail,
        )
    return note


def _refund_reversal(event: WebhookEvent, payment_reference: str, cause: Cause) -> str:
    """The provider took back the refunds it made on a payment: the money is booked back (access came
    back with the event's snapshot, in this transaction)."""
    payment = Payment.objects.filter(provider=event.provider, provider_reference=payment_reference).first()
    if payment is None:
        raise _payment_missing(payment_reference)
    provider_made = Refund.objects.filter(payment=payment, requested_by__isnull=True).exclude(provider_refund_id="")
    if not provider_made.filter(status__in=[Refund.Status.SUCCEEDED, Refund.Status.REVERSED]).exists():
        # Its refund's own notification is on its way: reversing nothing now would leave it booked later.
        raise _payment_missing(payment_reference)
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


# Their facts are read from the stored event alone.
_FACTS_FROM_EVENT = (Provider.STRIPE, Provider.APP_STORE)
# Google Play's are read back from its API, once an event (kept on it, for when it is applied alone after all):
# what it reads is a renewal (a snapshot and its payment: SUBSCRIPTION_RENEWED, _PURCHASED) or a snapshot
# alone (a status change) as a rule, both taken in bulk.
_FACTS_READ_BACK = (Provider.GOOGLE_PLAY,)


def _facts_in_batch(event: WebhookEvent) -> bool:
    return event.provider in _FACTS_FROM_EVENT or event.provider in _FACTS_READ_BACK


def _snapshot_alone(facts: EventFacts) -> bool:
    """The event converges a subscription and does nothing else (a Play status change, read back)."""
    return (
        facts.snapshot is not None
        and facts.payment is None
        and facts.invoice is None
        and not facts.replaces
        and _nothing_more(facts)
    )


def _renewal(facts: EventFacts) -> bool:
    """The event converges a subscription and records its payment, nothing else (an App Store ``DID_RENEW``)."""
    return (
        facts.snapshot is not None
        and facts.payment is not None
        and facts.invoice is None
        and not facts.replaces
        and _nothing_more(facts)
    )


def _sync(pairs: Sequence[tuple[WebhookEvent, object]]) -> list[SyncResult]:
    return subscriptions_sync_from_snapshots(
        [SyncRequest(snapshot=snapshot, cause=_cause(event)) for event, snapshot in pairs]
    )


def provider_events_apply_together(events: Sequence[WebhookEvent]) -> dict[int, str]:
    """Apply in bulk the events whose whole effect allows it: snapshots alone and renewals (a snapshot and its
    payment) converge their subscriptions together, in the events' order; then the renewals' payments and the
    payments alone of known subscriptions (``invoice.paid``) are recorded together. The others are left to
    ``provider_event_apply``, one at a time."""
    synced: list[tuple[WebhookEvent, object]] = []
    renewals: dict[int, EventFacts] = {}  # by event pk
    read_back: set[int] = set()  # snapshots alone read from the provider's API, by event pk
    paid: list[tuple[WebhookEvent, EventFacts]] = []
    for event in events:
        package = provider_package(event.provider)
        snapshot = package.event_snapshot(event)
        if snapshot is not None:
            synced.append((event, snapshot))
            continue
        if not _facts_in_batch(event):
            continue
        try:
            facts = _event_facts(event)
        except Exception:  # noqa: S112 (ignored, unreadable or the API failed: applied alone, which records why)
            continue
        if _renewal(facts):
            renewals[event.pk] = facts
            synced.append((event, facts.snapshot))
        elif _payment_alone(facts) and facts.subscription_ref:
            paid.append((event, facts))
        elif event.provider in _FACTS_READ_BACK and _snapshot_alone(facts):
            read_back.add(event.pk)
            synced.append((event, facts.snapshot))
    results: list[SyncResult] = []
    if renewals or read_back:
        try:
            with transaction.atomic():
                results = _sync(synced)
        except Exception:
            # A renewal or a read-back snapshot the bulk sync cannot take (a purchase whose customer is not
            # linked yet: it waits): those are applied alone, the snapshots of the events still together.
            log.info("renewals of a webhook batch failed together; applying them one at a time", exc_info=True)
            synced = [
                (event, snapshot)
                for event, snapshot in synced
                if event.pk not in renewals and event.pk not in read_back
            ]
            renewals = {}
            results = _sync(synced) if synced else []
    elif synced:
        results = _sync(synced)
    notes = {event.pk: sync_note(result) for (event, _snapshot), result in zip(synced, results, strict=True)}
    known = [
        (event, renewals[event.pk], result.subscription)
        for (event, _snapshot), result in zip(synced, results, strict=True)
        if event.pk in renewals
    ]
    if paid:
        subscriptions = _subscriptions({(event.provider, facts.subscription_ref) for event, facts in paid})
        # A subscription not known yet: the event waits for it, applied alone.
        known += [
            (event, facts, subscriptions[(event.provider, facts.subscription_ref)])
            for event, facts in paid
            if (event.provider, facts.subscription_ref) in subscriptions
        ]
    if known:
        try:
            with transaction.atomic():
                recorded = _payments_apply(known)
        except Exception:
            if renewals:
                raise  # their snapshots are applied already: the whole batch is redone one event at a time
            # One of them is bad (a hook failed, an amount is invalid): each is applied alone, under its own
            # savepoint, so it fails alone.
            log.info("payments of a webhook batch failed together; applying them one at a time", exc_info=True)
        else:
            for (event, _facts, _sub), (hook_notes, payment, created) in zip(known, recorded, strict=True):
                if event.pk in renewals:
                    notes[event.pk] = f"{notes[event.pk]}; payment {payment.pk}"
                else:
                    notes[event.pk] = _payment_alone_note(hook_notes, payment, created)
    return notes


EVENT_APPLIER = EventApplier(apply=provider_event_apply, apply_together=provider_events_apply_together)
