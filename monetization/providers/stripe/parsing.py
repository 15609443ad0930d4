"""How Stripe's payloads read: subscriptions as snapshots, events as facts, statuses in our words.

Written for the pinned API version (``STRIPE_API_VERSION``): since 2025-03-31 the
current period lives on the subscription *items*, not on the subscription, so it is
read there (falling back to the old place for events rendered with an older version,
which Stripe does for events created before an upgrade).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from monetization.models import ProviderIdentity
from monetization.money import money_from_minor
from monetization.providers.base import (
    CancelReason,
    DisputeReport,
    EventFacts,
    EventIgnored,
    InvoiceReport,
    MalformedPayload,
    OfferFacts,
    OfferKind,
    PaymentReport,
    ProviderEvent,
    RefundReport,
    StoredEvent,
    SubscriptionSnapshot,
    SubscriptionStatus,
    get_provider,
)

from .rules import ACCESS_RULES

IdentityKind = ProviderIdentity.Kind
Status = SubscriptionStatus

# The event types we store; everything else is acknowledged and not stored.
HANDLED_TYPES = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "charge.refunded",
    "refund.created",
    "refund.updated",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
    "charge.dispute.closed",
)


# Stripe's subscription statuses in our words. A renewing status with auto-renew off is a
# cancellation (access until the period ends), decided where the snapshot is applied.
STATUS = {
    "incomplete": Status.PENDING,  # 23 hours to pay the first invoice
    "trialing": Status.TRIALING,
    "active": Status.ACTIVE,
    # Smart Retries are running: access continues only where grace applies (ours, for the product).
    "past_due": Status.GRACE,
    "unpaid": Status.ON_HOLD,  # retries exhausted, invoices stay open: no access
    "paused": Status.PAUSED,
    "canceled": Status.EXPIRED,  # Stripe's "canceled" means ended
    "incomplete_expired": Status.EXPIRED,
}

# Stripe's dispute statuses in the Dispute model's words. An inquiry (warning_*) that closes
# without a chargeback, or a dispute prevented, took no money: won.
DISPUTE_STATUS = {
    "warning_needs_response": "needs_response",
    "needs_response": "needs_response",
    "warning_under_review": "under_review",
    "under_review": "under_review",
    "warning_closed": "won",
    "prevented": "won",
    "won": "won",
    "lost": "lost",
}

# An invoice's billing reason says which charge of the subscription it is (Payment.Kind).
BILLING_REASON_KIND = {
    "subscription_create": "initial",
    "subscription_cycle": "renewal",
    "subscription_update": "upgrade",
}


def relevant(event_type: str) -> bool:
    return event_type in HANDLED_TYPES


# Stripe Connect: events about creators' connected accounts, our transfers to them and their bank
# payouts. Whichever endpoint they arrive on, they are stored as this event source's (not a payment
# provider's), for the app registered in the inbox's event appliers under that name.
CONNECT = "stripe_connect"
CONNECT_TYPES = ("account.updated", "transfer.reversed", "payout.failed")


def connect_relevant(event_type: str) -> bool:
    return event_type in CONNECT_TYPES


def ts(value) -> datetime | None:
    if value in (None, ""):
        return None
    return datetime.fromtimestamp(int(value), tz=UTC)


def subscription_offer(obj: dict) -> OfferFacts | None:
    """A trial, or the coupon of the subscription's discount (``discount`` in older API versions, the first
    of ``discounts`` in newer ones, where an unexpanded one is only its id and says no coupon)."""
    discount = obj.get("discount")
    if not discount:
        discount = next((d for d in obj.get("discounts") or [] if isinstance(d, dict)), None)
    if discount:
        coupon = discount.get("coupon") or (discount.get("source") or {}).get("coupon") or {}
        coupon_id = coupon.get("id", "") if isinstance(coupon, dict) else str(coupon)
        promotion = discount.get("promotion_code") or ""
        if isinstance(promotion, dict):
            promotion = promotion.get("code") or promotion.get("id", "")
        if coupon_id:
            return OfferFacts(
                kind=OfferKind.COUPON, offer_id=coupon_id, code=promotion, free_trial=bool(obj.get("trial_end"))
            )
    if obj.get("trial_end"):
        return OfferFacts(kind=OfferKind.INTRODUCTORY, free_trial=True)
    return None


# cancellation_details.feedback: what the customer answered when cancelling (Billing portal, or given by us).
CANCEL_FEEDBACK = {
    "too_expensive": CancelReason.TOO_EXPENSIVE,
    "unused": CancelReason.UNUSED,
    "switched_service": CancelReason.SWITCHED,
    "low_quality": CancelReason.QUALITY,
    "missing_features": CancelReason.QUALITY,
    "too_complex": CancelReason.QUALITY,
    "customer_service": CancelReason.QUALITY,
    "other": CancelReason.OTHER,
}
# cancellation_details.reason: how it was cancelled, when the customer said nothing more.
CANCEL_DETAILS_REASON = {
    "cancellation_requested": CancelReason.VOLUNTARY,
    "payment_failed": CancelReason.BILLING_ERROR,
    "payment_disputed": CancelReason.DISPUTED,
}


def cancel_reason(details: dict) -> str:
    """Why a Stripe subscription stops renewing: the customer's feedback, else how it was cancelled."""
    feedback = CANCEL_FEEDBACK.get(details.get("feedback") or "")
    return feedback or CANCEL_DETAILS_REASON.get(details.get("reason") or "", "")


