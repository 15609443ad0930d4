"""A client app submits a store purchase; we validate it with the provider and link the subscription."""

from __future__ import annotations

from monetization.errors import ErrorCode, InvalidInput, NotFound
from monetization.models import AuditEvent, Customer
from monetization.providers.base import InvalidSignature, MalformedPayload, ProviderError, get_provider
from monetization.services.customer_merge import customer_survivor
from subscriptions.services.lifecycle import Cause
from subscriptions.services.provider_sync import SyncResult, subscription_sync_from_snapshot


def purchase_submit(
    *,
    platform: str,
    customer_external_id: str,
    signed_transaction: str = "",
    signed_renewal_info: str = "",
    purchase_token: str = "",
    product_id: str = "",
    stripe_subscription_id: str = "",
    client_label: str = "",
) -> SyncResult:
    """Validate with the provider, then create or link the subscription. Same input, same subscription."""
    customer = Customer.objects.filter(external_id=customer_external_id).first()
    if customer is None:
        raise NotFound(f"No customer with external id '{customer_external_id}'.")
    # A login of a customer merged into another buys for the survivor.
    customer = customer_survivor(customer)
    try:
        if platform == "ios":
            if not signed_transaction:
                raise InvalidInput("signed_transaction is required for ios.")
            snapshot = get_provider("app_store").verify_signed_transaction(signed_transaction, signed_renewal_info)
        elif platform == "android":
            if not purchase_token:
                raise InvalidInput("purchase_token is required for android.")
            provider = get_provider("google_play")
            snapshot = provider.fetch_subscription(purchase_token)
            if product_id and snapshot.store_product_id != product_id:
                raise InvalidInput("The purchase token is for another product.", code=ErrorCode.PURCHASE_INVALID)
            # Play refunds a purchase nobody acknowledges within 3 days.
            snapshot = provider.acknowledge_pending(snapshot)
        elif platform == "web":
            if not stripe_subscription_id:
                raise InvalidInput("stripe_subscription_id is required for web.")
            snapshot = get_provider("stripe").fetch_subscription(stripe_subscription_id)
        else:
            raise InvalidInput(f"Unknown platform '{platform}'.", code=ErrorCode.UNKNOWN_PLATFORM)
    except (InvalidSignature, MalformedPayload) as exc:
        raise InvalidInput(f"The purchase could not be verified: {exc}", code=ErrorCode.PURCHASE_INVALID) from exc
    except ProviderError as exc:
        if exc.code == "not_found":
            raise InvalidInput("The provider does not know this purchase.", code=ErrorCode.PURCHASE_INVALID) from exc
        raise InvalidInput(
            f"The provider could not be reached: {exc}", code=ErrorCode.PROVIDER_UNAVAILABLE, status=503
        ) from exc
    cause = Cause(actor_kind=AuditEvent.ActorKind.CLIENT, label=client_label or "api", reason="purchase submitted")
    # Notifications the store sent before this call (it never waits for the app) wait for the link; the
    # sync wakes them when it creates the subscription or links the customer's identity.
    return subscription_sync_from_snapshot(snapshot=snapshot, cause=cause, customer=customer)
