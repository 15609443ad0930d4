"""Converge a subscription to what its provider says: the one place provider truth enters.

Webhook appliers, ``resync_provider`` and ``POST /purchases`` all end here with
a :class:`SubscriptionSnapshot`. The snapshot's provider status is mapped to
our state, the subscription is created when it is new (customer resolved
through a provider identity, SKU through the store product id) and moved to
the target state through :func:`subscription_change_state`.

Ordering: providers deliver at least once and out of order. Each snapshot
carries the provider's own timestamp (``as_of``); a subscription remembers the
newest one it applied (``last_event_at``) and an older snapshot changes
nothing. Because every snapshot is a full picture (not a delta), applying the
newest one last is enough to converge, whatever order the rest came in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Q

from monetization import clock
from monetization.errors import Conflict, ErrorCode, InvalidInput
from monetization.models import Customer, Provider, ProviderIdentity
from monetization.providers.base import SubscriptionSnapshot
from monetization.services.audit import audit_record
from subscriptions.models import Platform, Sku, Subscription
from subscriptions.services.lifecycle import Cause, subscription_change_state

S = Subscription.State

PLATFORM_BY_PROVIDER = {
    Provider.STRIPE: Platform.WEB,
    Provider.APP_STORE: Platform.IOS,
    Provider.GOOGLE_PLAY: Platform.ANDROID,
}

# Provider status -> our state. A renewing state with auto-renew off becomes
# CANCELED (access until the period ends) in ``target_state``.
STATUS_MAP: dict[str, dict[str, str]] = {
    Provider.STRIPE: {
        "incomplete": S.PENDING,  # 23 hours to pay the first invoice
        "trialing": S.TRIALING,
        "active": S.ACTIVE,
        # Smart Retries are running: billing retry / past due. Access continues only where
        # grace is configured (the product's or the platform's); see subscription_sync_from_snapshot.
        "past_due": S.IN_GRACE_PERIOD,
        "unpaid": S.ON_HOLD,  # retries exhausted, invoices stay open: no access
        "paused": S.PAUSED,
        "canceled": S.EXPIRED,  # Stripe's "canceled" means ended
        "incomplete_expired": S.EXPIRED,
    },
    Provider.APP_STORE: {
        # App Store Server API statuses (1 active, 2 expired, 3 billing retry, 4 grace, 5 revoked) + trial.
        "trialing": S.TRIALING,
        "active": S.ACTIVE,
        "grace_period": S.IN_GRACE_PERIOD,
        "billing_retry": S.ON_HOLD,
        "expired": S.EXPIRED,
        "revoked": S.REVOKED,
    },
    Provider.GOOGLE_PLAY: {
        "SUBSCRIPTION_STATE_PENDING": S.PENDING,
        "SUBSCRIPTION_STATE_ACTIVE": S.ACTIVE,
        "SUBSCRIPTION_STATE_IN_GRACE_PERIOD": S.IN_GRACE_PERIOD,
        "SUBSCRIPTION_STATE_ON_HOLD": S.ON_HOLD,
        "SUBSCRIPTION_STATE_PAUSED": S.PAUSED,
        "SUBSCRIPTION_STATE_CANCELED": S.CANCELED,  # auto-renew off, access until expiry
        "SUBSCRIPTION_STATE_EXPIRED": S.EXPIRED,
        "SUBSCRIPTION_STATE_PENDING_PURCHASE_CANCELED": S.EXPIRED,
        "revoked": S.REVOKED,  # RTDN 12: Play has no revoked state, the notification says it
    },
}

# The transition that reaches each target state.
TRANSITION_TO = {
    S.TRIALING: "start_trial",
    S.ACTIVE: "activate",
    S.IN_GRACE_PERIOD: "enter_grace_period",
    S.ON_HOLD: "put_on_hold",
    S.PAUSED: "pause",
    S.CANCELED: "cancel",
    S.EXPIRED: "expire",
    S.REVOKED: "revoke",
}


class SubscriptionSyncError(InvalidInput):
    """The provider's subscription cannot be matched to our catalog or customers."""


