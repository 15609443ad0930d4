"""Stripe's books against ours: the invoices it was paid, the refunds it made, the disputes it holds.

Read from Stripe's API (subscriptions as they stand; invoices, refunds and disputes since a date)
and compared with ours. A missing payment is repaired by a resync (the missed ``invoice.paid`` is
in Stripe's event list); a subscription state, a refund or a dispute that differs is converged
from Stripe's own object through the same services its events use. Amount differences are left
for a person.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from functools import partial

from monetization import clock
from monetization.models import Dispute, Payment, Refund
from monetization.money import minor_from_money
from monetization.providers.base import EventIgnored, get_provider
from monetization.providers.stripe import dispute_report, invoice_payment, refund_facts, snapshot_from_subscription
from monetization.services.disputes import dispute_record_reported
from monetization.services.refunds import refunds_record_reported
from subscriptions.models import Subscription
from subscriptions.services.lifecycle import Cause
from subscriptions.services.provider_sync import subscription_sync_from_snapshot, target_state
from subscriptions.services.reconcile import Drift
from subscriptions.services.resync import provider_resync

PROVIDER = "stripe"


class _ResyncOnce:
    """One resync since the date repairs every missed event; the drifts it repairs share it."""

    def __init__(self, since: datetime):
        self.since = since
        self.done = False

    def __call__(self) -> None:
        if not self.done:
            self.done = True
            result = provider_resync(provider=PROVIDER, since=self.since)
            if result.failed:
                raise RuntimeError(f"{result.failed} resynced event(s) failed")


def _cause() -> Cause:
    return Cause.task("reconcile_provider", reason="found by reconciliation with stripe")


def _payment(reference: str) -> Payment:
    payment = Payment.objects.filter(provider=PROVIDER, provider_reference=reference).first()
    if payment is None:
        raise LookupError(f"payment {reference} not known")
    return payment


def _book_refund(obj: dict) -> None:
    facts = refund_facts(obj)
    refunds_record_reported(payment=_payment(facts.refund.payment_reference), report=facts.refund, cause=_cause())


def _record_dispute(obj: dict) -> None:
    report = dispute_report(obj, as_of=clock.now()).dispute
    dispute_record_reported(payment=_payment(report.payment_reference), report=report, cause=_cause())


def _sync(snapshot) -> None:
    subscription_sync_from_snapshot(snapshot=snapshot, cause=_cause())


def _subscription_drifts(adapter) -> Iterator[Drift]:
    """A subscription whose state differs from Stripe's (a missed customer.subscription.* event)."""
    now = clock.now()
    snapshots = {}
    for obj in adapter.subscriptions_all():
        snapshot = snapshot_from_subscription(obj, as_of=now)
        snapshots[snapshot.provider_subscription_id] = snapshot
    ours = Subscription.objects.filter(provider=PROVIDER, provider_subscription_id__in=list(snapshots)).select_related(
        "plan__product"
    )
    known = set()
    for sub in ours:
        known.add(sub.provider_subscription_id)
        snapshot = snapshots[sub.provider_subscription_id]
        target = target_state(snapshot)
        if target == Subscription.State.IN_GRACE_PERIOD and not sub.grace_configured():
            target = Subscription.State.ON_HOLD
        if sub.state != target:
            yield Drift(
                PROVIDER,
                "state_mismatch",
                sub.provider_subscription_id,
                "subscription state differs from Stripe's",
                ours=sub.state,
                theirs=target,
                repair=partial(_sync, snapshot),
            )
    for sub_id in sorted(set(snapshots) - known):
        yield Drift(
            PROVIDER,
            "missing_subscription",
            sub_id,
            "Stripe has a subscription we have never seen",
            theirs=snapshots[sub_id].provider_status,
            repair=partial(_sync, snapshots[sub_id]),
        )


def stripe_reconcile(*, since: datetime) -> Iterator[Drift]:
    adapter = get_provider(PROVIDER)
    resync = _ResyncOnce(since)
    yield from _subscription_drifts(adapter)

    invoices = list(adapter.paid_invoices(since=since))
    ours = dict(
        Payment.objects.filter(provider=PROVIDER, provider_reference__in=[i["id"] for i in invoices]).values_list(
            "provider_reference", "amount"
        )
    )
    for invoice in invoices:
        try:
            report = invoice_payment(invoice, as_of=clock.now()).payment
        except EventIgnored:
            continue
        mine = ours.get(invoice["id"])
        if mine is None:
            yield Drift(
                PROVIDER,
                "missing_payment",
                invoice["id"],
                "Stripe was paid an invoice we have no payment for (a missed invoice.paid)",
                theirs=str(report.amount),
                repair=resync,
            )
        elif mine != report.amount.amount:
            yield Drift(
                PROVIDER, "amount_mismatch", invoice["id"], "paid amount differs", str(mine), str(report.amount.amount)
            )

    refunds = [r for r in adapter.refunds_since(since=since) if r.get("status") == "succeeded"]
    booked = set(
        Refund.objects.filter(
            payment__provider=PROVIDER, provider_refund_id__in=[r["id"] for r in refunds]
        ).values_list("provider_refund_id", flat=True)
    )
    for refund in refunds:
        if refund["id"] not in booked:
            yield Drift(
                PROVIDER,
                "missing_refund",
                refund["id"],
                f"Stripe refunded {refund['amount']} {refund['currency']} on {refund.get('charge')}; we booked nothing",
                theirs=str(refund["amount"]),
                repair=partial(_book_refund, refund),
            )

    disputes = list(adapter.disputes_since(since=since))
    held = {
        d.provider_dispute_id: d
        for d in Dispute.objects.filter(provider=PROVIDER, provider_dispute_id__in=[d["id"] for d in disputes])
    }
    for obj in disputes:
        try:
            report = dispute_report(obj, as_of=clock.now()).dispute
        except EventIgnored:
            continue
        mine = held.get(obj["id"])
        withdrawn = -sum(amount for _id, amount, _fee in report.movements)
        if mine is None:
            yield Drift(
                PROVIDER,
                "missing_dispute",
                obj["id"],
                f"Stripe holds a {report.status} dispute we have no record of",
                theirs=report.status,
                repair=partial(_record_dispute, obj),
            )
        elif mine.status != report.status or minor_from_money(mine.withdrawn) != withdrawn:
            yield Drift(
                PROVIDER,
                "state_mismatch",
                obj["id"],
                "dispute status or money moved differs",
                ours=f"{mine.status} {mine.withdrawn.amount}",
                theirs=f"{report.status} {withdrawn}",
                repair=partial(_record_dispute, obj),
            )
