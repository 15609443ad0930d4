"""The App Store's and Google Play's reconcilers: their books (App Store notification history, transaction
history and subscription status; Play voided purchases, orders and subscriptionsv2) against ours, each
difference a :class:`Drift`. An amount that differs is left for a person; Play has no list of
subscriptions, so one whose every notification was missed is found there only once a purchase call or a
later notification names it (the App Store's notification history names it).

What a drift's ``repair`` does is what the store's own word would have done had its notification
arrived: record the payment, book the refund (access following the provider's refund rule), converge
the subscription to the store's state. Registered in ``reconcilers`` (subscriptions.apps).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.db import transaction
from django.db.models import Q

from monetization.models import Payment
from monetization.money import minor_from_money
from monetization.providers.app_store.parsing import ms, paid_service_since, refund_report, transaction_amount
from monetization.providers.app_store.payloads import SUBSCRIPTION
from monetization.providers.base import (
    PaymentReport,
    ProviderError,
    ProviderEvent,
    RefundReport,
    SubscriptionSnapshot,
    get_provider,
)
from monetization.providers.google_play import REFUND_ACCESS as PLAY_REFUND_ACCESS
from monetization.providers.google_play.parsing import order_chain, order_refund
from monetization.services.refunds import refunds_record_reported
from monetization.services.webhooks import webhook_event_apply, webhook_store
from subscriptions.models import Subscription
from subscriptions.services.lifecycle import Cause
from subscriptions.services.payments import payment_subscription, subscription_payment_record
from subscriptions.services.provider_sync import (
    subscription_revoke_for_refund,
    subscription_sync_from_snapshot,
    target_state,
)
from subscriptions.services.reconcile import Drift

S = Subscription.State
CAUSE = Cause.task("reconcile", reason="provider reconciliation")


def _subscriptions(provider: str, since: datetime):
    return (
        Subscription.objects.filter(provider=provider)
        .filter(Q(updated_at__gte=since) | Q(state__in=Subscription.LIVE_STATES))
        .select_related("customer")
        .order_by("pk")
    )


def _state_differs(sub: Subscription, snapshot: SubscriptionSnapshot) -> str:
    """The store's state in our words when it differs from ours, else ""."""
    target = target_state(snapshot)
    if target == sub.state:
        return ""
    if sub.state == S.REVOKED and target in (S.EXPIRED, S.CANCELED, S.ON_HOLD):
        return ""  # a refund ended it here; the store ends it its own way (Play: expired)
    if target == S.IN_GRACE_PERIOD and sub.state == S.ON_HOLD and not sub.grace_configured():
        return ""  # retrying without grace in force is billing retry, by our rule
    return target


def _record_payment(sub: Subscription, report: PaymentReport) -> None:
    subscription_payment_record(
        subscription=sub,
        customer=sub.customer,
        provider=sub.provider,
        provider_reference=report.provider_reference,
        amount=report.amount,
        kind=report.kind,
        occurred_at=report.occurred_at,
        paid_service_since=report.paid_service_since,
    )


def _book_refund(provider: str, report: RefundReport, *, ends_access: bool, detail: dict) -> None:
    """Book what the store refunded and, where its rule says so, end access: together."""
    with transaction.atomic():
        payment = Payment.objects.get(provider=provider, provider_reference=report.payment_reference)
        booked = refunds_record_reported(payment=payment, report=report, cause=CAUSE)
        sub = payment_subscription(payment.pk)
        if ends_access and sub is not None and any(new for _refund, new in booked):
            subscription_revoke_for_refund(
                subscription=sub, cause=CAUSE, occurred_at=payment.occurred_at, detail=detail
            )


def _refunded_minor(payment: Payment, report: RefundReport) -> int:
    return minor_from_money(payment.amount) if report.refunded_minor is None else report.refunded_minor


# --- App Store ------------------------------------------------------------------------------------


def _app_store_unseen_subscriptions(adapter, since: datetime) -> Iterator[Drift]:
    """A subscription Apple notified us about that we have never seen (its notifications all missed): found in
    Apple's notification history, repaired by applying what was missed in the order Apple sent it. A missed
    notification of a subscription we hold shows in that subscription's transactions and state instead."""
    try:
        events = list(adapter.list_events(since=since))
    except ProviderError as exc:
        yield Drift("app_store", "provider_unreachable", "notifications/history", f"App Store Server API: {exc}")
        return
    refs = {ev.subscription_ref for ev in events if ev.subscription_ref}
    known = set(
        Subscription.objects.filter(provider="app_store", provider_subscription_id__in=refs).values_list(
            "provider_subscription_id", flat=True
        )
    )
    unseen: dict[str, list[ProviderEvent]] = {}
    for ev in sorted(events, key=lambda ev: ev.occurred_at):
        if ev.subscription_ref and ev.subscription_ref not in known:
            unseen.setdefault(ev.subscription_ref, []).append(ev)
    for otid, missed in unseen.items():
        yield Drift(
            "app_store",
            "missing_subscription",
            otid,
            f"Apple has a subscription we have never seen ({len(missed)} notification(s) missed)",
            theirs=missed[-1].event_type,
            repair=lambda missed=missed: _apply_missed(missed),
        )


def _apply_missed(events: list[ProviderEvent]) -> None:
    """Store and apply missed notifications as the worker would have; one already stored is left alone."""
    for event_id, created in webhook_store(events=events, raw_body=""):
        if created:
            webhook_event_apply(event_id=event_id)


