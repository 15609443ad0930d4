"""Google Play's payloads: developer notifications, their Pub/Sub push, and subscriptionsv2 resources.

Written once, here: the demo's webhook inbox, the webhook tests (pushes, and the
resources their recorded Play API answers with) and the tests' check against payloads
recorded from Google (tests/fixtures/google_play) all build them with these functions.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime


def zulu(at: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, as Google writes times."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def developer_notification(
    *,
    package_name: str,
    event_ms: int,
    code: int | None = None,
    token: str = "",
    product_id: str = "",
    test: bool = False,
) -> dict:
    """A real-time developer notification: a subscription's (``code``, ``token``) or a TEST one."""
    body: dict = {"version": "1.0", "packageName": package_name, "eventTimeMillis": str(event_ms)}
    if test:
        body["testNotification"] = {"version": "1.0"}
    else:
        body["subscriptionNotification"] = {
            "version": "1.0",
            "notificationType": code,
            "purchaseToken": token,
            "subscriptionId": product_id,
        }
    return body


def voided_notification(
    *, package_name: str, event_ms: int, token: str, order_id: str, refund_type: int = 1, product_type: int = 1
) -> dict:
    """A voided purchase notification: ``refund_type`` 1 full refund, 2 quantity-based partial refund;
    ``product_type`` 1 subscription, 2 one-time product."""
    return {
        "version": "1.0",
        "packageName": package_name,
        "eventTimeMillis": str(event_ms),
        "voidedPurchaseNotification": {
            "purchaseToken": token,
            "orderId": order_id,
            "productType": product_type,
            "refundType": refund_type,
        },
    }


def money(minor: int, currency: str) -> dict:
    """google.type.Money from minor units (two-decimal currencies)."""
    return {"currencyCode": currency, "units": str(minor // 100), "nanos": (minor % 100) * 10_000_000}


def order(
    *,
    order_id: str,
    token: str,
    total_minor: int,
    currency: str,
    created: datetime,
    partial_refunds: list[tuple[datetime, int]] = (),
    refunded_at: datetime | None = None,
    pending_refund: bool = False,
) -> dict:
    """An ``orders.get`` Order: its total, and the refunds Play processed on it (partial ones by time,
    or the whole order)."""
    history: dict = {"processedEvent": {"eventTime": zulu(created)}}
    if partial_refunds:
        history["partialRefundEvents"] = [
            {
                "createTime": zulu(at),
                "processTime": zulu(at),
                "state": "PROCESSED_SUCCESSFULLY",
                "refundDetails": {"total": money(minor, currency), "tax": money(0, currency)},
            }
            for at, minor in partial_refunds
        ]
    if refunded_at is not None:
        refunded = total_minor - sum(minor for _at, minor in partial_refunds)
        history["refundEvent"] = {
            "eventTime": zulu(refunded_at),
            "refundDetails": {"total": money(refunded, currency), "tax": money(0, currency)},
            "refundReason": "OTHER",
        }
        state = "REFUNDED"
    elif pending_refund:
        state = "PENDING_REFUND"
    else:
        state = "PARTIALLY_REFUNDED" if partial_refunds else "PROCESSED"
    return {
        "orderId": order_id,
        "purchaseToken": token,
        "state": state,
        "createTime": zulu(created),
        "lastEventTime": zulu(refunded_at or (partial_refunds[-1][0] if partial_refunds else created)),
        "total": money(total_minor, currency),
        "tax": money(0, currency),
        "orderHistory": history,
    }


def pubsub_push(*, notification: dict, message_id: str, published: datetime, subscription: str) -> dict:
    """The push request Pub/Sub makes: the notification base64-encoded in ``message.data``."""
    return {
        "message": {
            "attributes": {},
            "data": base64.b64encode(json.dumps(notification).encode()).decode(),
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": zulu(published),
            "publish_time": zulu(published),
        },
        "subscription": subscription,
    }


def stored_push(push: dict, notification: dict) -> dict:
    """A push as the inbox stores it once verified: the message without its data, the notification decoded."""
    return {"message": {k: v for k, v in push["message"].items() if k != "data"}, "notification": notification}


def subscription_v2(
    *,
    state: str,
    product_id: str,
    base_plan_id: str,
    start: str,
    expiry: str,
    order_id: str,
    currency: str,
    units: str,
    nanos: int,
    account_id: str = "",
    auto_renew: bool = True,
    acknowledgement: str = "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED",
    region: str = "US",
    etag: str = "",
    linked_purchase_token: str = "",
) -> dict:
    """A ``SubscriptionPurchaseV2`` resource (``purchases.subscriptionsv2.get``)."""
    resource: dict = {
        "kind": "androidpublisher#subscriptionPurchaseV2",
        "regionCode": region,
        "lineItems": [
            {
                "productId": product_id,
                "expiryTime": expiry,
                "autoRenewingPlan": {
                    "autoRenewEnabled": auto_renew,
                    "recurringPrice": {"currencyCode": currency, "units": units, "nanos": nanos},
                },
                "offerDetails": {"basePlanId": base_plan_id, "offerTags": []},
                "latestSuccessfulOrderId": order_id,
            }
        ],
        "startTime": start,
        "subscriptionState": state,
        "latestOrderId": order_id,
        "acknowledgementState": acknowledgement,
    }
    if account_id:
        resource["externalAccountIdentifiers"] = {"obfuscatedExternalAccountId": account_id}
    if linked_purchase_token:
        resource["linkedPurchaseToken"] = linked_purchase_token
    if etag:
        resource["etag"] = etag
    return resource
