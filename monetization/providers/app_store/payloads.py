"""App Store Server Notifications V2 as :mod:`.parsing` reads them, decoded: notification, transaction, renewal.

Written once, here: the demo's webhook inbox stores them decoded (only Apple can sign
the real JWS), the webhook tests sign them with a test PKI, and the tests check them
against a recorded notification (tests/fixtures/app_store). Dates are milliseconds
since the epoch, prices milliunits, as Apple sends them.
"""

from __future__ import annotations

SUBSCRIPTION = "Auto-Renewable Subscription"


def transaction(
    *,
    transaction_id: str,
    original_transaction_id: str,
    web_order_line_item_id: str,
    bundle_id: str,
    product_id: str,
    purchase_ms: int,
    original_purchase_ms: int,
    expires_ms: int,
    signed_ms: int,
    price: int,
    currency: str,
    storefront: str = "USA",
    storefront_id: str = "",
    reason: str = "PURCHASE",
    app_account_token: str = "",
    app_transaction_id: str = "",
    group: str = "21345678",
    environment: str = "Production",
) -> dict:
    """JWSTransactionDecodedPayload."""
    decoded = {
        "transactionId": transaction_id,
        "originalTransactionId": original_transaction_id,
        "webOrderLineItemId": web_order_line_item_id,
        "bundleId": bundle_id,
        "productId": product_id,
        "subscriptionGroupIdentifier": group,
        "purchaseDate": purchase_ms,
        "originalPurchaseDate": original_purchase_ms,
        "expiresDate": expires_ms,
        "quantity": 1,
        "type": SUBSCRIPTION,
        "inAppOwnershipType": "PURCHASED",
        "signedDate": signed_ms,
        "environment": environment,
        "transactionReason": reason,
        "storefront": storefront,
        "price": price,
        "currency": currency,
    }
    if storefront_id:
        decoded["storefrontId"] = storefront_id
    if app_account_token:
        decoded["appAccountToken"] = app_account_token
    if app_transaction_id:
        decoded["appTransactionId"] = app_transaction_id
    return decoded


def free_trial(decoded: dict, *, period: str = "P1M") -> dict:
    """The transaction as an introductory free trial: no price, the offer named."""
    return {**decoded, "price": 0, "offerType": 1, "offerDiscountType": "FREE_TRIAL", "offerPeriod": period}


def revoked(decoded: dict, *, at_ms: int, reason: int = 0) -> dict:
    """The transaction as Apple revokes it (a refund, or family sharing withdrawn)."""
    return {**decoded, "revocationDate": at_ms, "revocationReason": reason}


def renewal_info(
    *,
    original_transaction_id: str,
    product_id: str,
    signed_ms: int,
    recent_start_ms: int,
    renewal_ms: int,
    renewal_price: int,
    currency: str,
    auto_renew: bool = True,
    auto_renew_product_id: str = "",
    in_billing_retry: bool = False,
    grace_expires_ms: int | None = None,
    expiration_intent: int | None = None,
    app_transaction_id: str = "",
    environment: str = "Production",
) -> dict:
    """JWSRenewalInfoDecodedPayload."""
    decoded = {
        "originalTransactionId": original_transaction_id,
        "autoRenewProductId": auto_renew_product_id or product_id,
        "productId": product_id,
        "autoRenewStatus": 1 if auto_renew else 0,
        "isInBillingRetryPeriod": in_billing_retry,
        "signedDate": signed_ms,
        "environment": environment,
        "recentSubscriptionStartDate": recent_start_ms,
        "renewalDate": renewal_ms,
        "renewalPrice": renewal_price,
        "currency": currency,
    }
    if grace_expires_ms is not None:
        decoded["gracePeriodExpiresDate"] = grace_expires_ms
    if expiration_intent is not None:
        decoded["expirationIntent"] = expiration_intent
    if app_transaction_id:
        decoded["appTransactionId"] = app_transaction_id
    return decoded


def notification(
    *,
    notification_type: str,
    uuid: str,
    signed_ms: int,
    app_apple_id: int,
    bundle_id: str,
    subtype: str = "",
    status: int | None = 1,
    bundle_version: str = "42",
    environment: str = "Production",
) -> dict:
    """ResponseBodyV2DecodedPayload, without the signed transaction and renewal info its data carries.

    ``status``: the subscription's status (1 active, 2 expired, 3 billing retry, 4 grace period,
    5 revoked); None for notifications about no subscription (TEST).
    """
    data: dict = {"appAppleId": app_apple_id, "bundleId": bundle_id}
    if status is not None:
        data["bundleVersion"] = bundle_version
    data["environment"] = environment
    if status is not None:
        data["status"] = status
    return {
        "notificationType": notification_type,
        **({"subtype": subtype} if subtype else {}),
        "notificationUUID": uuid,
        "data": data,
        "version": "2.0",
        "signedDate": signed_ms,
    }


def decoded(notification_: dict, transaction_: dict | None, renewal_: dict | None) -> dict:
    """A notification as the inbox stores it once verified: the JWS inside it decoded alongside."""
    return {"notification": notification_, "transaction": transaction_, "renewal": renewal_}
