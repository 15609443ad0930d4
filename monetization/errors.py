"""Domain errors with stable, machine-readable codes: every code of the API, in one place.

Services raise :class:`DomainError` subclasses; the API turns them into a 4xx
JSON body ``{"code": ..., "detail": ...}``. Clients switch on ``code``, never
on ``detail``. Codes are part of the API contract: add, never rename. They are
grouped by domain: :class:`ErrorCode` for the core and what every app shares,
one class per product domain after it.
"""

from __future__ import annotations


class ErrorCode:
    # Generic
    INVALID_INPUT = "invalid_input"
    NOT_FOUND = "not_found"
    PERMISSION_DENIED = "permission_denied"
    NOT_AUTHENTICATED = "not_authenticated"
    THROTTLED = "throttled"
    CONFLICT = "conflict"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    SERVICE_UNAVAILABLE = "service_unavailable"  # a database or cache outage: retry after Retry-After
    METHOD_NOT_ALLOWED = "method_not_allowed"
    SERVER_ERROR = "server_error"
    # API keys
    API_KEY_INVALID = "api_key_invalid"
    API_KEY_REVOKED = "api_key_revoked"
    API_KEY_SCOPE_MISSING = "api_key_scope_missing"
    # Catalog
    UNKNOWN_PLATFORM = "unknown_platform"
    UNKNOWN_COUNTRY = "unknown_country"
    # State machines
    ILLEGAL_TRANSITION = "illegal_transition"
    # Idempotency
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    IDEMPOTENCY_KEY_IN_PROGRESS = "idempotency_key_in_progress"
    # Ledger
    LEDGER_UNBALANCED = "ledger_unbalanced"
    # Client apps acting for their user (X-Acting-Customer)
    ACTING_CUSTOMER_REQUIRED = "acting_customer_required"
    ACTING_CUSTOMER_NOT_FOUND = "acting_customer_not_found"
    # Support console: refunds, staff actions
    IDEMPOTENCY_KEY_REQUIRED = "idempotency_key_required"
    REASON_REQUIRED = "reason_required"
    REASON_TOO_LONG = "reason_too_long"
    GRANT_END_REQUIRED = "grant_end_required"
    REFUND_EXCEEDS_REFUNDABLE = "refund_exceeds_refundable"
    REFUND_PAYMENT_NOT_REFUNDABLE = "refund_payment_not_refundable"
    REFUND_CURRENCY_MISMATCH = "refund_currency_mismatch"
    REFUND_UNSUPPORTED_BY_PROVIDER = "refund_unsupported_by_provider"
    REFUND_SELF_APPROVAL = "refund_self_approval"
    UNSUPPORTED_BY_PROVIDER = "unsupported_by_provider"
    PROVIDER_ERROR = "provider_error"
    # Creators
    FOUR_EYES = "four_eyes_required"
    # Webhooks, provider sync and purchases
    INVALID_SIGNATURE = "invalid_signature"
    MALFORMED_PAYLOAD = "malformed_payload"
    UNKNOWN_SKU = "unknown_sku"
    UNKNOWN_CUSTOMER = "unknown_customer"
    UNKNOWN_PROVIDER_STATUS = "unknown_provider_status"
    PURCHASE_INVALID = "purchase_invalid"
    PURCHASE_OWNED_BY_OTHER_CUSTOMER = "purchase_owned_by_other_customer"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    PROVIDER_DISABLED = "provider_disabled"
    WEBHOOK_NOT_REPLAYABLE = "webhook_not_replayable"


class OrgErrorCode:
    """Verified organizations: the org admin API and its services."""

    ORG_NOT_FOUND = "org_not_found"
    ORG_NOT_VERIFIED = "org_not_verified"
    ORG_PLAN_MISSING = "org_plan_missing"
    ORG_PRICE_MISSING = "org_price_missing"
    NOT_ORG_ADMIN = "not_org_admin"
    CUSTOMER_NOT_FOUND = "customer_not_found"
    SEAT_LIMIT_REACHED = "seat_limit_reached"
    ALREADY_AFFILIATED = "already_affiliated"
    AFFILIATION_NOT_FOUND = "affiliation_not_found"
    INVITATION_NOT_FOUND = "invitation_not_found"
    INVITATION_NOT_FOR_CUSTOMER = "invitation_not_for_customer"
    INVITATION_EXPIRED = "invitation_expired"
    HANDLE_TAKEN = "handle_taken"
    INVOICE_NOT_FOUND = "invoice_not_found"
    BILLING_PROVIDER_FAILED = "billing_provider_failed"


class SelfServiceErrorCode:
    """Customer self-service (the client app's customer center)."""

    # A store subscription (App Store, Google Play) is cancelled or changed by the customer in the store:
    # the answer carries ``manage_url``, the store's page.
    STORE_MANAGED_SUBSCRIPTION = "store_managed_subscription"
    PLAN_NOT_SWITCHABLE = "plan_not_switchable"
    BILLING_ACCOUNT_MISSING = "billing_account_missing"


class CreatorErrorCode:
    """Creator revenue sharing: cycles and payouts."""

    CONFIRMATION_REQUIRED = "confirmation_required"


