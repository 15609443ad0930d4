"""Subscriptions' part of personal data requests: its tables, its provider ids, and what an
erasure does to a customer's subscriptions (cancel on the web, list the stores' for Support)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django_fsm import can_proceed

from monetization.personal_data import provider_references, source
from monetization.providers.base import ProviderError, get_provider
from monetization.services.privacy import PERM_EXECUTE, erasure_hooks
from subscriptions.models import Product, Subscription
from subscriptions.services.lifecycle import Cause, subscription_change_state

# Where Support sends a customer to cancel what we cannot.
HOW_TO_CANCEL = {
    "app_store": "Only the customer can cancel: Settings > Apple ID > Subscriptions on their device.",
    "google_play": "The customer cancels in Google Play > Payments & subscriptions; or Support revokes it (refunds).",
}


def register() -> None:
    source("subscriptions.Subscription", customer_paths=("customer",))
    source("subscriptions.Grant", customer_paths=("customer",))
    source("subscriptions.SubscriptionPayment", customer_paths=("payment__customer", "subscription__customer"))
    source("subscriptions.DunningAttempt", customer_paths=("subscription__customer",))
    # Two-platform cases: ids and entitlement keys, and Support's reason for the decision.
    source("subscriptions.OverlapCase", customer_paths=("customer",), personal_fields=("decision_reason",))
    # Growth: which arm a customer was shown and which promo codes they redeemed (no free text).
    source("subscriptions.ExperimentExposure", customer_paths=("customer",), personal_fields=())
    source("subscriptions.PromoRedemption", customer_paths=("customer",), personal_fields=())
    # Offers: which introductory offers a customer used (store ids only, no free text).
    source("subscriptions.IntroductoryOfferUse", customer_paths=("customer",), personal_fields=())
    # Win-back: which rule targeted a customer and when (no free text).
    source("subscriptions.WinBackTarget", customer_paths=("customer",), personal_fields=())
    # Price changes: which subscription was moved to a new Stripe price and when (the provider's
    # refusal, if any, is an error code and message about the price, not about the person).
    source("subscriptions.PriceChangePush", customer_paths=("subscription__customer",), personal_fields=())
    # Finance's carried snapshot state: a subscription's segment (plan, platform, country) and MRR
    # over a run of days, the figures the daily snapshots counted (no free text).
    source("subscriptions.FinanceState", customer_paths=("subscription__customer",), personal_fields=())
    # And when each of its paid periods ends, as the carry counted it (dates only).
    source("subscriptions.FinancePeriodEnd", customer_paths=("subscription__customer",), personal_fields=())
    # And when what segments it (plan, platform, provider, customer, country) changed (dates only).
    source("subscriptions.FinanceSegmentChange", customer_paths=("subscription__customer",), personal_fields=())
    provider_references.register("subscriptions.provider_subscription_id", subscription_references)
    erasure_hooks.register("subscriptions.cancel", subscriptions_erasure)


def subscription_references(customer) -> list[str]:
    return list(Subscription.objects.filter(customer=customer).values_list("provider_subscription_id", flat=True))


def _item(sub: Subscription, action: str, **more) -> dict[str, Any]:
    return {
        "action": action,
        "subscription": sub.pk,
        "provider": sub.provider,
        "provider_subscription_id": sub.provider_subscription_id,
        "state": sub.state,
        "current_period_end": sub.current_period_end.isoformat() if sub.current_period_end else None,
        **more,
    }


def subscriptions_erasure(*, customer, erasure, actor, reason: str) -> list[dict[str, Any]]:
    """Turn auto-renew off where the provider lets us; list the rest for Support. Access already
    paid for runs to the period end; an organization's subscription is the organization's, not
    the person's, and is left alone."""
    items = []
    subs = (
        Subscription.objects.filter(customer=customer, auto_renew=True)
        .exclude(state__in=[Subscription.State.EXPIRED, Subscription.State.REVOKED])
        .select_related("plan__product")
        .order_by("id")
    )
    for sub in subs:
        if sub.plan.product.kind == Product.Kind.ORGANIZATION:
            items.append(_item(sub, "kept_for_organization"))
            continue
        if sub.provider not in settings.ERASURE_CANCEL_PROVIDERS:
            items.append(_item(sub, "customer_must_cancel", how=HOW_TO_CANCEL.get(sub.provider, "")))
            continue
        if sub.provider in settings.PAYMENT_PROVIDERS:
            try:
                get_provider(sub.provider).cancel_subscription(
                    sub.provider_subscription_id,
                    at_period_end=True,
                    idempotency_key=f"erasure:{erasure.pk}:cancel:{sub.pk}",
                )
            except ProviderError as exc:
                # Erasure goes on; Support sees what is left to cancel and why.
                items.append(_item(sub, "cancel_failed", error=f"{exc} ({exc.code})"))
                continue
        if can_proceed(sub.cancel):
            sub = subscription_change_state(
                subscription=sub,
                transition="cancel",
                cause=Cause.staff_consequence(actor, reason, authorized_by=PERM_EXECUTE),
                transition_kwargs={"reason": "erasure"},
                action="subscription.cancel",
            )
        items.append(_item(sub, "cancelled"))
    return items