@dataclass(frozen=True)
class SyncResult:
    subscription: Subscription
    created: bool
    stale: bool  # the snapshot was older than what was already applied: nothing changed


def target_state(snapshot: SubscriptionSnapshot) -> str:
    try:
        state = STATUS_MAP[snapshot.provider][snapshot.status]
    except KeyError:
        raise SubscriptionSyncError(
            f"Unknown {snapshot.provider} subscription status '{snapshot.status}'.",
            code=ErrorCode.UNKNOWN_PROVIDER_STATUS,
        ) from None
    if state in (S.ACTIVE, S.TRIALING) and not snapshot.auto_renew:
        # Canceled by the customer: access continues until the period ends.
        end = snapshot.current_period_end
        state = S.CANCELED if end is None or end > snapshot.as_of else S.EXPIRED
    return state


def _identities(snapshot: SubscriptionSnapshot) -> list[tuple[str, str]]:
    pairs = [tuple(p) for p in snapshot.extra.get("identities", ()) if p and p[1]]
    if snapshot.customer_ref:
        kind = {
            Provider.STRIPE: ProviderIdentity.Kind.CUSTOMER_ID,
            Provider.APP_STORE: ProviderIdentity.Kind.APP_ACCOUNT_TOKEN,
            Provider.GOOGLE_PLAY: ProviderIdentity.Kind.OBFUSCATED_ACCOUNT_ID,
        }[snapshot.provider]
        pairs.insert(0, (kind, snapshot.customer_ref))
    return pairs


def customer_resolve(snapshot: SubscriptionSnapshot, customer: Customer | None = None) -> Customer:
    """The customer a provider subscription belongs to: a known identity, else the external id it carries."""
    pairs = _identities(snapshot)
    known: set[tuple[str, str]] = set()
    if pairs:
        q = Q()
        for kind, value in pairs:
            q |= Q(kind=kind, value=value)
        identities = list(ProviderIdentity.objects.filter(q, provider=snapshot.provider).select_related("customer"))
        if customer is None and identities:
            customer = identities[0].customer
        known = {(i.kind, i.value) for i in identities if customer is not None and i.customer_id == customer.pk}
    if customer is None:
        external_id = snapshot.extra.get("external_id") or ""
        if snapshot.provider == Provider.GOOGLE_PLAY and not external_id:
            # Apps commonly set obfuscatedExternalAccountId to the account id itself.
            external_id = snapshot.customer_ref
        if external_id:
            customer = Customer.objects.filter(external_id=external_id).first()
    if customer is None:
        raise SubscriptionSyncError(
            f"No customer for {snapshot.provider} subscription {snapshot.provider_subscription_id}.",
            code=ErrorCode.UNKNOWN_CUSTOMER,
        )
    missing = [
        ProviderIdentity(customer=customer, provider=snapshot.provider, kind=kind, value=value)
        for kind, value in pairs
        if (kind, value) not in known
    ]
    if missing:
        # Remember how this provider knows the customer, so later events resolve directly.
        ProviderIdentity.objects.bulk_create(missing, ignore_conflicts=True)
    return customer


_SKU_CACHE: dict[tuple[str, str, str], tuple[float, Sku]] = {}
_SKU_CACHE_TTL = 60.0


def sku_resolve(snapshot: SubscriptionSnapshot) -> Sku:
    """The SKU a store product id (+ base plan) names. Cached briefly per process: the catalog barely moves."""
    key = (snapshot.provider, snapshot.store_product_id, snapshot.base_plan_id)
    hit = _SKU_CACHE.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    sku = _sku_lookup(snapshot)
    _SKU_CACHE[key] = (time.monotonic() + _SKU_CACHE_TTL, sku)
    return sku


