"""How Google Play's notifications and subscriptionsv2 resources read, in our words.

A notification only says *that* a subscription changed: the truth is read back from
``purchases.subscriptionsv2.get`` every time (through the configured adapter), so the
order and duplicates of notifications do not matter for state.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from djmoney.money import Money

from monetization.models import Payment, ProviderIdentity
from monetization.money import minor_from_money
from monetization.providers.base import (
    Acknowledgement,
    CancelReason,
    EventFacts,
    EventIgnored,
    MalformedPayload,
    OfferFacts,
    OfferKind,
    PaymentReport,
    PriceIncrease,
    ProviderError,
    RefundReport,
    RetryableApplyError,
    StoredEvent,
    SubscriptionSnapshot,
    SubscriptionStatus,
    get_provider,
)
from monetization.providers.google_play.rules import REFUND_ACCESS

IdentityKind = ProviderIdentity.Kind
Status = SubscriptionStatus

NOTIFICATION_TYPES = {
    1: "SUBSCRIPTION_RECOVERED",
    2: "SUBSCRIPTION_RENEWED",
    3: "SUBSCRIPTION_CANCELED",
    4: "SUBSCRIPTION_PURCHASED",
    5: "SUBSCRIPTION_ON_HOLD",
    6: "SUBSCRIPTION_IN_GRACE_PERIOD",
    7: "SUBSCRIPTION_RESTARTED",
    8: "SUBSCRIPTION_PRICE_CHANGE_CONFIRMED",
    9: "SUBSCRIPTION_DEFERRED",
    10: "SUBSCRIPTION_PAUSED",
    11: "SUBSCRIPTION_PAUSE_SCHEDULE_CHANGED",
    12: "SUBSCRIPTION_REVOKED",
    13: "SUBSCRIPTION_EXPIRED",
    17: "SUBSCRIPTION_ITEMS_CHANGED",
    18: "SUBSCRIPTION_CANCELLATION_SCHEDULED",
    19: "SUBSCRIPTION_PRICE_CHANGE_UPDATED",
    20: "SUBSCRIPTION_PENDING_PURCHASE_CANCELED",
}
PAYMENT_CODES = {1, 2, 4, 7}  # a successful charge happened (latestSuccessfulOrderId names it)


# subscriptionsv2 states in our words. A renewing state with auto-renew off is a
# cancellation (access until expiry), decided where the snapshot is applied.
STATUS = {
    "SUBSCRIPTION_STATE_PENDING": Status.PENDING,
    "SUBSCRIPTION_STATE_ACTIVE": Status.ACTIVE,
    "SUBSCRIPTION_STATE_IN_GRACE_PERIOD": Status.GRACE,
    "SUBSCRIPTION_STATE_ON_HOLD": Status.ON_HOLD,
    "SUBSCRIPTION_STATE_PAUSED": Status.PAUSED,
    "SUBSCRIPTION_STATE_CANCELED": Status.CANCELED,  # auto-renew off, access until expiry
    "SUBSCRIPTION_STATE_EXPIRED": Status.EXPIRED,
    "SUBSCRIPTION_STATE_PENDING_PURCHASE_CANCELED": Status.EXPIRED,
}
# Play has no revoked state: RTDN 12 (SUBSCRIPTION_REVOKED) and refunded voided purchases say it.
REVOKED = "revoked"
# States in which a purchase grants access, so an unacknowledged one must be acknowledged.
ACCESS_STATES = {"SUBSCRIPTION_STATE_ACTIVE", "SUBSCRIPTION_STATE_IN_GRACE_PERIOD", "SUBSCRIPTION_STATE_CANCELED"}
ACKNOWLEDGEMENT = {
    "ACKNOWLEDGEMENT_STATE_PENDING": Acknowledgement.PENDING,
    "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED": Acknowledgement.ACKNOWLEDGED,
}


def relevant(event_type: str) -> bool:
    return event_type not in ("TEST", "OTHER")


def rfc3339(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def play_money(price: dict | None) -> Money | None:
    if not price or not price.get("currencyCode"):
        return None
    amount = Decimal(price.get("units") or 0) + Decimal(int(price.get("nanos") or 0)).scaleb(-9)
    return Money(amount, price["currencyCode"]) if amount > 0 else None


def order_refund(order: dict) -> tuple[RefundReport | None, str]:
    """What Play says it refunded on an order (``orders.get``), and whether that is the whole order
    ("full") or part of it ("partial"); (None, "") while nothing is refunded yet.

    Booked as a running total under an id that names it, so a redelivery books nothing twice and a
    later partial refund books only what it adds (our own refund's echo adds nothing).
    """
    order_id = order.get("orderId", "")
    total = play_money(order.get("total"))
    if total is None:
        raise MalformedPayload(f"Play order {order_id} has no total.")
    currency = str(total.currency)
    if order.get("state") == "REFUNDED":
        return RefundReport(payment_reference=order_id, remainder_id=f"play:{order_id}:full", currency=currency), "full"
    history = order.get("orderHistory") or {}
    refunded = 0
    for event in history.get("partialRefundEvents") or []:
        if event.get("state") == "PROCESSED_SUCCESSFULLY":
            amount = play_money((event.get("refundDetails") or {}).get("total"))
            refunded += minor_from_money(amount) if amount is not None else 0
    if not refunded:
        return None, ""
    kind = "full" if refunded >= minor_from_money(total) else "partial"
    report = RefundReport(
        payment_reference=order_id,
        refunded_minor=refunded,
        remainder_id=f"play:{order_id}:{refunded}",
        currency=currency,
    )
    return report, kind


def v2_offer(data: dict, item: dict) -> OfferFacts | None:
    """The offer of a subscriptionsv2 resource: a promo code (``signupPromotion``), an introductory
    phase (``offerPhase``), or another offer on the base plan (``offerDetails.offerId``)."""
    details = item.get("offerDetails") or {}
    offer_id, tags = details.get("offerId", ""), tuple(details.get("offerTags") or ())
    phase = item.get("offerPhase") or {}
    free_trial = "freeTrial" in phase
    promotion = data.get("signupPromotion") or {}
    if promotion:
        code = (promotion.get("vanityCode") or {}).get("promotionCode", "")
        return OfferFacts(kind=OfferKind.OFFER_CODE, offer_id=offer_id, code=code, free_trial=free_trial, tags=tags)
    if free_trial or "introductoryPrice" in phase:
        return OfferFacts(kind=OfferKind.INTRODUCTORY, offer_id=offer_id, free_trial=free_trial, tags=tags)
    if offer_id:
        return OfferFacts(kind=OfferKind.PROMOTIONAL, offer_id=offer_id, tags=tags)
    return None


# canceledStateContext.userInitiatedCancellation.cancelSurveyResult.reason (the cancel survey's answer).
CANCEL_SURVEY_REASON = {
    "CANCEL_SURVEY_REASON_COST_RELATED": CancelReason.TOO_EXPENSIVE,
    "CANCEL_SURVEY_REASON_NOT_ENOUGH_USAGE": CancelReason.UNUSED,
    "CANCEL_SURVEY_REASON_TECHNICAL_ISSUES": CancelReason.QUALITY,
    "CANCEL_SURVEY_REASON_FOUND_BETTER_APP": CancelReason.SWITCHED,
    "CANCEL_SURVEY_REASON_OTHERS": CancelReason.OTHER,
}
ENDED_STATES = {"SUBSCRIPTION_STATE_CANCELED", "SUBSCRIPTION_STATE_EXPIRED"}


def price_increase_outstanding(item: dict) -> bool:
    """An opt-in price increase the customer has not accepted (Play ends the subscription at renewal)."""
    change = (item.get("autoRenewingPlan") or {}).get("priceChangeDetails") or {}
    return change.get("priceChangeMode") == "PRICE_INCREASE" and change.get("priceChangeState") == "OUTSTANDING"


def price_increase(item: dict) -> str:
    """The subscriber's answer to a price change (``autoRenewingPlan.priceChangeDetails``): an opt-in increase
    still OUTSTANDING waits for them; confirmed or applied, an opt-out increase or a decrease needs nothing."""
    change = (item.get("autoRenewingPlan") or {}).get("priceChangeDetails") or {}
    if not change:
        return PriceIncrease.NONE
    return PriceIncrease.PENDING if price_increase_outstanding(item) else PriceIncrease.ACCEPTED


def cancel_reason(data: dict, item: dict) -> str:
    """Why a Play subscription stops renewing, from ``canceledStateContext`` ("" while it renews)."""
    context = data.get("canceledStateContext") or {}
    if data.get("subscriptionState") not in ENDED_STATES and not context:
        return ""
    if "userInitiatedCancellation" in context:
        survey = (context["userInitiatedCancellation"] or {}).get("cancelSurveyResult") or {}
        return CANCEL_SURVEY_REASON.get(survey.get("reason", ""), CancelReason.VOLUNTARY)
    if "replacementCancellation" in context:
        return CancelReason.REPLACED
    if "developerInitiatedCancellation" in context:
        return CancelReason.DEVELOPER
    if "systemInitiatedCancellation" in context:
        # The system ends a subscription whose opt-in price increase nobody accepted, or whose payment failed.
        return CancelReason.PRICE_INCREASE if price_increase_outstanding(item) else CancelReason.BILLING_ERROR
    return ""


def snapshot_from_v2(token: str, data: dict, *, as_of: datetime) -> SubscriptionSnapshot:
    """A ``SubscriptionPurchaseV2`` resource as a snapshot."""
    items = data.get("lineItems") or []
    if not items or not data.get("subscriptionState"):
        raise MalformedPayload("A subscriptionsv2 resource needs subscriptionState and lineItems.")
    item = items[0]
    plan = item.get("autoRenewingPlan") or {}
    expiry = rfc3339(item.get("expiryTime"))
    state = data["subscriptionState"]
    accounts = data.get("externalAccountIdentifiers") or {}
    auto_renew = bool(plan.get("autoRenewEnabled", state != "SUBSCRIPTION_STATE_CANCELED"))
    offer_phase = item.get("offerPhase") or {}
    account = accounts.get("obfuscatedExternalAccountId", "")
    identities = [(IdentityKind.PURCHASE_TOKEN, token)]
    if account:
        identities.insert(0, (IdentityKind.OBFUSCATED_ACCOUNT_ID, account))
    return SubscriptionSnapshot(
        provider="google_play",
        provider_subscription_id=token,
        store_product_id=item.get("productId", ""),
        base_plan_id=(item.get("offerDetails") or {}).get("basePlanId", ""),
        status=STATUS.get(state, Status.UNKNOWN),
        provider_status=state,
        as_of=as_of,
        customer_ref=account,
        identities=tuple(identities),
        # Apps commonly set obfuscatedExternalAccountId to the account id itself.
        external_id=account,
        current_period_start=rfc3339(data.get("startTime")),
        current_period_end=expiry,
        trial_end=expiry if "freeTrial" in offer_phase else None,
        grace_end=expiry if state == "SUBSCRIPTION_STATE_IN_GRACE_PERIOD" else None,
        auto_renew=auto_renew if state != "SUBSCRIPTION_STATE_CANCELED" else False,
        cancel_reason=cancel_reason(data, item),
        price_increase=price_increase(item),
        acknowledgement=ACKNOWLEDGEMENT.get(data.get("acknowledgementState", ""), Acknowledgement.NOT_NEEDED),
        offer=v2_offer(data, item),
        extra={
            "latest_order_id": item.get("latestSuccessfulOrderId", ""),
            "recurring_price": plan.get("recurringPrice"),
            "linked_purchase_token": data.get("linkedPurchaseToken", ""),
        },
    )


def event_snapshot(event: StoredEvent) -> None:
    """Every notification is read back from the Play API first: none is a snapshot on its own."""
    return None


def _retryable(exc: ProviderError) -> Exception:
    return RetryableApplyError(str(exc)) if exc.retryable else exc


def event_facts(event: StoredEvent) -> EventFacts:
    """Re-read the purchase the notification names, acknowledge it if Play still waits for that, report it."""
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
    adapter = get_provider("google_play")
    try:
        snapshot = adapter.fetch_subscription(token)
    except ProviderError as exc:
        raise _retryable(exc) from exc
    revoked = code == 12
    if revoked:
        snapshot = replace(snapshot, status=Status.REVOKED, provider_status=REVOKED)
    refund = None
    access_ends = False
    if voided:
        refund, access_ends = _voided_refund(adapter, voided)
    try:
        # Unacknowledged purchases are refunded by Google after 3 days.
        snapshot = adapter.acknowledge_pending(snapshot, only_with_access=True)
    except ProviderError as exc:
        raise _retryable(exc) from exc
    payment = None
    amount = play_money(snapshot.extra.get("recurring_price"))
    order_id = snapshot.extra.get("latest_order_id")
    earlier: tuple[PaymentReport, ...] = ()
    if (code in PAYMENT_CODES or event.event_type == "RESYNC" or voided) and order_id:
        earlier = _earlier_orders(adapter, order_id)
    if (
        (code in PAYMENT_CODES or event.event_type == "RESYNC")
        and amount is not None
        and order_id
        and not revoked
        and not voided
    ):
        payment = PaymentReport(
            provider_reference=order_id,
            # Play order ids: GPA.x for the first charge, GPA.x..N for the N-th renewal.
            kind="renewal" if ".." in order_id else "initial",
            amount=amount,
            occurred_at=event.occurred_at,
        )
    return EventFacts(
        snapshot=snapshot,
        payment=payment,
        earlier_payments=earlier,
        refund=refund,
        access_ends=access_ends,
        refund_reported=(
            {"purchase_token": token[:64], "type": event.event_type, "order_id": voided.get("orderId")}
            if revoked or voided
            else None
        ),
        # An upgrade, downgrade or resubscribe on Play is a new purchase token; the old one is over.
        replaces=snapshot.extra.get("linked_purchase_token") or "",
    )


def _voided_refund(adapter, voided: dict) -> tuple[RefundReport | None, bool]:
    """The refund a voided purchase stands for, read from the order Play books, and whether access ends."""
    order_id = voided.get("orderId") or ""
    if not order_id:
        raise MalformedPayload("A voided purchase notification needs its orderId.")
    try:
        order = adapter.fetch_order(order_id)
    except ProviderError as exc:
        raise _retryable(exc) from exc
    report, kind = order_refund(order)
    if report is None:
        if order.get("state") == "PENDING_REFUND":
            raise RetryableApplyError(f"Play has not processed the refund of {order_id} yet")
        return None, False  # voided without money back (a canceled order): nothing to book
    return report, REFUND_ACCESS[kind] == "revoke"


def order_chain(order_id: str) -> list[str]:
    """The orders of a purchase up to ``order_id``: Play names the first GPA.x and the N-th renewal GPA.x..N."""
    base, sep, n = order_id.partition("..")
    if not sep or not n.isdigit():
        return [order_id]
    return [base] + [f"{base}..{i}" for i in range(int(n) + 1)]


def _earlier_orders(adapter, order_id: str) -> tuple[PaymentReport, ...]:
    """The orders before ``order_id`` we hold no payment for, read from Play (``orders.get``).

    A notification re-reads the purchase as it is now, which names only its latest order: a renewal
    whose own notification came late (or never) would otherwise never be recorded.
    """
    chain = order_chain(order_id)[:-1]
    if not chain:
        return ()
    known = set(
        Payment.objects.filter(provider="google_play", provider_reference__in=chain).values_list(
            "provider_reference", flat=True
        )
    )
    reports = []
    for earlier in chain:
        if earlier in known:
            continue
        try:
            order = adapter.fetch_order(earlier)
        except ProviderError as exc:
            if exc.code == "not_found":
                continue  # Play has no such order (a renewal it never charged): nothing to record
            raise _retryable(exc) from exc
        amount = play_money(order.get("total"))
        if amount is None:
            continue
        reports.append(
            PaymentReport(
                provider_reference=earlier,
                kind="renewal" if ".." in earlier else "initial",
                amount=amount,
                occurred_at=rfc3339(order.get("createTime")) or rfc3339(order.get("lastEventTime")),
            )
        )
    return tuple(reports)