class GrowthErrorCode:
    """Price experiments and promo codes (subscriptions/services/experiments.py, promo_codes.py)."""

    EXPERIMENT_NOT_FOUND = "experiment_not_found"
    PROMO_CODE_NOT_FOUND = "promo_code_not_found"
    PROMO_CODE_EXHAUSTED = "promo_code_exhausted"
    PROMO_CODE_EXPIRED = "promo_code_expired"
    PROMO_CODE_NOT_ELIGIBLE = "promo_code_not_eligible"


class FxErrorCode:
    """Exchange rates (monetization/services/fx.py)."""

    FX_RATE_MISSING = "fx_rate_missing"


class PriceChangeErrorCode:
    """Plan price changes (subscriptions/services/price_changes.py)."""

    PRICE_CHANGE_STORE_CONSENT = "price_change_store_consent"
    PRICE_CHANGE_NOTICE_TOO_SHORT = "price_change_notice_too_short"
    PRICE_CHANGE_NOT_IN_FUTURE = "price_change_not_in_future"


class OwnershipErrorCode:
    """Purchases owned by another customer, transfers and merges of customers."""

    CUSTOMER_MERGED = "customer_merged"  # merged away: its tombstone names the survivor
    CUSTOMER_MERGE_IN_PROGRESS = "customer_merge_in_progress"
    CUSTOMER_MERGE_BLOCKED = "customer_merge_blocked"
    PURCHASE_NOT_OWNED_BY_SOURCE = "purchase_not_owned_by_source"


class DomainError(Exception):
    """A refusal the caller can act on. ``status`` is the HTTP status the API uses."""

    code = ErrorCode.INVALID_INPUT
    status = 400

    def __init__(
        self, detail: str = "", *, code: str | None = None, status: int | None = None, extra: dict | None = None
    ):
        super().__init__(detail or self.__class__.__doc__ or self.code)
        self.detail = detail or (self.__class__.__doc__ or self.code).strip()
        if code:
            self.code = code
        if status:
            self.status = status
        self.extra = extra or {}


class InvalidInput(DomainError):
    """The request is not valid."""


class NotFound(DomainError):
    """No such object."""

    code = ErrorCode.NOT_FOUND
    status = 404


class Conflict(DomainError):
    """The object is not in a state that allows this."""

    code = ErrorCode.CONFLICT
    status = 409


class IllegalTransition(Conflict):
    """This state change is not allowed from the object's current state."""

    code = ErrorCode.ILLEGAL_TRANSITION


class PermissionDenied(DomainError):
    """You do not have permission to do this."""

    code = ErrorCode.PERMISSION_DENIED
    status = 403


# What staff read in the admin for a code: people act on a sentence, clients on the code. A code without an
# entry reads as the generic line; the refusal's own detail follows either way.
STAFF_MESSAGES = {
    ErrorCode.INVALID_INPUT: "That input was not accepted",
    ErrorCode.NOT_FOUND: "It no longer exists",
    ErrorCode.PERMISSION_DENIED: "You may not do this",
    ErrorCode.CONFLICT: "Not possible now",
    ErrorCode.SERVICE_UNAVAILABLE: "A service is unavailable; try again in a minute",
    ErrorCode.ILLEGAL_TRANSITION: "Not possible in its current state",
    ErrorCode.IDEMPOTENCY_KEY_REUSED: "This form was already sent with other values",
    ErrorCode.IDEMPOTENCY_KEY_IN_PROGRESS: "This form is still being processed",
    ErrorCode.IDEMPOTENCY_KEY_REQUIRED: "Reload the page and send the form again",
    ErrorCode.REASON_REQUIRED: "Give a reason",
    ErrorCode.REASON_TOO_LONG: "The reason is too long",
    ErrorCode.GRANT_END_REQUIRED: "Give the grant an end",
    ErrorCode.REFUND_EXCEEDS_REFUNDABLE: "More than is left to refund",
    ErrorCode.REFUND_PAYMENT_NOT_REFUNDABLE: "This payment cannot be refunded",
    ErrorCode.REFUND_CURRENCY_MISMATCH: "The refund is not in the payment's currency",
    ErrorCode.REFUND_UNSUPPORTED_BY_PROVIDER: "The platform refunds this itself",
    ErrorCode.REFUND_SELF_APPROVAL: "Someone else must approve your own request",
    ErrorCode.UNSUPPORTED_BY_PROVIDER: "The platform does not support this",
    ErrorCode.PROVIDER_ERROR: "The payment platform refused; nothing changed here",
    ErrorCode.PROVIDER_UNAVAILABLE: "The payment platform is unreachable; nothing changed here",
    ErrorCode.FOUR_EYES: "Someone else must approve this",
    ErrorCode.WEBHOOK_NOT_REPLAYABLE: "This event cannot be replayed",
    ErrorCode.LEDGER_UNBALANCED: "The ledger entry does not balance",
    OrgErrorCode.SEAT_LIMIT_REACHED: "No seat left",
    OrgErrorCode.BILLING_PROVIDER_FAILED: "Stripe did not take the billing change",
    CreatorErrorCode.CONFIRMATION_REQUIRED: "Confirm it first",
    FxErrorCode.FX_RATE_MISSING: "An exchange rate is missing",
}
STAFF_MESSAGE_DEFAULT = "That could not be done"


def staff_message(exc: DomainError) -> str:
    """The admin's message for a refusal: a sentence for its code, then what the service said."""
    lead = STAFF_MESSAGES.get(exc.code, STAFF_MESSAGE_DEFAULT)
    return f"{lead}. {exc.detail}" if exc.detail else f"{lead}."