def _sku_lookup(snapshot: SubscriptionSnapshot) -> Sku:
    platform = PLATFORM_BY_PROVIDER[snapshot.provider]
    skus = Sku.objects.select_related("plan").filter(platform=platform, store_product_id=snapshot.store_product_id)
    sku = skus.filter(base_plan_id=snapshot.base_plan_id).first() or skus.first()
    if sku is None:
        raise SubscriptionSyncError(
            f"No {platform} SKU for store product '{snapshot.store_product_id}'"
            + (f" base plan '{snapshot.base_plan_id}'" if snapshot.base_plan_id else "")
            + ".",
            code=ErrorCode.UNKNOWN_SKU,
        )
    return sku


def _path(current: str, target: str) -> list[str]:
    """Transitions from ``current`` to ``target``; via ACTIVE when there is no direct edge."""
    if current == target:
        return []
    probe = Subscription(state=current)
    method = TRANSITION_TO[target]
    if current == S.PAUSED and target == S.ACTIVE:
        return ["resume"]
    from django_fsm import can_proceed

    if can_proceed(getattr(probe, method)):
        return [method]
    probe_active = Subscription(state=current)
    if can_proceed(probe_active.activate):
        probe_active = Subscription(state=S.ACTIVE)
        if target == S.ACTIVE or can_proceed(getattr(probe_active, method)):
            return ["activate"] if target == S.ACTIVE else ["activate", method]
    return []


def _field_updates(snapshot: SubscriptionSnapshot, target: str) -> dict:
    updates = {
        "current_period_start": snapshot.current_period_start,
        "current_period_end": snapshot.current_period_end,
        "trial_end": snapshot.trial_end,
        "auto_renew": snapshot.auto_renew,
        "quantity": snapshot.quantity,
    }
    # Derived from the snapshot alone (never from what an earlier event left), so any delivery order converges.
    if target not in (S.IN_GRACE_PERIOD, S.ON_HOLD):
        updates["grace_end"] = None
    elif snapshot.grace_end is not None:
        updates["grace_end"] = snapshot.grace_end
    # else: the transition derives it from the lapse and the rule in force (Stripe sends none).
    if snapshot.extra.get("hold_end") is not None:
        updates["hold_end"] = snapshot.extra["hold_end"]
    return {k: v for k, v in updates.items() if v is not None or k in ("grace_end", "trial_end")}


def _lock_or_create(snapshot: SubscriptionSnapshot, customer: Customer | None) -> tuple[Subscription, bool]:
    lookup = {"provider": snapshot.provider, "provider_subscription_id": snapshot.provider_subscription_id}
    # The customer is joined (the audit trail needs it); only the subscription row is locked.
    sub = Subscription.objects.select_for_update(of=("self",)).select_related("customer").filter(**lookup).first()
    if sub is not None:
        return sub, False
    resolved = customer_resolve(snapshot, customer)
    sku = sku_resolve(snapshot)
    try:
        with transaction.atomic():
            sub = Subscription.objects.create(
                customer=resolved,
                plan=sku.plan,
                sku=sku,
                platform=sku.platform,
                started_at=snapshot.current_period_start or snapshot.as_of,
                **lookup,
            )
    except IntegrityError:
        # Another worker created it a moment ago (two events about one new subscription).
        return Subscription.objects.select_for_update(of=("self",)).select_related("customer").get(**lookup), False
    audit_record(
        action="subscription.create",
        obj=sub,
        actor_kind="provider",
        actor_label=f"{snapshot.provider}:{snapshot.provider_subscription_id}"[:200],
        customer=resolved,
        after={"plan": sku.plan.code, "provider": snapshot.provider},
    )
    return sub, True


