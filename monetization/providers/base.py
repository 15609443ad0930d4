"""The one interface every payment provider speaks, and the words it speaks in.

Each platform's package (``stripe/``, ``app_store/``, ``google_play/``) holds
everything that platform knows: its adapter (API calls through its own SDK,
webhook verification), what it can do (:class:`Capabilities`), and how its
payloads read. The rest of the back office only sees the types here. The test
double that speaks the same interface lives with the demo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from djmoney.money import Money


class ProviderError(Exception):
    """The provider refused or failed. ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, code: str = "provider_error", retryable: bool = False):
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class UnsupportedOperation(ProviderError):
    """The platform does not allow this (e.g. a developer-initiated App Store refund)."""

    def __init__(self, message: str):
        super().__init__(message, code="unsupported_by_provider", retryable=False)


class InvalidSignature(Exception):
    """A webhook or signed payload failed verification."""


class MalformedPayload(Exception):
    """A webhook body that is authentic (or unauthenticated) but not the shape the provider documents."""


class EventIgnored(Exception):
    """A stored event is authentic but says nothing we act on."""


class RetryableApplyError(Exception):
    """Applying a stored event may succeed later (the provider was unreachable, or an event
    arrived before the one it depends on)."""


@dataclass(frozen=True)
class Capabilities:
    """What a platform lets the developer (us) do, declared once per provider package."""

    refund: bool = False  # refund a payment (Apple refunds App Store purchases itself)
    cancel: bool = False  # cancel a subscription for the customer
    extend: bool = False  # give free days (Stripe trial end, App Store renewal date, Play deferral)
    pause: bool = False  # pause and resume collection ourselves (Stripe only)
    # The platform has a paused state at all (Play: paused by the user in the store; Stripe: by us).
    paused_state: bool = False


NO_CAPABILITIES = Capabilities()


@dataclass(frozen=True)
class ProviderEvent:
    """A verified webhook, normalised: enough to store it once and apply it later."""

    provider: str
    event_id: str  # Stripe event id, App Store notificationUUID, Pub/Sub messageId
    event_type: str
    occurred_at: datetime
    payload: dict
    subscription_ref: str = ""  # the provider's subscription id the event is about


@dataclass(frozen=True)
class SubscriptionSnapshot:
    """What the provider says a subscription looks like now (the truth we converge to)."""

    provider: str
    provider_subscription_id: str
    store_product_id: str
    status: str  # provider status, mapped by the sync service
    as_of: datetime
    customer_ref: str = ""  # provider customer id / app account token / obfuscated account id
    base_plan_id: str = ""
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    trial_end: datetime | None = None
    grace_end: datetime | None = None
    auto_renew: bool = True
    quantity: int = 1
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RefundResult:
    provider_refund_id: str
    amount: Money
    status: str  # "succeeded" | "pending"


class PaymentProvider(Protocol):
    """What the back office asks of a payment platform."""

    name: str

    def verify_webhook(self, *, body: bytes, headers: dict[str, str]) -> list[ProviderEvent]: ...

    def fetch_subscription(self, provider_subscription_id: str) -> SubscriptionSnapshot: ...

    def refund(self, *, payment_reference: str, amount: Money, idempotency_key: str, reason: str) -> RefundResult: ...

    def cancel_subscription(
        self, provider_subscription_id: str, *, at_period_end: bool, idempotency_key: str
    ) -> None: ...

    def extend_subscription(
        self, provider_subscription_id: str, *, days: int, reason: str, idempotency_key: str
    ) -> SubscriptionSnapshot: ...

    def pause_subscription(self, provider_subscription_id: str, *, idempotency_key: str) -> None: ...

    def resume_subscription(self, provider_subscription_id: str, *, idempotency_key: str) -> None: ...


def get_provider(name: str) -> PaymentProvider:
    """The adapter configured for ``name`` in ``settings.PAYMENT_PROVIDERS`` (dotted paths).

    Tests point a provider at ``monetization.providers.fake.FakeProvider``;
    production at the real adapter. Instances are cached per process.
    """
    from django.conf import settings
    from django.utils.module_loading import import_string

    path = settings.PAYMENT_PROVIDERS[name]
    cached = _instances.get((name, path))
    if cached is None:
        cached = import_string(path)(name=name)
        _instances[(name, path)] = cached
    return cached


def reset_providers() -> None:
    _instances.clear()


_instances: dict[tuple[str, str], PaymentProvider] = {}
