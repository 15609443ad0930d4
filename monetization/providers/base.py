"""The one interface every payment provider speaks, and the words it speaks in.

Each platform's package (``stripe/``, ``app_store/``, ``google_play/``) holds
everything that platform knows: its adapter (API calls through its own SDK,
webhook verification), what it can do (:class:`Capabilities`), and how its
payloads read. The rest of the back office only sees the types here. The test
double that speaks the same interface lives with the demo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string
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


class SubjectMissing(RetryableApplyError):
    """The event is about something we do not know yet (a customer, subscription, invoice or
    charge). It waits and is applied once the subject appears; it is never ignored for this."""


@dataclass(frozen=True)
class Capabilities:
    """What a platform lets the developer (us) do, declared once per provider package."""

    refund: bool = False  # refund a payment (Apple refunds App Store purchases itself)
    cancel: bool = False  # cancel a subscription for the customer
    extend: bool = False  # give free days (Stripe trial end, App Store renewal date, Play deferral)
    pause: bool = False  # pause and resume collection ourselves (Stripe only)
    # The platform has a paused state at all (Play: paused by the user in the store; Stripe: by us).
    paused_state: bool = False
    # The platform may take back a refund it made and give access back (App Store REFUND_REVERSED).
    refund_reversal: bool = False


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


class SubscriptionStatus(StrEnum):
    """Where a subscription stands, in words every provider's statuses map to (each package maps its own)."""

    PENDING = "pending"  # waiting for its first payment
    TRIALING = "trialing"
    ACTIVE = "active"
    GRACE = "grace"  # a renewal failed and the platform retries; access continues where grace applies
    ON_HOLD = "on_hold"  # a renewal failed; no access while the platform retries (billing retry, account hold)
    PAUSED = "paused"
    CANCELED = "canceled"  # will not renew; access until the period ends
    EXPIRED = "expired"
    REVOKED = "revoked"  # refunded or revoked: access ends now
    UNKNOWN = ""  # a status the provider package does not know (``provider_status`` says which)


class Acknowledgement(StrEnum):
    """Google Play refunds a purchase nobody acknowledged within 3 days; the other stores ask nothing."""

    NOT_NEEDED = ""
    PENDING = "pending"
    ACKNOWLEDGED = "acknowledged"


class CancelReason(StrEnum):
    """Why a subscription stopped renewing, in words every provider's reasons map to (win-back rules read them)."""

    VOLUNTARY = "voluntary"  # the customer turned renewal off and gave no reason
    TOO_EXPENSIVE = "too_expensive"  # the customer said it costs too much
    PRICE_INCREASE = "price_increase"  # the customer did not accept a price increase
    BILLING_ERROR = "billing_error"  # the payment failed and was never recovered
    PRODUCT_UNAVAILABLE = "product_unavailable"  # the product is no longer for sale
    UNUSED = "unused"  # the customer said they did not use it enough
    SWITCHED = "switched_service"  # the customer found something better
    QUALITY = "quality"  # technical issues, quality, missing features, too complex, customer service
    REPLACED = "replaced"  # replaced by another purchase (upgrade, downgrade, resubscribe)
    DEVELOPER = "developer"  # cancelled by us (the developer), not the customer
    DISPUTED = "payment_disputed"  # the customer disputed a payment
    OTHER = "other"


class PriceIncrease(StrEnum):
    """Where a subscriber stands on a store's price increase (App Store consent, Play price change)."""

    NONE = ""  # none announced to them (or the provider does not say)
    PENDING = "pending"  # asked, not answered: they keep their price, and the store ends it unless they accept
    ACCEPTED = "accepted"  # consented, or told of one that needs no consent: they pay it from its renewal on


class OfferKind(StrEnum):
    """Under what offer a subscription's current period was sold, in words every provider's map to."""

    INTRODUCTORY = "introductory"  # a free trial or introductory price (App Store offerType 1, Play intro phase)
    PROMOTIONAL = "promotional"  # App Store promotional offer (2), a Play developer-determined offer
    OFFER_CODE = "offer_code"  # App Store offer code (3), Play promo code (signupPromotion)
    WIN_BACK = "win_back"  # App Store win-back offer (4)
    COUPON = "coupon"  # a Stripe coupon (directly or through a promotion code)


