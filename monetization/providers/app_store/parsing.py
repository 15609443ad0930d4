"""How App Store Server Notifications V2 and signed transactions read, in our words.

The notification's JWS (and the transaction and renewal info inside it) are verified
by the adapter before anything here reads them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from djmoney.money import Money

from monetization.models import ProviderIdentity
from monetization.money import minor_from_money, quantize
from monetization.providers.base import (
    CancelReason,
    EventFacts,
    EventIgnored,
    MalformedPayload,
    OfferFacts,
    OfferKind,
    PaymentReport,
    PriceIncrease,
    RefundReport,
    StoredEvent,
    SubscriptionSnapshot,
    SubscriptionStatus,
)

IdentityKind = ProviderIdentity.Kind
Status = SubscriptionStatus

# Notification types that carry no subscription change for us.
IGNORED_TYPES = {"TEST", "EXTERNAL_PURCHASE_TOKEN", "METADATA_UPDATE", "MIGRATION"}
PAYMENT_TYPES = {"SUBSCRIBED", "DID_RENEW"}
# Applied one at a time (they book money or leave a record), never as a snapshot alone.
SINGLE_TYPES = {*PAYMENT_TYPES, "REFUND", "REVOKE", "REFUND_REVERSED", "REFUND_DECLINED", "CONSUMPTION_REQUEST"}
# Apple answers a consumption request's refund decision 12 hours after it asks.
CONSUMPTION_DEADLINE = timedelta(hours=12)

# Apple's subscription statuses (as the Server API names them: 1 active, 2 expired, 3 billing
# retry, 4 grace period, 5 revoked), plus trialing, in our words.
STATUS = {
    "trialing": Status.TRIALING,
    "active": Status.ACTIVE,
    "grace_period": Status.GRACE,
    "billing_retry": Status.ON_HOLD,
    "expired": Status.EXPIRED,
    "revoked": Status.REVOKED,
}


def relevant(event_type: str) -> bool:
    """Event types are stored as ``TYPE`` or ``TYPE.SUBTYPE``."""
    return event_type.split(".", 1)[0] not in IGNORED_TYPES


def ms(value) -> datetime | None:
    if value in (None, ""):
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def app_store_status(
    transaction: dict, renewal: dict, *, as_of: datetime, notification_type: str = "", subtype: str = ""
):
    """Apple's subscription status (as the Server API names it) at ``as_of``, plus trialing."""
    if notification_type in ("REFUND", "REVOKE") or (
        transaction.get("revocationDate") and notification_type != "REFUND_REVERSED"
    ):
        return "revoked"
    if notification_type == "EXPIRED":
        return "expired"
    if notification_type == "GRACE_PERIOD_EXPIRED":
        return "billing_retry"  # access stops while Apple keeps retrying
    if notification_type == "DID_FAIL_TO_RENEW":
        return "grace_period" if subtype == "GRACE_PERIOD" else "billing_retry"
    expires = ms(transaction.get("expiresDate"))
    if expires is not None and expires <= as_of:
        if renewal.get("isInBillingRetryPeriod"):
            grace = ms(renewal.get("gracePeriodExpiresDate"))
            return "grace_period" if grace and grace > as_of else "billing_retry"
        return "expired"
    if transaction.get("offerDiscountType") == "FREE_TRIAL" or (
        transaction.get("offerType") == 1 and not transaction.get("price")
    ):
        return "trialing"
    return "active"


# App Store Server API: JWSTransactionDecodedPayload.offerType.
OFFER_TYPES = {1: OfferKind.INTRODUCTORY, 2: OfferKind.PROMOTIONAL, 3: OfferKind.OFFER_CODE, 4: OfferKind.WIN_BACK}


def transaction_offer(transaction: dict) -> OfferFacts | None:
    """The offer a signed transaction was bought under (offerType, offerIdentifier, offerDiscountType)."""
    kind = OFFER_TYPES.get(transaction.get("offerType"))
    if kind is None:
        return None
    return OfferFacts(
        kind=kind,
        offer_id=transaction.get("offerIdentifier") or "",
        free_trial=transaction.get("offerDiscountType") == "FREE_TRIAL",
    )


# JWSRenewalInfoDecodedPayload.expirationIntent: why Apple ended (or will end) the subscription.
EXPIRATION_INTENT = {
    1: CancelReason.VOLUNTARY,
    2: CancelReason.BILLING_ERROR,
    3: CancelReason.PRICE_INCREASE,  # the customer did not consent to a price increase
    4: CancelReason.PRODUCT_UNAVAILABLE,
    5: CancelReason.OTHER,
}
# The subtypes of EXPIRED (and DID_CHANGE_RENEWAL_STATUS) that say why, for renewal info without an intent.
EXPIRED_SUBTYPE = {
    "VOLUNTARY": CancelReason.VOLUNTARY,
    "AUTO_RENEW_DISABLED": CancelReason.VOLUNTARY,
    "BILLING_RETRY": CancelReason.BILLING_ERROR,
    "PRICE_INCREASE": CancelReason.PRICE_INCREASE,
    "PRODUCT_NOT_FOR_SALE": CancelReason.PRODUCT_UNAVAILABLE,
}


