"""Google Play: real-time developer notifications (Pub/Sub push) and subscriptionsv2.

A notification only says *that* a subscription changed; the truth is read
back from ``purchases.subscriptionsv2.get`` every time, so order and
duplicates do not matter for state.

Push authentication: Pub/Sub push cannot sign a body with a shared secret.
Configure the push endpoint as ``https://<host>/api/v1/webhooks/google-play?token=<secret>``
and set the same secret in ``GOOGLE_PLAY_PUSH_TOKEN``; the view passes the
query token in as the ``X-Push-Token`` header and we compare it in constant
time. With ``GOOGLE_PLAY_PUSH_TOKEN`` unset the push is accepted unverified
(the state still comes from Google's API, so a forged push can only make us
re-read a real purchase).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

from django.conf import settings
from djmoney.money import Money

from monetization import clock
from monetization.providers.base import (
    Acknowledgement,
    InvalidSignature,
    MalformedPayload,
    ProviderError,
    ProviderEvent,
    RefundResult,
    SubscriptionSnapshot,
    UnsupportedOperation,
)

from .client import GoogleApiSubscriptionsV2Client, SubscriptionsV2Client
from .parsing import ACCESS_STATES, NOTIFICATION_TYPES, snapshot_from_v2


class GooglePlayProvider:
    """The Google Play adapter. ``client`` is injectable (tests replay recorded subscriptionsv2 JSON)."""

    def __init__(self, name: str = "google_play", *, client: SubscriptionsV2Client | None = None):
        self.name = name
        self._client = client

    @property
    def client(self) -> SubscriptionsV2Client:
        if self._client is None:
            if not settings.GOOGLE_PLAY_CREDENTIALS_FILE:
                raise ProviderError("GOOGLE_PLAY_CREDENTIALS_FILE is not configured.", code="provider_not_configured")
            self._client = GoogleApiSubscriptionsV2Client(credentials_file=settings.GOOGLE_PLAY_CREDENTIALS_FILE)
        return self._client

    @client.setter
    def client(self, value: SubscriptionsV2Client | None) -> None:
        self._client = value

    @property
    def package_name(self) -> str:
        return settings.GOOGLE_PLAY_PACKAGE_NAME

    # --- notifications -----------------------------------------------------

    def verify_webhook(self, *, body: bytes, headers: dict[str, str]) -> list[ProviderEvent]:
        expected = settings.GOOGLE_PLAY_PUSH_TOKEN
        if expected:
            given = next((v for k, v in headers.items() if k.lower() == "x-push-token"), "")
            if not hmac.compare_digest(given.encode(), expected.encode()):
                raise InvalidSignature("The push token does not match GOOGLE_PLAY_PUSH_TOKEN.")
        try:
            envelope = json.loads(body)
            message = envelope["message"]
            message_id = message.get("messageId") or message.get("message_id")
            notification = json.loads(base64.b64decode(message["data"], validate=True))
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise MalformedPayload(
                "Expected a Pub/Sub push: message.data (base64 JSON) and message.messageId."
            ) from exc
        if not message_id or not isinstance(notification, dict):
            raise MalformedPayload("The Pub/Sub message has no messageId.")
        package = notification.get("packageName", "")
        if not package or "eventTimeMillis" not in notification:
            raise MalformedPayload("A developer notification needs packageName and eventTimeMillis.")
        if self.package_name and package != self.package_name:
            raise InvalidSignature(f"Notification for another package ({package}).")
        sub = notification.get("subscriptionNotification") or {}
        if sub:
            try:
                code = int(sub["notificationType"])
                token = sub["purchaseToken"]
            except (KeyError, TypeError, ValueError) as exc:
                raise MalformedPayload("subscriptionNotification needs notificationType and purchaseToken.") from exc
            event_type = NOTIFICATION_TYPES.get(code, f"SUBSCRIPTION_{code}")
        elif notification.get("voidedPurchaseNotification"):
            token = notification["voidedPurchaseNotification"].get("purchaseToken", "")
            event_type = "VOIDED_PURCHASE"
        elif notification.get("testNotification"):
            token, event_type = "", "TEST"
        else:
            token, event_type = "", "OTHER"
        try:
            occurred_at = datetime.fromtimestamp(int(notification["eventTimeMillis"]) / 1000, tz=UTC)
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedPayload("The developer notification has no eventTimeMillis.") from exc
        return [
            ProviderEvent(
                provider="google_play",
                event_id=str(message_id),
                event_type=event_type,
                occurred_at=occurred_at,
                payload={"message": {k: v for k, v in message.items() if k != "data"}, "notification": notification},
                subscription_ref=token,
            )
        ]

    def resync_event(self, token: str) -> ProviderEvent:
        """A synthetic notification that makes the applier re-read one purchase token."""
        now = clock.now()
        return ProviderEvent(
            provider="google_play",
            event_id=f"resync:{token[:180]}:{int(now.timestamp())}",
            event_type="RESYNC",
            occurred_at=now,
            payload={"notification": {"resync": {"purchaseToken": token}}},
            subscription_ref=token,
        )

    def list_events(self, *, since: datetime, tokens: list[str] | None = None) -> Iterator[ProviderEvent]:
        for token in tokens or []:
            yield self.resync_event(token)

    # --- Developer API -------------------------------------------------------

    def _api(self, fn, **kwargs):
        try:
            return fn(package_name=self.package_name, **kwargs)
        except ProviderError:
            raise
        except Exception as exc:
            status = getattr(getattr(exc, "resp", None), "status", None)
            if status is not None:
                status = int(status)
                code = "not_found" if status in (404, 410) else "provider_error"
                raise ProviderError(
                    f"Google Play API: {exc}", code=code, retryable=status >= 500 or status == 429
                ) from exc
            raise ProviderError(
                f"Google Play API unreachable: {exc}", code="provider_unavailable", retryable=True
            ) from exc

    def fetch_subscription(self, provider_subscription_id: str) -> SubscriptionSnapshot:
        data = self._api(self.client.get, token=provider_subscription_id)
        return snapshot_from_v2(provider_subscription_id, data, as_of=clock.now())

    def fetch_order(self, order_id: str) -> dict:
        """The order as Play books it now (``orders.get``): its total and the refunds processed on it."""
        return self._api(self.client.get_order, order_id=order_id)

    def list_voided(self, *, since: datetime) -> Iterator[dict]:
        """Voided subscription purchases since ``since`` (refunds, chargebacks, revocations), page by page."""
        page_token = ""
        while True:
            page = self._api(self.client.list_voided, start_ms=int(since.timestamp() * 1000), page_token=page_token)
            yield from page.get("voidedPurchases") or []
            page_token = (page.get("tokenPagination") or {}).get("nextPageToken") or ""
            if not page_token:
                return

    def acknowledge(self, *, product_id: str, token: str) -> None:
        self._api(self.client.acknowledge, product_id=product_id, token=token)

    def acknowledge_pending(self, snapshot: SubscriptionSnapshot, *, only_with_access: bool = False):
        """Acknowledge the purchase if Play still waits for it (it refunds unacknowledged ones after 3 days);
        the snapshot, saying so. ``only_with_access``: only a purchase that grants access now."""
        if snapshot.acknowledgement != Acknowledgement.PENDING:
            return snapshot
        if only_with_access and snapshot.provider_status not in ACCESS_STATES:
            return snapshot
        self.acknowledge(product_id=snapshot.store_product_id, token=snapshot.provider_subscription_id)
        return replace(snapshot, acknowledgement=Acknowledgement.ACKNOWLEDGED, acknowledged_at=clock.now())

    def refund(self, *, payment_reference: str, amount: Money, idempotency_key: str, reason: str) -> RefundResult:
        # orders.refund refunds the whole order; partial refunds happen in the Play Console only.
        self._api(self.client.refund_order, order_id=payment_reference)
        return RefundResult(provider_refund_id=f"play:{payment_reference}", amount=amount, status="succeeded")

    def cancel_subscription(self, provider_subscription_id: str, *, at_period_end: bool, idempotency_key: str) -> None:
        if at_period_end:
            body = {"cancellationContext": {"cancellationType": "DEVELOPER_REQUESTED_STOP_PAYMENTS"}}
            self._api(self.client.cancel, token=provider_subscription_id, body=body)
        else:
            # Ending access now is a revocation (with a prorated refund) on Play.
            self._api(
                self.client.revoke, token=provider_subscription_id, body={"revocationContext": {"proratedRefund": {}}}
            )

    def pause_subscription(self, provider_subscription_id: str, *, idempotency_key: str) -> None:
        raise UnsupportedOperation("Google Play subscriptions are paused by the user in Play, not by the developer.")

    def resume_subscription(self, provider_subscription_id: str, *, idempotency_key: str) -> None:
        raise UnsupportedOperation("Google Play subscriptions are paused by the user in Play, not by the developer.")

    def change_subscription_plan(
        self, provider_subscription_id: str, *, store_product_id: str, idempotency_key: str
    ) -> SubscriptionSnapshot:
        raise UnsupportedOperation("A Play plan change is a new purchase the customer makes in the app (Play Billing).")

    def billing_portal_session(self, *, customer_ref: str, return_url: str, idempotency_key: str):
        raise UnsupportedOperation("Google keeps the payment method; the customer updates it in Play.")

    def extend_subscription(
        self, provider_subscription_id: str, *, days: int, reason: str, idempotency_key: str
    ) -> SubscriptionSnapshot:
        current = self._api(self.client.get, token=provider_subscription_id)
        body = {"deferralContext": {"deferDuration": f"{days * 86400}s", "etag": current.get("etag", "")}}
        self._api(self.client.defer, token=provider_subscription_id, body=body)
        return self.fetch_subscription(provider_subscription_id)
