"""Stripe: webhooks verified with the SDK's signature check; API calls through ``StripeClient``.

The API version is pinned (``STRIPE_API_VERSION``); how its payloads read is
:mod:`.parsing`'s job.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import stripe
from django.conf import settings
from djmoney.money import Money

from monetization import clock
from monetization.money import minor_from_money, money_from_minor
from monetization.providers.base import (
    InvalidSignature,
    MalformedPayload,
    PortalSession,
    ProviderError,
    ProviderEvent,
    RefundResult,
    SubscriptionSnapshot,
)

from .billing import StripeBillingMixin
from .parsing import HANDLED_TYPES, event_from_dict, snapshot_from_subscription


class StripeProvider(StripeBillingMixin):
    """The Stripe adapter. ``http_client`` is injectable so tests replay recorded responses."""

    def __init__(self, name: str = "stripe", *, http_client: stripe.HTTPClient | None = None):
        self.name = name
        self.http_client = http_client
        self._client: stripe.StripeClient | None = None
        self._client_key: tuple | None = None

    # --- webhooks ---------------------------------------------------------

    def verify_webhook(self, *, body: bytes, headers: dict[str, str], connect: bool = False) -> list[ProviderEvent]:
        """``connect``: a delivery to the Connect endpoint, signed with that endpoint's own secret."""
        signature = _header(headers, "Stripe-Signature")
        setting = "STRIPE_CONNECT_WEBHOOK_SECRET" if connect else "STRIPE_WEBHOOK_SECRET"
        secret = getattr(settings, setting, "")
        if not secret:
            # Our misconfiguration, not the sender's fault: a 5xx makes Stripe retry later.
            raise ProviderError(f"{setting} is not configured.", code="provider_not_configured")
        # The SDK's signature check (HMAC-SHA256 over "t.body", any v1 signature, timestamp tolerance), then
        # one plain JSON parse. Not construct_event: it parses the body a second time into StripeObjects
        # we never use, which cost more than the whole signature check on this hot path.
        try:
            stripe.WebhookSignature.verify_header(body, signature, secret, settings.STRIPE_WEBHOOK_TOLERANCE)
        except stripe.SignatureVerificationError as exc:
            raise InvalidSignature(str(exc).split("\n")[0]) from exc
        except (ValueError, UnicodeDecodeError, AttributeError, TypeError) as exc:
            raise MalformedPayload("The body is not a JSON Stripe event.") from exc
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError, TypeError) as exc:  # signed, but not JSON
            raise MalformedPayload("The body is not a JSON Stripe event.") from exc
        if not isinstance(data, dict) or data.get("object") == "v2.core.event":  # as construct_event refuses
            raise MalformedPayload("The body is not a JSON Stripe event.")
        return [event_from_dict(data)]

    def list_events(self, *, since: datetime) -> Iterator[ProviderEvent]:
        """Stripe's event list (30 days back), oldest first is not promised: the appliers don't care."""
        page = self.client.v1.events.list(
            params={"created": {"gte": int(since.timestamp())}, "types": list(HANDLED_TYPES), "limit": 100}
        )
        for event in page.auto_paging_iter():
            yield event_from_dict(event.to_dict())

    # --- API --------------------------------------------------------------

    @property
    def client(self) -> stripe.StripeClient:
        key = (settings.STRIPE_API_KEY, settings.STRIPE_API_VERSION, id(self.http_client))
        if self._client is None or self._client_key != key:
            if not settings.STRIPE_API_KEY:
                raise ProviderError("STRIPE_API_KEY is not configured.", code="provider_not_configured")
            self._client = stripe.StripeClient(
                settings.STRIPE_API_KEY,
                stripe_version=settings.STRIPE_API_VERSION,
                http_client=self.http_client,
                max_network_retries=2,
            )
            self._client_key = key
        return self._client

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except stripe.InvalidRequestError as exc:
            code = "not_found" if exc.http_status == 404 else (exc.code or "invalid_request")
            raise ProviderError(str(exc.user_message or exc), code=code, retryable=False) from exc
        except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
            raise ProviderError(str(exc), code="provider_unavailable", retryable=True) from exc
        except stripe.StripeError as exc:
            retryable = exc.http_status is None or exc.http_status >= 500
            raise ProviderError(str(exc), code=exc.code or "provider_error", retryable=retryable) from exc

    def fetch_subscription(self, provider_subscription_id: str) -> SubscriptionSnapshot:
        obj = self._call(self.client.v1.subscriptions.retrieve, provider_subscription_id)
        return snapshot_from_subscription(obj.to_dict(), as_of=clock.now())

    def invoice_for_payment_intent(self, payment_intent: str) -> str:
        """The invoice a payment intent paid (charges no longer name their invoice in recent API versions)."""
        page = self._call(
            self.client.v1.invoice_payments.list,
            params={"payment": {"type": "payment_intent", "payment_intent": payment_intent}, "limit": 1},
        )
        rows = page.to_dict().get("data") or []
        return rows[0]["invoice"] if rows else ""

    def _list(self, resource, params: dict) -> Iterator[dict]:
        page = self._call(resource.list, params={**params, "limit": 100})
        for obj in page.auto_paging_iter():
            yield obj.to_dict()

    def paid_invoices(self, *, since: datetime) -> Iterator[dict]:
        """Invoices paid since ``since`` (created then or later), for reconciliation."""
        return self._list(self.client.v1.invoices, {"status": "paid", "created": {"gte": int(since.timestamp())}})

    def subscriptions_all(self) -> Iterator[dict]:
        """Every subscription, whatever its status (a subscription changes long after it was created)."""
        return self._list(self.client.v1.subscriptions, {"status": "all"})

    def refunds_since(self, *, since: datetime) -> Iterator[dict]:
        return self._list(self.client.v1.refunds, {"created": {"gte": int(since.timestamp())}})

    def disputes_since(self, *, since: datetime) -> Iterator[dict]:
        return self._list(
            self.client.v1.disputes,
            {"created": {"gte": int(since.timestamp())}, "expand": ["data.balance_transactions"]},
        )

    def charge_refunds(self, charge_id: str) -> list[dict]:
        """A charge's refunds as Stripe lists them (charges no longer embed them)."""
        page = self._call(self.client.v1.refunds.list, params={"charge": charge_id, "limit": 100})
        return [refund.to_dict() for refund in page.auto_paging_iter()]

    def refund(self, *, payment_reference: str, amount: Money, idempotency_key: str, reason: str) -> RefundResult:
        params: dict = {"amount": minor_from_money(amount), "metadata": {"reason": reason[:500]}}
        if payment_reference.startswith("ch_"):
            params["charge"] = payment_reference
        elif payment_reference.startswith("pi_"):
            params["payment_intent"] = payment_reference
        else:  # an invoice: refund the payment intent that paid it
            page = self._call(self.client.v1.invoice_payments.list, params={"invoice": payment_reference, "limit": 1})
            rows = page.to_dict().get("data") or []
            intent = ((rows[0].get("payment") or {}).get("payment_intent")) if rows else None
            if not intent:
                raise ProviderError(f"No payment found for invoice {payment_reference}.", code="not_found")
            params["payment_intent"] = intent
        refund = self._call(self.client.v1.refunds.create, params=params, options={"idempotency_key": idempotency_key})
        data = refund.to_dict()
        return RefundResult(
            provider_refund_id=data["id"],
            amount=money_from_minor(data["amount"], data["currency"]),
            status="succeeded" if data.get("status") == "succeeded" else "pending",
        )

    def cancel_subscription(self, provider_subscription_id: str, *, at_period_end: bool, idempotency_key: str) -> None:
        options = {"idempotency_key": idempotency_key}
        if at_period_end:
            self._call(
                self.client.v1.subscriptions.update,
                provider_subscription_id,
                params={"cancel_at_period_end": True},
                options=options,
            )
        else:
            self._call(self.client.v1.subscriptions.cancel, provider_subscription_id, options=options)

    def pause_subscription(self, provider_subscription_id: str, *, idempotency_key: str) -> None:
        """Stop collecting: Stripe keeps the subscription and voids the invoices it would send."""
        self._call(
            self.client.v1.subscriptions.update,
            provider_subscription_id,
            params={"pause_collection": {"behavior": "void"}},
            options={"idempotency_key": idempotency_key},
        )

    def resume_subscription(self, provider_subscription_id: str, *, idempotency_key: str) -> None:
        self._call(
            self.client.v1.subscriptions.update,
            provider_subscription_id,
            params={"pause_collection": ""},
            options={"idempotency_key": idempotency_key},
        )

    def change_subscription_plan(
        self, provider_subscription_id: str, *, store_product_id: str, idempotency_key: str
    ) -> SubscriptionSnapshot:
        """Switch the subscription's one item to another price. Stripe prorates (its default,
        ``create_prorations``): the unused time of the old price is credited and the new one charged
        for the rest of the period on the next invoice; the period itself does not move."""
        return self._switch_price(
            provider_subscription_id, store_product_id, proration="create_prorations", idempotency_key=idempotency_key
        )

    def move_subscription_price(
        self, provider_subscription_id: str, *, store_product_id: str, idempotency_key: str
    ) -> SubscriptionSnapshot:
        """Move the subscription's one item to a plan's new price from its next renewal: no proration,
        so the period already paid stays at the old price and the next invoice charges the new one."""
        return self._switch_price(
            provider_subscription_id, store_product_id, proration="none", idempotency_key=idempotency_key
        )

    def _switch_price(
        self, provider_subscription_id: str, store_product_id: str, *, proration: str, idempotency_key: str
    ) -> SubscriptionSnapshot:
        current = self._call(self.client.v1.subscriptions.retrieve, provider_subscription_id).to_dict()
        items = (current.get("items") or {}).get("data") or []
        if len(items) != 1:
            raise ProviderError(
                f"Subscription {provider_subscription_id} has {len(items)} items; only a one-price plan can switch.",
                code="unsupported_subscription",
            )
        obj = self._call(
            self.client.v1.subscriptions.update,
            provider_subscription_id,
            params={
                "items": [{"id": items[0]["id"], "price": store_product_id}],
                "proration_behavior": proration,
            },
            options={"idempotency_key": idempotency_key},
        )
        return snapshot_from_subscription(obj.to_dict(), as_of=clock.now())

    def billing_portal_session(self, *, customer_ref: str, return_url: str, idempotency_key: str) -> PortalSession:
        """A Billing Portal session (the portal's default configuration): the customer updates the card there."""
        obj = self._call(
            self.client.v1.billing_portal.sessions.create,
            params={"customer": customer_ref, "return_url": return_url},
            options={"idempotency_key": idempotency_key},
        ).to_dict()
        created = obj.get("created")
        return PortalSession(
            id=obj["id"],
            url=obj["url"],
            return_url=obj.get("return_url") or return_url,
            created_at=datetime.fromtimestamp(created, UTC) if created else None,
        )

    def extend_subscription(
        self, provider_subscription_id: str, *, days: int, reason: str, idempotency_key: str
    ) -> SubscriptionSnapshot:
        """Free days on Stripe: move ``trial_end`` past the period end, which defers the next invoice."""
        current = self.fetch_subscription(provider_subscription_id)
        base = max(filter(None, [current.trial_end, current.current_period_end, clock.now()]))
        new_end = int(base.timestamp()) + days * 86400
        obj = self._call(
            self.client.v1.subscriptions.update,
            provider_subscription_id,
            params={"trial_end": new_end, "proration_behavior": "none", "metadata": {"extension_reason": reason[:500]}},
            options={"idempotency_key": idempotency_key},
        )
        return snapshot_from_subscription(obj.to_dict(), as_of=clock.now())


def _header(headers: dict[str, str], name: str) -> str:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return ""