def cancel_reason(renewal: dict, *, status: str, auto_renew: bool, subtype: str = "") -> str:
    """Why an App Store subscription stops renewing: the renewal info's expirationIntent, else the
    notification's subtype, else a customer who turned renewal off ("" while it renews)."""
    if status != "expired" and auto_renew:
        return ""
    intent = EXPIRATION_INTENT.get(renewal.get("expirationIntent"))
    if intent is not None:
        return intent
    if subtype in EXPIRED_SUBTYPE:
        return EXPIRED_SUBTYPE[subtype]
    return CancelReason.VOLUNTARY if not auto_renew else ""


# JWSRenewalInfoDecodedPayload.priceIncreaseStatus, and the PRICE_INCREASE notification's subtypes.
PRICE_INCREASE_STATUS = {0: PriceIncrease.PENDING, 1: PriceIncrease.ACCEPTED}
PRICE_INCREASE_SUBTYPE = {"PENDING": PriceIncrease.PENDING, "ACCEPTED": PriceIncrease.ACCEPTED}


def price_increase(renewal: dict, *, notification_type: str = "", subtype: str = "") -> str:
    """The subscriber's answer to a price increase: a PRICE_INCREASE notification says it, else the renewal
    info's priceIncreaseStatus (1 also when Apple told them of one that needs no consent)."""
    if notification_type == "PRICE_INCREASE" and subtype in PRICE_INCREASE_SUBTYPE:
        return PRICE_INCREASE_SUBTYPE[subtype]
    return PRICE_INCREASE_STATUS.get(renewal.get("priceIncreaseStatus"), PriceIncrease.NONE)


def snapshot_from_transaction(
    transaction: dict, renewal: dict | None, *, as_of: datetime, notification_type: str = "", subtype: str = ""
) -> SubscriptionSnapshot:
    renewal = renewal or {}
    status = app_store_status(transaction, renewal, as_of=as_of, notification_type=notification_type, subtype=subtype)
    expires = ms(transaction.get("expiresDate"))
    otid = transaction.get("originalTransactionId")
    if not otid or not transaction.get("productId"):
        raise MalformedPayload("An App Store transaction needs originalTransactionId and productId.")
    auto_renew = renewal.get("autoRenewStatus", 1) == 1
    account_token = transaction.get("appAccountToken") or ""
    identities = [(IdentityKind.ORIGINAL_TRANSACTION_ID, otid)]
    if account_token:
        identities.insert(0, (IdentityKind.APP_ACCOUNT_TOKEN, account_token))
    return SubscriptionSnapshot(
        provider="app_store",
        provider_subscription_id=otid,
        store_product_id=transaction["productId"],
        status=STATUS[status],
        provider_status=status,
        as_of=as_of,
        customer_ref=account_token,
        identities=tuple(identities),
        current_period_start=ms(transaction.get("purchaseDate")),
        current_period_end=expires,
        trial_end=expires if status == "trialing" else None,
        grace_end=ms(renewal.get("gracePeriodExpiresDate")),
        auto_renew=auto_renew,
        cancel_reason=cancel_reason(renewal, status=status, auto_renew=auto_renew, subtype=subtype),
        price_increase=price_increase(renewal, notification_type=notification_type, subtype=subtype),
        quantity=int(transaction.get("quantity") or 1),
        offer=transaction_offer(transaction),
        extra={"auto_renew_product_id": renewal.get("autoRenewProductId", "")},
    )


def transaction_amount(transaction: dict) -> Money | None:
    """The customer price of a transaction (Apple sends milliunits); None for free periods."""
    price, currency = transaction.get("price"), transaction.get("currency")
    if not price or not currency:
        return None
    return Money(Decimal(int(price)) / 1000, currency)


def paid_service_since(transaction: dict, renewal: dict | None = None) -> datetime | None:
    """Since when the subscriber has had paid service, as Apple signs it with a transaction.

    Apple takes 15% instead of 30% once a subscriber has a year of paid service, and a lapse of
    more than 60 days starts the count again. Read from what Apple signed with the payment (not
    from the payments we booked before it, which a late or reordered notification leaves short),
    so a payment gets the same rate whatever order notifications are applied in: the
    subscription's ``originalPurchaseDate``, or the renewal info's ``recentSubscriptionStartDate``
    (the series' start ignoring lapses of 60 days or less) when it travels with the transaction.
    Apple's exact count leaves out the days of a free trial and of a short lapse; this counts them,
    so it may reduce the rate up to those days early (the proceeds reconciliation shows Apple's own).
    """
    since = ms(transaction.get("originalPurchaseDate"))
    recent = ms((renewal or {}).get("recentSubscriptionStartDate"))
    if since is None or (recent is not None and recent > since):
        return recent
    return since


