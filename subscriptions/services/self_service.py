"""Customer self-service: what a client app's customer center shows and does for its signed-in user.

The customer manages web (Stripe) subscriptions here: cancel at the period end and switch plan go to
Stripe through the provider interface first (Stripe prorates a switch, as its default
``create_prorations`` does: the unused time credited, the new price charged for the rest of the
period on the next invoice), then our state follows through the lifecycle service; the card is
updated in Stripe's Billing Portal. A store subscription (App Store, Google Play) only the customer
can cancel or change, in the store: refused with 409 ``store_managed_subscription`` and the store's
manage link. Every action is audited as the customer's own: ``client`` actor, labelled with the app
and the customer it acted for, on the customer's trail.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django_fsm import can_proceed

from monetization import clock
from monetization.errors import Conflict, IllegalTransition, NotFound, SelfServiceErrorCode
from monetization.models import AuditEvent, Customer, Provider, ProviderIdentity
from monetization.providers import provider_manage_url
from monetization.providers.base import PortalSession, get_provider
from monetization.services.audit import audit_record
from subscriptions.entitlements import entitlements_invalidate
from subscriptions.models import Plan, Platform, Product, Subscription
from subscriptions.services.actions import provider_call, provider_op_key
from subscriptions.services.lifecycle import Cause, subscription_change_state, subscription_lock

S = Subscription.State
# The customer center lists what can still bill or entitle; ended ones are history, not things to manage.
SHOWN_STATES = Subscription.LIVE_STATES
RENEWING_STATES = (S.TRIALING, S.ACTIVE)
SWITCHABLE_STATES = (S.TRIALING, S.ACTIVE)
LISTED = 50


@dataclass(frozen=True)
class CenterSubscription:
    subscription: Subscription
    next_renewal: datetime | None  # when it renews (None: it will not, or not on schedule)
    access_until: datetime | None
    manage_url: str  # the store's page, for a store subscription
    self_service: bool  # cancel and switch plan here (web subscriptions)


def _cause(client_label: str, reason: str) -> Cause:
    return Cause(actor_kind=AuditEvent.ActorKind.CLIENT, label=client_label[:200], reason=reason)


def _store_managed(sub: Subscription) -> bool:
    return sub.provider != Provider.STRIPE


def subscription_manage_url(sub: Subscription) -> str:
    return provider_manage_url(sub.provider, sub.sku.store_product_id if sub.sku_id else "")


def customer_center_subscriptions(customer: Customer) -> list[CenterSubscription]:
    """The customer's live consumer and creator subscriptions, newest first (one query). An
    organization's subscription is its admins' business, on the organization endpoints."""
    subs = (
        Subscription.objects.filter(customer=customer, state__in=SHOWN_STATES)
        .exclude(plan__product__kind=Product.Kind.ORGANIZATION)
        .select_related("plan__product", "sku")
        .order_by("-id")[:LISTED]
    )
    found = []
    for sub in subs:
        next_renewal = None
        if sub.auto_renew and sub.state in RENEWING_STATES:
            next_renewal = sub.trial_end if sub.state == S.TRIALING and sub.trial_end else sub.current_period_end
        found.append(
            CenterSubscription(
                subscription=sub,
                next_renewal=next_renewal,
                access_until=sub.grace_end if sub.state == S.IN_GRACE_PERIOD else sub.current_period_end,
                manage_url=subscription_manage_url(sub) if _store_managed(sub) else "",
                self_service=not _store_managed(sub),
            )
        )
    return found


def _own_subscription(customer: Customer, subscription_id: int) -> Subscription:
    """The customer's own subscription; another customer's is not found (its existence is not told)."""
    sub = (
        Subscription.objects.select_related("plan__product", "sku", "customer")
        .filter(pk=subscription_id, customer=customer)
        .exclude(plan__product__kind=Product.Kind.ORGANIZATION)
        .first()
    )
    if sub is None:
        raise NotFound(f"You have no subscription {subscription_id}.")
    if _store_managed(sub):
        url = subscription_manage_url(sub)
        raise Conflict(
            f"{sub.get_provider_display()} subscriptions are managed by the customer in the store: {url}",
            code=SelfServiceErrorCode.STORE_MANAGED_SUBSCRIPTION,
            extra={"provider": sub.provider, "manage_url": url},
        )
    return sub


def customer_subscription_cancel(
    *, customer: Customer, subscription_id: int, client_label: str, action_id: str = ""
) -> Subscription:
    """Cancel a web subscription at the period end: it stops renewing, access runs until then."""
    sub = _own_subscription(customer, subscription_id)
    if not can_proceed(sub.cancel):
        raise IllegalTransition(f"A subscription that is {sub.state} cannot be cancelled.")
    provider_call(
        get_provider(sub.provider).cancel_subscription,
        sub.provider_subscription_id,
        at_period_end=True,
        idempotency_key=provider_op_key(sub, "customer_cancel", "period_end", action_id=action_id),
    )
    return subscription_change_state(
        subscription=sub,
        transition="cancel",
        cause=_cause(client_label, "cancelled by the customer"),
        transition_kwargs={"reason": "customer"},
        action="subscription.cancel",
    )


def customer_subscription_switch_plan(
    *, customer: Customer, subscription_id: int, plan_code: str, client_label: str, action_id: str = ""
) -> Subscription:
    """Move a renewing web subscription to another plan of the same kind sold on the web; Stripe prorates."""
    sub = _own_subscription(customer, subscription_id)
    if sub.state not in SWITCHABLE_STATES or not sub.auto_renew:
        raise IllegalTransition(f"A subscription that is {sub.state} (or not renewing) cannot switch plan.")
    plan = Plan.objects.select_related("product").filter(code=plan_code).first()
    if plan is None:
        raise NotFound(f"No plan {plan_code!r}.")
    sku = plan.skus.filter(platform=Platform.WEB, is_active=True).first()
    why = ""
    if plan.pk == sub.plan_id:
        why = "The subscription is on this plan already."
    elif plan.product.kind != sub.plan.product.kind:
        why = f"A {sub.plan.product.get_kind_display()} cannot switch to a {plan.product.get_kind_display()}."
    elif sku is None:
        why = f"Plan {plan.code} is not sold on the web."
    if why:
        raise Conflict(why, code=SelfServiceErrorCode.PLAN_NOT_SWITCHABLE)
    provider_call(
        get_provider(sub.provider).change_subscription_plan,
        sub.provider_subscription_id,
        store_product_id=sku.store_product_id,
        idempotency_key=provider_op_key(sub, "customer_switch", plan.code, action_id=action_id),
    )
    # The period does not move (Stripe prorates on the next invoice); Stripe's
    # customer.subscription.updated then finds this plan already in place.
    with transaction.atomic():
        locked = subscription_lock(sub.pk)
        before = {"plan": sub.plan.code}
        locked.plan, locked.sku, locked.updated_at = plan, sku, clock.now()
        locked.save(update_fields=["plan", "sku", "updated_at"])
        audit_record(
            action="subscription.change_plan",
            obj=locked,
            actor_kind=AuditEvent.ActorKind.CLIENT,
            actor_label=client_label[:200],
            customer=customer,
            before=before,
            after={"plan": plan.code},
            reason="switched by the customer",
        )
        entitlements_invalidate([customer.external_id])
    return locked


def customer_billing_portal(
    *, customer: Customer, return_url: str, client_label: str, action_id: str = ""
) -> PortalSession:
    """A Stripe Billing Portal session where the customer updates the card of their web subscriptions."""
    ref = (
        ProviderIdentity.objects.filter(
            customer=customer, provider=Provider.STRIPE, kind=ProviderIdentity.Kind.CUSTOMER_ID
        )
        .order_by("id")
        .values_list("value", flat=True)
        .first()
    )
    if not ref:
        raise Conflict(
            "This customer has no web billing account (no Stripe customer): nothing to update.",
            code=SelfServiceErrorCode.BILLING_ACCOUNT_MISSING,
        )
    # A session is single-use: a new one each time, unless the client retries the same request.
    key = f"customer_portal:{customer.pk}:{action_id or uuid.uuid4().hex}"[:255]
    session = provider_call(
        get_provider(Provider.STRIPE).billing_portal_session,
        customer_ref=ref,
        return_url=return_url,
        idempotency_key=key,
    )
    audit_record(
        action="customer.billing_portal_session",
        obj=customer,
        actor_kind=AuditEvent.ActorKind.CLIENT,
        actor_label=client_label[:200],
        customer=customer,
        after={"session": session.id, "return_url": return_url},
    )
    return session