@dataclass(frozen=True)
class OfferFacts:
    """The offer a provider says a subscription is under: the store's ids, never our own."""

    kind: str  # an OfferKind
    offer_id: str = ""  # App Store offerIdentifier, Play offerId, Stripe coupon id
    code: str = ""  # the code the customer typed where the provider names it (Play vanity code, Stripe promo code)
    free_trial: bool = False
    tags: tuple[str, ...] = ()  # Play offer tags


@dataclass(frozen=True)
class SubscriptionSnapshot:
    """What the provider says a subscription looks like now (the truth we converge to)."""

    provider: str
    provider_subscription_id: str
    store_product_id: str
    status: str  # a SubscriptionStatus
    as_of: datetime
    provider_status: str = ""  # the provider's own word for it, kept for the trail
    customer_ref: str = ""  # provider customer id / app account token / obfuscated account id
    # (ProviderIdentity kind, value) pairs that name the customer at the provider, the customer_ref's first.
    identities: tuple[tuple[str, str], ...] = ()
    external_id: str = ""  # our account id, when the provider carries it (Stripe metadata, Play account id)
    base_plan_id: str = ""
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    trial_end: datetime | None = None
    grace_end: datetime | None = None
    auto_renew: bool = True
    cancel_reason: str = ""  # a CancelReason (why it stopped renewing), "" while it renews
    price_increase: str = PriceIncrease.NONE
    quantity: int = 1
    acknowledgement: str = Acknowledgement.NOT_NEEDED
    acknowledged_at: datetime | None = None  # set when we acknowledged it just now
    offer: OfferFacts | None = None
    extra: dict = field(default_factory=dict)  # what only its own provider package reads


class StoredEvent(Protocol):
    """A verified provider event as the inbox keeps it (``monetization.models.WebhookEvent``)."""

    provider: str
    event_id: str
    event_type: str
    occurred_at: datetime
    payload: dict


@dataclass(frozen=True)
class PaymentReport:
    """The provider took a payment for a subscription."""

    provider_reference: str  # Stripe invoice id, App Store transaction id, Play order id
    amount: Money
    kind: str  # the core's Payment.Kind: "initial", "renewal", "upgrade"
    occurred_at: datetime
    fee: Money | None = None
    tax: Money | None = None
    # The store product the payment bought, where the provider says (App Store transactions): a
    # subscription's plan can have changed by the time a shuffled delivery books an older payment.
    store_product_id: str = ""
    # Since when the subscriber has had paid service, as the provider signs it with the payment (App
    # Store): the store's commission counts its first year from here, whatever order payments are
    # booked in. None: counted from the subscription's payments booked so far.
    paid_service_since: datetime | None = None


@dataclass(frozen=True)
class ReportLine:
    """One payment or refund as a provider's payout report states it (what it took, kept and paid).

    ``reference`` is the id our books know it by (Stripe invoice or refund id, Play order id);
    amounts are magnitudes in ``currency``'s major units: ``gross`` what the customer paid (or got
    back), ``fee`` the processing fee, ``commission`` the store's share, ``tax`` the tax it withheld.
    """

    reference: str
    line_kind: str  # "payment" or "refund"
    currency: str
    gross: Decimal
    fee: Decimal = Decimal(0)
    commission: Decimal = Decimal(0)
    tax: Decimal = Decimal(0)
    occurred_on: date | None = None
    # What the store paid out for it (a report that states only that: App Store); None when not stated.
    proceeds: Decimal | None = None


@dataclass(frozen=True)
class InvoiceReport:
    """Where one of the provider's invoices of a subscription stands (Stripe Billing): finalized and
    open (its charge failed), paid, void or uncollectible. ``period_start`` is the period it bills."""

    provider_invoice_id: str
    status: str  # "open" | "paid" | "void" | "uncollectible"
    number: str
    period_start: datetime | None
    amount_due: Money


@dataclass(frozen=True)
class RefundReport:
    """The provider gave money back on one of its payments (our own refunds come back this way too).

    Either each refund by its own id (``refunds``: (id, amount in minor units)), or what the
    provider has refunded in all (``refunded_minor``; None: the whole payment), booked under
    ``remainder_id`` for what it adds to what is booked already. Amounts are in ``currency``
    (empty: the payment's).
    """

    payment_reference: str
    refunds: tuple[tuple[str, int], ...] = ()
    refunded_minor: int | None = None
    remainder_id: str = ""
    currency: str = ""