def snapshot_from_subscription(obj: dict, *, as_of: datetime) -> SubscriptionSnapshot:
    """A Stripe Subscription object (as a dict) as a snapshot."""
    items = (obj.get("items") or {}).get("data") or []
    if not items:
        raise MalformedPayload(f"Stripe subscription {obj.get('id')} has no items.")
    item = items[0]
    price = item.get("price") or item.get("plan") or {}
    start = item.get("current_period_start", obj.get("current_period_start"))
    end = item.get("current_period_end", obj.get("current_period_end"))
    customer = obj.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    metadata = obj.get("metadata") or {}
    cancel_details = obj.get("cancellation_details") or {}
    status = STATUS.get(obj["status"], SubscriptionStatus.UNKNOWN)
    ended = status == Status.EXPIRED
    # A canceled object keeps cancel_at_period_end false: an ended subscription renews nothing.
    auto_renew = not ended and not obj.get("cancel_at_period_end") and not obj.get("cancel_at")
    if not ended and collection_paused(obj, as_of=as_of):
        status = Status.PAUSED
    return SubscriptionSnapshot(
        provider="stripe",
        provider_subscription_id=obj["id"],
        store_product_id=price.get("id", ""),
        status=status,
        provider_status=obj["status"],
        as_of=as_of,
        customer_ref=customer or "",
        identities=((IdentityKind.CUSTOMER_ID, customer),) if customer else (),
        external_id=metadata.get("external_id", ""),
        current_period_start=ts(start),
        current_period_end=ts(end),
        trial_end=ts(obj.get("trial_end")),
        auto_renew=auto_renew,
        cancel_reason=cancel_reason(cancel_details),
        # Zero seats is a quantity (an org with no affiliates yet); only a missing one means one.
        quantity=1 if item.get("quantity") is None else int(item["quantity"]),
        offer=subscription_offer(obj),
    )


def collection_paused(obj: dict, *, as_of: datetime) -> bool:
    """Stripe pauses by ``pause_collection`` and keeps the status ``active``: paused until it is cleared
    (or its ``resumes_at`` has passed), whatever else a later update changes."""
    pause = obj.get("pause_collection")
    if not pause:
        return False
    resumes_at = ts(pause.get("resumes_at")) if isinstance(pause, dict) else None
    return resumes_at is None or resumes_at > as_of


def event_from_dict(data: dict) -> ProviderEvent:
    try:
        obj = data["data"]["object"]
        event_type = data["type"]
        event_id = data["id"]
        created = ts(data["created"])
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedPayload("A Stripe event needs id, type, created and data.object.") from exc
    if not isinstance(event_id, str) or not event_id:
        raise MalformedPayload("A Stripe event id must be a string.")
    ref = ""
    if isinstance(obj, dict):
        if obj.get("object") == "subscription":
            ref = obj.get("id", "")
        elif obj.get("object") == "invoice":
            ref = invoice_subscription_id(obj)
    return ProviderEvent(
        provider=CONNECT if event_type in CONNECT_TYPES else "stripe",
        event_id=event_id,
        event_type=str(event_type)[:64],
        occurred_at=created,
        payload=data,
        subscription_ref=ref or "",
    )


def invoice_subscription_id(invoice: dict) -> str:
    """Where the pinned API version puts an invoice's subscription (``parent``), or the old place."""
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") or {}
    sub = details.get("subscription") or invoice.get("subscription") or ""
    return sub.get("id", "") if isinstance(sub, dict) else sub