def _snapshot(event: StoredEvent) -> SubscriptionSnapshot:
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


def _upgrade(notification: dict) -> bool:
    """An upgrade (or a crossgrade to the same duration) is a new transaction, charged and in effect at once;
    a DOWNGRADE (or no subtype: the downgrade taken back) changes only what renews next."""
    return (
        notification.get("notificationType") == "DID_CHANGE_RENEWAL_PREF" and notification.get("subtype") == "UPGRADE"
    )


def event_snapshot(event: StoredEvent) -> SubscriptionSnapshot | None:
    """Renewal-status, grace, billing-retry and expiry notifications are snapshots alone (no payment, no refund)."""
    notification = event.payload.get("notification") or {}
    ntype = notification.get("notificationType", "")
    if ntype in SINGLE_TYPES or _upgrade(notification):
        return None
    try:
        return _snapshot(event)
    except EventIgnored:
        return None  # recorded as ignored one at a time


def refund_report(transaction: dict) -> RefundReport:
    """What Apple refunded on a transaction: all of it, or the prorated share ``revocationPercentage``
    (milliunits of a percent) says. Booked once per transaction: a redelivery reproduces the id."""
    transaction_id = str(transaction.get("transactionId"))
    percentage = transaction.get("revocationPercentage")
    amount = transaction_amount(transaction)
    if transaction.get("revocationType") == "REFUND_PRORATED" and percentage and amount is not None:
        share = Money(amount.amount * Decimal(int(percentage)) / Decimal(100_000), amount.currency)
        minor = minor_from_money(Money(quantize(share.amount, str(share.currency)), share.currency))
        return RefundReport(
            payment_reference=transaction_id, refunded_minor=minor, remainder_id=f"apple:{transaction_id}"
        )
    return RefundReport(payment_reference=transaction_id, remainder_id=f"apple:{transaction_id}")


def _consumption_request(event: StoredEvent, transaction: dict) -> dict:
    data = (event.payload.get("notification") or {}).get("data") or {}
    return {
        "transaction_id": str(transaction.get("transactionId") or ""),
        "original_transaction_id": str(transaction.get("originalTransactionId") or ""),
        "reason": data.get("consumptionRequestReason") or "",
        "deadline": (event.occurred_at + CONSUMPTION_DEADLINE).isoformat(),
    }


def event_facts(event: StoredEvent) -> EventFacts:
    notification = event.payload.get("notification") or {}
    transaction = event.payload.get("transaction")
    ntype = notification.get("notificationType", "")
    subtype = notification.get("subtype") or ""
    if ntype == "CONSUMPTION_REQUEST":
        if not transaction:
            raise EventIgnored("CONSUMPTION_REQUEST without a transaction")
        # Apple asks before it decides a refund: nothing changes on the subscription yet.
        return EventFacts(
            subscription_ref=str(transaction.get("originalTransactionId") or ""),
            consumption_request=_consumption_request(event, transaction),
        )
    snapshot = _snapshot(event)
    payment = refund = reported = None
    amount = transaction_amount(transaction)
    upgrade = _upgrade(notification)
    # A family member's transactions were paid by the purchaser (whose own transactions book the money).
    shared = transaction.get("inAppOwnershipType") == "FAMILY_SHARED"
    if (
        (ntype in PAYMENT_TYPES or upgrade)
        and amount is not None
        and not transaction.get("revocationDate")
        and not shared
    ):
        first = ntype == "SUBSCRIBED" and transaction.get("transactionReason", "PURCHASE") == "PURCHASE"
        payment = PaymentReport(
            provider_reference=str(transaction["transactionId"]),
            amount=amount,
            kind="upgrade" if upgrade else "initial" if first and subtype != "RESUBSCRIBE" else "renewal",
            occurred_at=ms(transaction.get("purchaseDate")) or event.occurred_at,
            store_product_id=str(transaction.get("productId") or ""),
            paid_service_since=paid_service_since(transaction, event.payload.get("renewal")),
        )
    if ntype == "REFUND":
        # Apple owns App Store refunds; it tells us the transaction it refunded (whole or prorated).
        refund = refund_report(transaction)
    if ntype in ("REFUND", "REVOKE", "REFUND_REVERSED", "REFUND_DECLINED"):
        # Access follows the snapshot (revoked, or given back); the provider's details go on the timeline.
        reported = {
            "transaction": transaction.get("transactionId"),
            "type": ntype,
            "revocation_reason": transaction.get("revocationReason"),
            "revocation_date": transaction.get("revocationDate"),
            "revocation_percentage": transaction.get("revocationPercentage"),
        }
    return EventFacts(
        snapshot=snapshot,
        payment=payment,
        refund=refund,
        refund_reported=reported,
        refund_reversed=str(transaction.get("transactionId")) if ntype == "REFUND_REVERSED" else "",
    )