@dataclass(frozen=True)
class DisputeReport:
    """A chargeback on one of the provider's payments, as the provider's dispute object stands now.

    Every report is the whole dispute (status and every balance transaction so far), so
    applying the newest last converges whatever order the reports came in. ``movements``:
    (balance transaction id, amount, fee) in minor units, signed as the provider's balance
    sees them (a withdrawal is negative, a reinstatement positive).
    """

    provider_dispute_id: str
    payment_reference: str
    amount_minor: int
    currency: str
    status: str  # a Dispute.Status value
    as_of: datetime
    reason: str = ""
    evidence_due_by: datetime | None = None
    movements: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True)
class EventFacts:
    """What one stored provider event says, in the back office's words (read by its provider package)."""

    snapshot: SubscriptionSnapshot | None = None  # converge the subscription to this
    subscription_ref: str = ""  # the subscription an event without a snapshot is about
    payment: PaymentReport | None = None
    # Payments the provider made earlier for the same subscription that we have not recorded (a Play
    # renewal whose notification was late or lost: its read-back already names a later order).
    earlier_payments: tuple[PaymentReport, ...] = ()
    payment_failed: dict | None = None  # a renewal charge failed: the provider's details, for the timeline
    invoice: InvoiceReport | None = None  # the provider's invoice of the subscription, as it stands now
    refund: RefundReport | None = None
    # Money went back or access was revoked: the provider's details, for the timeline; with
    # ``access_ends`` and no snapshot (which would say so itself), access ends now.
    refund_reported: dict | None = None
    access_ends: bool = False
    replaces: str = ""  # the provider subscription id this one replaces (a Play upgrade or resubscribe)
    dispute: DisputeReport | None = None  # a chargeback opened, moved money, or closed
    # The provider took back the refunds it made on this payment (its reference; App Store REFUND_REVERSED).
    refund_reversed: str = ""
    # The provider asks how the purchase was used before it decides a refund (App Store CONSUMPTION_REQUEST).
    consumption_request: dict | None = None


@dataclass(frozen=True)
class RefundResult:
    provider_refund_id: str
    amount: Money
    status: str  # "succeeded" | "pending"


@dataclass(frozen=True)
class PortalSession:
    """A customer's short-lived session in the provider's hosted billing page (Stripe's Billing Portal):
    the customer updates their card and invoices there, then comes back to ``return_url``."""

    id: str
    url: str
    return_url: str
    created_at: datetime | None = None


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

    # Web subscriptions only (Stripe): the stores let only the customer change a plan or a card, in the store.
    def change_subscription_plan(
        self, provider_subscription_id: str, *, store_product_id: str, idempotency_key: str
    ) -> SubscriptionSnapshot: ...

    # Web only: a plan's new price from the subscription's next renewal (the stores move their subscribers).
    def move_subscription_price(
        self, provider_subscription_id: str, *, store_product_id: str, idempotency_key: str
    ) -> SubscriptionSnapshot: ...

    def billing_portal_session(self, *, customer_ref: str, return_url: str, idempotency_key: str) -> PortalSession: ...


def get_provider(name: str) -> PaymentProvider:
    """The adapter configured for ``name`` in ``settings.PAYMENT_PROVIDERS`` (dotted paths).

    Production points each provider at its package's adapter; the demo and the tests
    at the test double (``monetization.demo.providers.FakeProvider``). Instances are
    cached per process.
    """
    path = settings.PAYMENT_PROVIDERS[name]
    cached = _instances.get((name, path))
    if cached is None:
        cached = import_string(path)(name=name)
        _instances[(name, path)] = cached
    return cached


def reset_providers() -> None:
    _instances.clear()


_instances: dict[tuple[str, str], PaymentProvider] = {}


# --- Payouts (creators' revenue share): money sent out, once per idempotency key ------------


@dataclass(frozen=True)
class TransferResult:
    transfer_id: str
    amount: Money
    destination: str
    replayed: bool = False  # True when the provider answered from an earlier request with the same key


class PayoutError(Exception):
    """The payout provider refused or failed the transfer (the payout is marked failed and can be retried)."""


class PayoutProvider(Protocol):
    """Sends money to a payee's account. A repeated idempotency key returns the first transfer,
    never a second one: what makes a crashed or repeated paying run safe."""

    name: str

    def transfer(self, *, destination: str, amount: Money, idempotency_key: str) -> TransferResult: ...


def get_payout_provider() -> PayoutProvider:
    """The payout provider ``settings.CREATOR_PAYOUT_PROVIDER`` names (Stripe Connect unless told otherwise)."""
    return import_string(settings.CREATOR_PAYOUT_PROVIDER)()