def invoice_tax(invoice: dict) -> int:
    taxes = invoice.get("total_taxes")
    if taxes:
        return sum(int(t.get("amount") or 0) for t in taxes)
    return int(invoice.get("tax") or 0)


def invoice_fee(invoice: dict) -> int:
    """The processing fee, when the charge's balance transaction came expanded with the event."""
    charge = invoice.get("charge")
    if isinstance(charge, dict):
        bt = charge.get("balance_transaction")
        if isinstance(bt, dict):
            return int(bt.get("fee") or 0)
    return 0


def event_snapshot(event: StoredEvent) -> SubscriptionSnapshot | None:
    """``customer.subscription.*`` events are whole snapshots of the subscription, and nothing more."""
    if event.event_type.startswith("customer.subscription."):
        return snapshot_from_subscription(event.payload["data"]["object"], as_of=event.occurred_at)
    return None


def invoice_payment(obj: dict, *, as_of: datetime) -> EventFacts:
    """A paid invoice (``invoice.paid``, or one listed from Stripe) as the payment of its subscription."""
    sub_id = invoice_subscription_id(obj)
    if not sub_id:
        raise EventIgnored("invoice without a subscription")
    if int(obj.get("amount_paid") or 0) <= 0:
        raise EventIgnored("zero-amount invoice (trial or credit)")
    currency = obj["currency"]
    return EventFacts(
        subscription_ref=sub_id,
        payment=PaymentReport(
            provider_reference=obj["id"],
            amount=money_from_minor(obj["amount_paid"], currency),
            fee=money_from_minor(invoice_fee(obj), currency),
            tax=money_from_minor(invoice_tax(obj), currency),
            kind=BILLING_REASON_KIND.get(obj.get("billing_reason"), "renewal"),
            occurred_at=ts((obj.get("status_transitions") or {}).get("paid_at")) or as_of,
        ),
    )


# Stripe stopped collecting an invoice: voided (it never was owed) or written off (still payable).
INVOICE_CLOSED = {"invoice.voided": "void", "invoice.marked_uncollectible": "uncollectible"}


def invoice_report(obj: dict, status: str) -> InvoiceReport:
    """An invoice as it stands; its period is its subscription line's (Stripe's invoice-level
    ``period_start`` of a renewal is the period before), the latest line period, else the invoice's."""
    starts = [
        int(line["period"]["start"])
        for line in (obj.get("lines") or {}).get("data") or []
        if isinstance(line, dict) and (line.get("period") or {}).get("start")
    ]
    return InvoiceReport(
        provider_invoice_id=obj["id"],
        status=status,
        number=obj.get("number") or "",
        period_start=ts(max(starts)) if starts else ts(obj.get("period_start")),
        amount_due=money_from_minor(int(obj.get("amount_due") or 0), obj.get("currency") or "usd"),
    )


def event_facts(event: StoredEvent) -> EventFacts:
    snapshot = event_snapshot(event)
    if snapshot is not None:
        return EventFacts(snapshot=snapshot)
    obj = event.payload["data"]["object"]
    kind = event.event_type
    if kind == "invoice.paid":
        return replace(invoice_payment(obj, as_of=event.occurred_at), invoice=invoice_report(obj, "paid"))
    if kind == "invoice.payment_failed":
        # The state follows customer.subscription.updated (past_due); the attempt goes on the timeline,
        # and the invoice stays open (finalized, Stripe retries it).
        return EventFacts(
            subscription_ref=invoice_subscription_id(obj),
            payment_failed={
                "invoice": obj.get("id"),
                "amount_due": obj.get("amount_due"),
                "currency": obj.get("currency"),
                "attempt_count": obj.get("attempt_count"),
                "next_payment_attempt": obj.get("next_payment_attempt"),
            },
            invoice=invoice_report(obj, "open"),
        )
    if kind in INVOICE_CLOSED:
        sub_id = invoice_subscription_id(obj)
        if not sub_id:
            raise EventIgnored("invoice without a subscription")
        return EventFacts(subscription_ref=sub_id, invoice=invoice_report(obj, INVOICE_CLOSED[kind]))
    if kind == "charge.refunded":
        return _charge_refunded(obj)
    if kind in ("refund.created", "refund.updated"):
        return refund_facts(obj)
    if kind.startswith("charge.dispute."):
        return dispute_report(obj, as_of=event.occurred_at)
    raise EventIgnored(f"unhandled type {kind}")