def app_store_reconcile(*, since: datetime) -> Iterator[Drift]:
    adapter = get_provider("app_store")
    yield from _app_store_unseen_subscriptions(adapter, since)
    for sub in _subscriptions("app_store", since):
        otid = sub.provider_subscription_id
        try:
            history = adapter.transaction_history(otid, since=since)
            snapshot = adapter.fetch_subscription(otid)
        except ProviderError as exc:
            yield Drift("app_store", "provider_unreachable", otid, f"App Store Server API: {exc}")
            continue
        refs = [str(tx.get("transactionId")) for tx in history]
        payments = {
            p.provider_reference: p for p in Payment.objects.filter(provider="app_store", provider_reference__in=refs)
        }
        for tx in history:
            txid, amount = str(tx.get("transactionId")), transaction_amount(tx)
            if amount is None or tx.get("type", SUBSCRIPTION) != SUBSCRIPTION:
                continue
            payment = payments.get(txid)
            if payment is None:
                first = tx.get("transactionReason", "PURCHASE") == "PURCHASE" and txid == str(
                    tx.get("originalTransactionId")
                )
                report = PaymentReport(
                    provider_reference=txid,
                    amount=amount,
                    kind="initial" if first else "renewal",
                    occurred_at=ms(tx.get("purchaseDate")),
                    paid_service_since=paid_service_since(tx),
                )
                yield Drift(
                    "app_store",
                    "missing_payment",
                    txid,
                    f"transaction of {otid} not recorded",
                    theirs=str(amount),
                    repair=lambda sub=sub, report=report: _record_payment(sub, report),
                )
            elif payment.amount != amount:
                # Left for a person: which side is right is not a resync's to say.
                yield Drift(
                    "app_store",
                    "amount_mismatch",
                    txid,
                    f"paid amount differs ({otid})",
                    str(payment.amount),
                    str(amount),
                )
            if tx.get("revocationDate") and tx.get("revocationType") != "FAMILY_REVOKE":
                report = refund_report(tx)
                theirs = report.refunded_minor if report.refunded_minor is not None else minor_from_money(amount)
                ours = minor_from_money(payment.refunded) if payment is not None else 0
                if ours < theirs:
                    yield Drift(
                        "app_store",
                        "missing_refund",
                        txid,
                        f"refunded by Apple, not booked ({otid})",
                        ours=str(ours),
                        theirs=str(theirs),
                        repair=lambda report=report, tx=tx: _book_refund(
                            "app_store",
                            report,
                            ends_access=False,  # access follows Apple's own state (the state drift), not an old refund
                            detail={"transaction": tx.get("transactionId"), "type": "RECONCILE"},
                        ),
                    )
        sub.refresh_from_db()
        if differs := _state_differs(sub, snapshot):
            yield Drift(
                "app_store",
                "state_mismatch",
                otid,
                "subscription state",
                ours=sub.state,
                theirs=differs,
                repair=lambda snapshot=snapshot: subscription_sync_from_snapshot(snapshot=snapshot, cause=CAUSE),
            )


# --- Google Play ------------------------------------------------------------------------------------


def google_play_reconcile(*, since: datetime) -> Iterator[Drift]:
    adapter = get_provider("google_play")
    try:
        voided = list(adapter.list_voided(since=since))
    except ProviderError as exc:
        yield Drift("google_play", "provider_unreachable", "voidedpurchases", f"Play Developer API: {exc}")
        voided = []
    for row in voided:
        order_id = row.get("orderId") or ""
        payment = Payment.objects.filter(provider="google_play", provider_reference=order_id).first()
        try:
            report, kind = order_refund(adapter.fetch_order(order_id))
        except ProviderError as exc:
            yield Drift("google_play", "provider_unreachable", order_id, f"Play orders.get: {exc}")
            continue
        if report is None:
            continue
        if payment is None:
            yield Drift("google_play", "missing_payment", order_id, "voided order never recorded as paid")
            continue
        theirs, ours = _refunded_minor(payment, report), minor_from_money(payment.refunded)
        if ours < theirs:
            yield Drift(
                "google_play",
                "missing_refund",
                order_id,
                f"refunded at Play ({kind}), not booked",
                ours=str(ours),
                theirs=str(theirs),
                repair=lambda report=report, kind=kind, row=row: _book_refund(
                    "google_play",
                    report,
                    ends_access=PLAY_REFUND_ACCESS[kind] == "revoke",
                    detail={"order_id": row.get("orderId"), "type": "RECONCILE"},
                ),
            )
    for sub in _subscriptions("google_play", since):
        token = sub.provider_subscription_id
        try:
            snapshot = adapter.fetch_subscription(token)
        except ProviderError as exc:
            yield Drift("google_play", "provider_unreachable", token[:64], f"subscriptionsv2: {exc}")
            continue
        latest = snapshot.extra.get("latest_order_id") or ""
        chain = order_chain(latest) if latest else []
        known = set(
            Payment.objects.filter(provider="google_play", provider_reference__in=chain).values_list(
                "provider_reference", flat=True
            )
        )
        missing = [order_id for order_id in chain if order_id not in known]
        differs = _state_differs(sub, snapshot)
        if missing or differs:
            yield Drift(
                "google_play",
                "missing_payment" if missing else "state_mismatch",
                missing[-1] if missing else token[:64],
                f"orders not recorded: {', '.join(missing)}" if missing else "subscription state",
                ours=sub.state,
                theirs=differs or sub.state,
                repair=lambda token=token: _play_resync(token),
            )


def _play_resync(token: str) -> None:
    """Re-read one purchase as its notification would have: state, latest and earlier orders."""
    _apply_missed([get_provider("google_play").resync_event(token)])