def subscription_sync_from_snapshot(
    *, snapshot: SubscriptionSnapshot, cause: Cause, customer: Customer | None = None
) -> SyncResult:
    """Create or converge the subscription a snapshot describes. Older snapshots change nothing.

    ``customer``: the customer a client app says it is (purchases API); a
    subscription already linked to someone else is refused with a conflict.
    """
    target = target_state(snapshot)
    with transaction.atomic(savepoint=False):
        sub, created = _lock_or_create(snapshot, customer)
        if customer is not None and sub.customer_id != customer.pk:
            raise Conflict(
                "This purchase belongs to another customer.", code=ErrorCode.PURCHASE_OWNED_BY_OTHER_CUSTOMER
            )
        if sub.last_event_at is not None and snapshot.as_of < sub.last_event_at:
            return SyncResult(subscription=sub, created=created, stale=True)
        if target == S.IN_GRACE_PERIOD and not sub.grace_configured():
            # "Retrying" without grace in force is billing retry: no access (Stripe past_due on web).
            target = S.ON_HOLD
        path = _path(sub.state, target)
        updates = _field_updates(snapshot, target)
        untracked = _untracked_updates(sub, snapshot, cause)
        saved_at = sub.updated_at
        if not path and sub.state != target:
            # Unreachable by our state machine (e.g. a resubscribe after a revocation): keep the
            # fields in step and leave the trail, without forcing the state.
            audit_record(
                action="subscription.sync_unreachable",
                obj=sub,
                actor_kind=cause.actor_kind,
                actor_label=cause.label,
                customer=sub.customer,
                before={"state": sub.state},
                after={"target": target, "provider_status": snapshot.status},
                reason=cause.reason,
            )
        for i, transition in enumerate(path):
            last = i == len(path) - 1
            kwargs = {"reason": snapshot.extra.get("cancel_reason", "")} if transition == "cancel" else None
            sub = subscription_change_state(
                subscription=sub,
                transition=transition,
                cause=cause,
                updates={**updates, **untracked} if last else None,
                transition_kwargs=kwargs,
                locked=True,  # _lock_or_create holds the row lock in this transaction
            )
        if not path:
            sub = subscription_change_state(
                subscription=sub, transition=None, cause=cause, updates={**updates, **untracked}, locked=True
            )
        if untracked and sub.updated_at == saved_at:
            # Nothing visible changed, so the state service saved nothing: keep the event clock moving anyway.
            Subscription.objects.filter(pk=sub.pk).update(**untracked)
    return SyncResult(subscription=sub, created=created, stale=False)


def _untracked_updates(sub: Subscription, snapshot: SubscriptionSnapshot, cause: Cause) -> dict:
    """Fields outside the state history: event clock, plan changes, Play acknowledgement."""
    changes: dict = {}
    if sub.last_event_at is None or snapshot.as_of > sub.last_event_at:
        changes["last_event_at"] = snapshot.as_of
    if snapshot.extra.get("acknowledged") and sub.acknowledged_at is None:
        changes["acknowledged_at"] = snapshot.extra.get("acknowledged_at") or clock.now()
    sku = sku_resolve(snapshot)
    if sku.pk != sub.sku_id:
        # Upgrade / crossgrade (downgrades reach us at renewal, when the store switches product).
        audit_record(
            action="subscription.change_plan",
            obj=sub,
            actor_kind=cause.actor_kind,
            actor_label=cause.label,
            customer=sub.customer,
            before={"plan": sub.plan.code},
            after={"plan": sku.plan.code},
            reason=cause.reason,
        )
        changes.update(plan_id=sku.plan_id, sku_id=sku.pk)
        from subscriptions.entitlements import entitlements_invalidate

        entitlements_invalidate([sub.customer.external_id])
    return changes


def subscription_revoke_for_refund(*, subscription: Subscription, cause: Cause, occurred_at, detail: dict) -> bool:
    """A full refund reported by the provider ends access. Returns whether anything changed.

    The money side (Refund row, ledger reversal) belongs to the refunds service;
    this only stops the entitlement and records why.
    """
    with transaction.atomic():
        sub = Subscription.objects.select_for_update().get(pk=subscription.pk)
        audit_record(
            action="subscription.refund_reported",
            obj=sub,
            actor_kind=cause.actor_kind,
            actor_label=cause.label,
            customer=sub.customer,
            after=detail,
            reason=cause.reason,
        )
        changed = False
        if sub.state != S.REVOKED:
            subscription_change_state(subscription=sub, transition="revoke", cause=cause)
            changed = True
        if sub.last_event_at is None or occurred_at > sub.last_event_at:
            Subscription.objects.filter(pk=sub.pk).update(last_event_at=occurred_at)
    return changed