def _charge_refunded(charge: dict) -> EventFacts:
    """A charge's refunds, ours (they come back here too) or made in Stripe's dashboard, each by its own id.

    Recent API versions no longer embed the charge's refunds: they are listed from Stripe, so
    whatever order the refund events come in, each refund is booked once under its ``re_`` id.
    """
    invoice_id = _charge_invoice(charge)
    if not invoice_id:
        raise EventIgnored(NO_INVOICE)
    listed = (charge.get("refunds") or {}).get("data")
    if listed is None:
        listed = get_provider("stripe").charge_refunds(charge["id"]) if charge.get("amount_refunded") else []
    succeeded = [r for r in listed if r.get("status", "succeeded") == "succeeded"]
    amount, refunded = int(charge.get("amount") or 0), int(charge.get("amount_refunded") or 0)
    return _refund_facts(
        invoice_id,
        charge,
        succeeded,
        detail={
            "charge": charge.get("id"),
            "amount_refunded": str(money_from_minor(refunded, charge.get("currency", "usd")).amount),
            "full": bool(charge.get("refunded")) or (amount > 0 and refunded >= amount),
        },
    )


def dispute_report(obj: dict, *, as_of: datetime) -> EventFacts:
    """Any ``charge.dispute.*`` event: the whole dispute as it stands (status, deadline, money moved)."""
    invoice_id = _charge_invoice(obj)
    if not invoice_id:
        raise EventIgnored("dispute of a charge that paid no invoice (nothing of ours)")
    status = DISPUTE_STATUS.get(obj.get("status") or "")
    if status is None:
        raise MalformedPayload(f"Unknown Stripe dispute status '{obj.get('status')}'.")
    movements = tuple(
        (bt["id"], int(bt.get("amount") or 0), int(bt.get("fee") or 0))
        for bt in obj.get("balance_transactions") or []
        if isinstance(bt, dict)
    )
    return EventFacts(
        dispute=DisputeReport(
            provider_dispute_id=obj["id"],
            payment_reference=invoice_id,
            amount_minor=int(obj.get("amount") or 0),
            currency=(obj.get("currency") or "").upper(),
            status=status,
            as_of=as_of,
            reason=obj.get("reason") or "",
            evidence_due_by=ts((obj.get("evidence_details") or {}).get("due_by")),
            movements=movements,
        ),
        access_ends=ACCESS_RULES["dispute_ends_access"],
    )


NO_INVOICE = "refund of a charge that paid no invoice (nothing of ours)"


def refund_facts(refund: dict) -> EventFacts:
    """``refund.created`` / ``refund.updated``: one refund; booked once it has succeeded."""
    if refund.get("status") != "succeeded":
        # A pending refund moves no money yet; the update that says it succeeded books it.
        raise EventIgnored(f"refund {refund.get('id')} is {refund.get('status')}")
    invoice_id = _charge_invoice(refund)
    detail = {"refund": refund.get("id"), "charge": refund.get("charge")}
    return _refund_facts(invoice_id, refund, [refund], detail=detail)


def _charge_invoice(obj: dict) -> str:
    """The invoice a charge (or a refund, by its payment intent) paid; "" for a charge of no invoice."""
    invoice_id = obj.get("invoice") or ""
    if isinstance(invoice_id, dict):
        invoice_id = invoice_id.get("id", "")
    intent = obj.get("payment_intent")
    if isinstance(intent, dict):
        intent = intent.get("id")
    if not invoice_id and intent:
        # Charges no longer name their invoice in recent API versions: ask which one the intent paid.
        invoice_id = get_provider("stripe").invoice_for_payment_intent(intent)
    return invoice_id or ""


def _refund_facts(invoice_id: str, obj: dict, refunds: list[dict], *, detail: dict) -> EventFacts:
    if not invoice_id:
        raise EventIgnored(NO_INVOICE)
    currency = (obj.get("currency") or "").upper()
    if not refunds:
        raise EventIgnored("no succeeded refund on the charge yet; each refund's own event books it")
    return EventFacts(
        refund=RefundReport(
            payment_reference=invoice_id,
            refunds=tuple((item["id"], int(item["amount"])) for item in refunds),
            currency=currency,
        ),
        refund_reported={**detail, "invoice": invoice_id, "currency": currency},
        access_ends=ACCESS_RULES["refund_ends_access"],
    )
