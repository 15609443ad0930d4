"""Converge a subscription to what its provider says: the one place provider truth enters.

Provider events, ``resync_provider`` and ``POST /purchases`` all end here with
a :class:`SubscriptionSnapshot`. Its status (each provider package maps its own
to :class:`SubscriptionStatus`) is mapped to our state, the subscription is
created when it is new (customer resolved through a provider identity, SKU
through the store product id) and moved to the target state with the state
service's own steps (:mod:`subscriptions.services.lifecycle`).

Ordering: providers deliver at least once and out of order. Each snapshot
carries the provider's own timestamp (``as_of``); a subscription remembers the
newest one it applied (``last_event_at``) and an older snapshot changes
nothing. Because every snapshot is a full picture (not a delta), applying the
newest one last is enough to converge, whatever order the rest came in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.db import IntegrityError, transaction
from django.db.models import Q

from monetization import clock
from monetization.bulk import bulk_update_rows
from monetization.errors import ErrorCode, InvalidInput
from monetization.models import AuditEvent, Customer, Provider, ProviderIdentity
from monetization.providers.base import (
    Acknowledgement,
    CancelReason,
    PriceIncrease,
    RetryableApplyError,
    SubscriptionSnapshot,
    SubscriptionStatus,
)
from monetization.registry import Registry
from monetization.services.audit import audit_event_build, audit_events_write, audit_record
from monetization.webhook_queue import webhook_events_wake
from subscriptions.entitlements import entitlements_invalidate
from subscriptions.models import Platform, Sku, Subscription
from subscriptions.services.lifecycle import (
    Cause,
    StateChange,
    subscription_change_in_memory,
    subscription_change_state,
    transition_path,
)
from subscriptions.services.store_offers import store_offers_record
from subscriptions.services.transfers import (
    KEEP,
    PURCHASE_IDENTITY_KINDS,
    TRANSFER,
    named_owner,
    ownership_rule,
    purchase_owned_elsewhere,
    subscription_transfer,
)

S = Subscription.State

# A product app that keeps a subscription's seat count in a ledger of its own and pushes it to the
# provider (organizations) says which counts it held from a moment on: the provider echoes each
# push in its own time (an event about quantity 1 may arrive after we pushed 2), and an echo is no
# conflict. pushed_quantities.register(name, fn(subscription, since) -> set of counts or None).
PushedQuantities = Callable[[Subscription, datetime], "set[int] | None"]
pushed_quantities: Registry[PushedQuantities] = Registry("pushed subscription quantities")
# How far the provider's event clock may run behind the moment we recorded a push.
PUSH_ECHO_SKEW = timedelta(minutes=5)


def _quantity_echoed(sub: Subscription, quantity: int, as_of: datetime) -> bool:
    """The provider's count is one we pushed and held at or after the snapshot's moment."""
    for source in pushed_quantities:
        held = source(sub, as_of - PUSH_ECHO_SKEW)
        if held and quantity in held:
            return True
    return False


PLATFORM_BY_PROVIDER = {
    Provider.STRIPE: Platform.WEB,
    Provider.APP_STORE: Platform.IOS,
    Provider.GOOGLE_PLAY: Platform.ANDROID,
}

# Where a subscription stands, in our states. A renewing state with auto-renew off becomes
# CANCELED (access until the period ends) in ``target_state``.
STATE_FOR_STATUS: dict[str, str] = {
    SubscriptionStatus.PENDING: S.PENDING,
    SubscriptionStatus.TRIALING: S.TRIALING,
    SubscriptionStatus.ACTIVE: S.ACTIVE,
    # Access continues only where grace is configured (the product's or the platform's);
    # see subscriptions_sync_from_snapshots.
    SubscriptionStatus.GRACE: S.IN_GRACE_PERIOD,
    SubscriptionStatus.ON_HOLD: S.ON_HOLD,
    SubscriptionStatus.PAUSED: S.PAUSED,
    SubscriptionStatus.CANCELED: S.CANCELED,
    SubscriptionStatus.EXPIRED: S.EXPIRED,
    SubscriptionStatus.REVOKED: S.REVOKED,
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
        state = STATE_FOR_STATUS[snapshot.status]
    except KeyError:
        raise SubscriptionSyncError(
            f"Unknown {snapshot.provider} subscription status '{snapshot.provider_status or snapshot.status}'.",
            code=ErrorCode.UNKNOWN_PROVIDER_STATUS,
        ) from None
    if state in (S.ACTIVE, S.TRIALING) and not snapshot.auto_renew:
        # Canceled by the customer: access continues until the period ends.
        end = snapshot.current_period_end
        state = S.CANCELED if end is None or end > snapshot.as_of else S.EXPIRED
    return state


def _identities(snapshot: SubscriptionSnapshot) -> list[tuple[str, str]]:
    return [(kind, value) for kind, value in snapshot.identities if value]


def customers_resolve(items: Sequence[tuple[SubscriptionSnapshot, Customer | None]]) -> list[Customer]:
    """The customer each provider subscription belongs to (or the one given): one query for identities,
    one for external ids, one insert.

    An identity the snapshot names (its customer ref first) picks the customer; else the
    external id it carries. The identities not yet known are remembered, so later events
    resolve directly. Raises :class:`SubscriptionSyncError` for a snapshot nobody owns.
    """
    pairs = [[(s.provider, kind, value) for kind, value in _identities(s)] for s, _ in items]
    wanted = {p for ps in pairs for p in ps}
    by_pair: dict[tuple[str, str, str], ProviderIdentity] = {}
    if wanted:
        q = Q()
        for provider, kind, value in wanted:
            q |= Q(provider=provider, kind=kind, value=value)
        rows = ProviderIdentity.objects.filter(q).select_related("customer")
        by_pair = {(i.provider, i.kind, i.value): i for i in rows}
    customers: list[Customer | None] = []
    for (_snapshot, customer), ps in zip(items, pairs, strict=True):
        if customer is None:
            customer = next((by_pair[p].customer for p in ps if p in by_pair), None)
        customers.append(customer)
    external_ids = {}
    for i, ((snapshot, _), customer) in enumerate(zip(items, customers, strict=True)):
        if customer is None:
            external_ids[i] = snapshot.external_id
    if any(external_ids.values()):
        found = Customer.objects.in_bulk([x for x in external_ids.values() if x], field_name="external_id")
        for i, external_id in external_ids.items():
            customers[i] = found.get(external_id) if external_id else None
    missing: dict[tuple[str, str, str], ProviderIdentity] = {}
    for (snapshot, _), customer, ps in zip(items, customers, pairs, strict=True):
        if customer is None:
            raise SubscriptionSyncError(
                f"No customer for {snapshot.provider} subscription {snapshot.provider_subscription_id}.",
                code=ErrorCode.UNKNOWN_CUSTOMER,
            )
        for p in ps:
            known = by_pair.get(p)
            if (known is None or known.customer_id != customer.pk) and p not in missing:
                missing[p] = ProviderIdentity(customer=customer, provider=p[0], kind=p[1], value=p[2])
    if missing:
        ProviderIdentity.objects.bulk_create(missing.values(), ignore_conflicts=True)
        _wake((p[0], p[2]) for p in missing)
    return customers


def _wake(subjects) -> None:
    """Queue the provider events that waited for these (provider, ref) subjects, now known."""
    by_provider: dict[str, list[str]] = {}
    for provider, ref in subjects:
        by_provider.setdefault(provider, []).append(ref)
    for provider, refs in by_provider.items():
        webhook_events_wake(provider=provider, subject_refs=refs)


_SKU_CACHE: dict[tuple[str, str, str], tuple[float, Sku]] = {}
_SKU_CACHE_TTL = 60.0


def sku_resolve(snapshot: SubscriptionSnapshot) -> Sku:
    """The SKU a store product id (+ base plan) names. Cached briefly per process: the catalog barely moves."""
    return sku_for(snapshot.provider, snapshot.store_product_id, snapshot.base_plan_id)


def sku_for(provider: str, store_product_id: str, base_plan_id: str = "") -> Sku:
    """The SKU of ``provider``'s store product id (+ base plan), cached as :func:`sku_resolve`."""
    key = (provider, store_product_id, base_plan_id)
    hit = _SKU_CACHE.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    sku = _sku_lookup(provider, store_product_id, base_plan_id)
    _SKU_CACHE[key] = (time.monotonic() + _SKU_CACHE_TTL, sku)
    return sku


def _sku_lookup(provider: str, store_product_id: str, base_plan_id: str) -> Sku:
    platform = PLATFORM_BY_PROVIDER[provider]
    skus = Sku.objects.select_related("plan__product").filter(platform=platform, store_product_id=store_product_id)
    sku = skus.filter(base_plan_id=base_plan_id).first() or skus.first()
    if sku is None and platform == Platform.WEB:
        # A web price change's Stripe price (pushed to existing subscribers at renewal) is the plan's SKU too.
        sku = (
            Sku.objects.select_related("plan__product")
            .filter(platform=platform, plan__price_changes__stripe_price_id=store_product_id)
            .first()
        )
    if sku is None:
        raise SubscriptionSyncError(
            f"No {platform} SKU for store product '{store_product_id}'"
            + (f" base plan '{base_plan_id}'" if base_plan_id else "")
            + ".",
            code=ErrorCode.UNKNOWN_SKU,
        )
    return sku


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


def _cancel_reason_update(sub: Subscription, snapshot: SubscriptionSnapshot, target: str) -> dict:
    """The provider's reason a subscription stopped renewing or ended (win-back rules read it), also when
    no transition runs (an expiry that names its reason after the cancellation did). A reason staff typed
    (not one of the providers' words) is kept."""
    reason = snapshot.cancel_reason
    if not reason or target not in (S.CANCELED, S.EXPIRED) or sub.cancel_reason == reason:
        return {}
    if sub.cancel_reason and sub.cancel_reason not in CancelReason._value2member_map_:
        return {}
    return {"cancel_reason": reason}


def _key(snapshot: SubscriptionSnapshot) -> tuple[str, str]:
    return snapshot.provider, snapshot.provider_subscription_id


def _lock(keys: set[tuple[str, str]]) -> dict[tuple[str, str], Subscription]:
    """Lock the subscriptions with these provider keys (in id order, so two batches can't deadlock)."""
    if not keys:
        return {}
    by_provider: dict[str, list[str]] = {}
    for provider, sub_id in keys:
        by_provider.setdefault(provider, []).append(sub_id)
    q = Q()
    for provider, sub_ids in by_provider.items():
        q |= Q(provider=provider, provider_subscription_id__in=sub_ids)
    # The customer (for the audit trail) and the product (its grace rule) are joined; only subscriptions are locked.
    rows = (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("customer", "plan__product")
        .filter(q)
        .order_by("pk")
    )
    return {(s.provider, s.provider_subscription_id): s for s in rows}


def _lock_or_create(requests: Sequence[SyncRequest]) -> tuple[dict[tuple[str, str], Subscription], set]:
    """Lock the known subscriptions and insert the new ones (in the state ``pending``, audited).

    Returns the subscriptions by provider key and the keys created here. A subscription
    another worker inserted a moment ago (two events about one new subscription) is
    locked as a known one: the insert waits for that worker's commit, fails on the
    unique key and is retried for what is still missing. Each failed insert makes at
    least one more key known, so a batch racing several workers on several new keys
    (one conflict after another) needs as many retries: not a fixed two.
    """
    keys = {_key(r.snapshot) for r in requests}
    subs = _lock(keys)
    created: set[tuple[str, str]] = set()
    while True:
        new = [r for r in requests if _key(r.snapshot) not in subs]
        if not new:
            break
        first = {}
        for r in new:
            first.setdefault(_key(r.snapshot), r)
        new = list(first.values())
        resolved = customers_resolve([(r.snapshot, r.customer) for r in new])
        rows = []
        for r, customer in zip(new, resolved, strict=True):
            sku = sku_resolve(r.snapshot)
            rows.append(
                Subscription(
                    customer=customer,
                    plan=sku.plan,
                    sku=sku,
                    platform=sku.platform,
                    provider=r.snapshot.provider,
                    provider_subscription_id=r.snapshot.provider_subscription_id,
                    started_at=r.snapshot.current_period_start or r.snapshot.as_of,
                )
            )
        try:
            with transaction.atomic():
                Subscription.objects.bulk_create(rows)
        except IntegrityError as exc:
            found = _lock({_key(r.snapshot) for r in new})
            if not found:
                # Not a subscription another worker inserted (we would see it now): a retry later may.
                raise RetryableApplyError(f"subscription insert conflicted and the row is not visible: {exc}") from exc
            subs.update(found)
            continue
        for r, sub in zip(new, rows, strict=True):
            subs[_key(r.snapshot)] = sub
            created.add(_key(r.snapshot))
        _wake(_key(r.snapshot) for r in new)
        audit_events_write(
            [
                audit_event_build(
                    action="subscription.create",
                    obj=sub,
                    actor_kind="provider",
                    actor_label=f"{r.snapshot.provider}:{r.snapshot.provider_subscription_id}"[:200],
                    customer=sub.customer,
                    after={"plan": sub.plan.code, "provider": r.snapshot.provider},
                )
                for r, sub in zip(new, rows, strict=True)
            ]
        )
        break
    return subs, created


@dataclass(frozen=True)
class SyncRequest:
    snapshot: SubscriptionSnapshot
    cause: Cause
    # The customer a client app says it is (purchases API); a subscription already
    # linked to someone else follows PURCHASE_OWNERSHIP_RULE (subscriptions.services.transfers).
    customer: Customer | None = None


def subscription_sync_from_snapshot(
    *, snapshot: SubscriptionSnapshot, cause: Cause, customer: Customer | None = None
) -> SyncResult:
    """Create or converge the subscription a snapshot describes. Older snapshots change nothing."""
    return subscriptions_sync_from_snapshots([SyncRequest(snapshot=snapshot, cause=cause, customer=customer)])[0]


# The columns a provider sync may change (saved by name, so concurrent writers of others are untouched).
_SYNCED_FIELDS = [
    "state",
    "plan",
    "sku",
    "current_period_start",
    "current_period_end",
    "trial_end",
    "grace_end",
    "hold_end",
    "billing_issue_at",
    "auto_renew",
    "cancel_reason",
    "price_increase",
    "price_consented_at",
    "quantity",
    "ended_at",
    "last_event_at",
    "acknowledged_at",
    "updated_at",
]


def subscriptions_sync_from_snapshots(requests: Sequence[SyncRequest]) -> list[SyncResult]:
    """Create or converge the subscriptions the snapshots describe, in order, in one transaction.

    The same rules as one at a time (an older snapshot changes nothing, every state
    change audited with its cause, entitlements invalidated on commit, state hooks
    called after the change is saved and audited), with the reads and writes done
    in bulk: one lock query, one insert for new subscriptions, one update, one
    audit insert. Any error aborts the whole call (the caller's transaction rolls
    back); callers that batch fall back to one at a time to isolate it.
    """
    targets = [target_state(r.snapshot) for r in requests]
    with transaction.atomic(savepoint=False):
        subs, created_keys = _lock_or_create(requests)
        results: list[SyncResult] = []
        audits: list[Callable[[], AuditEvent]] = []
        changes: list[tuple[Subscription, StateChange, Cause]] = []
        dirty: dict[int, Subscription] = {}
        named = _accounts_named(requests, subs, created_keys)
        for index, (request, target) in enumerate(zip(requests, targets, strict=True)):
            snapshot, cause = request.snapshot, request.cause
            key = _key(snapshot)
            sub = subs[key]
            created = key in created_keys
            created_keys.discard(key)  # only the first request about a new subscription created it
            if request.customer is not None and sub.customer_id != request.customer.pk:
                # A purchase presented by another customer (a restore on a new login): the configured rule.
                if ownership_rule() == KEEP:
                    raise purchase_owned_elsewhere(sub)
                subscription_transfer(subscription=sub, target=request.customer, cause=cause)
            if sub.last_event_at is not None and snapshot.as_of < sub.last_event_at:
                results.append(SyncResult(subscription=sub, created=created, stale=True))
                continue
            if index in named:
                _named_account_apply(sub, named[index], cause)
            if target == S.IN_GRACE_PERIOD and not sub.grace_configured():
                # "Retrying" without grace in force is billing retry: no access (Stripe past_due on web).
                target = S.ON_HOLD
            path = transition_path(sub, target)
            untracked = _untracked_updates(sub, snapshot, cause, audits)
            updates = {**_field_updates(snapshot, target), **untracked, **_cancel_reason_update(sub, snapshot, target)}
            if sub.is_organization_subscription() and updates.get("quantity", sub.quantity) != sub.quantity:
                # An organization's seat count is ours (the seat ledger), pushed to the provider: a
                # different count from the provider is flagged for Finance, never applied; the echo of
                # a count we pushed (and held since the event's moment) is no conflict.
                provider_quantity = updates.pop("quantity")
                if not _quantity_echoed(sub, provider_quantity, snapshot.as_of):
                    audits.append(
                        partial(
                            audit_event_build,
                            action="subscription.quantity_conflict",
                            obj=sub,
                            actor_kind=cause.actor_kind,
                            actor_label=cause.label,
                            customer=sub.customer,
                            before={"quantity": sub.quantity},
                            after={"provider_quantity": provider_quantity},
                            reason="The provider's seat count differs from ours: reconcile.",
                        )
                    )
            if not path and sub.state != target:
                # Unreachable by our state machine (e.g. a resubscribe after a revocation): keep the
                # fields in step and leave the trail, without forcing the state.
                audits.append(
                    partial(
                        audit_event_build,
                        action="subscription.sync_unreachable",
                        obj=sub,
                        actor_kind=cause.actor_kind,
                        actor_label=cause.label,
                        customer=sub.customer,
                        before={"state": sub.state},
                        after={"target": target, "provider_status": snapshot.provider_status},
                        reason=cause.reason,
                    )
                )
            steps = path or [None]  # no transition: the field updates alone
            for i, transition in enumerate(steps):
                last = i == len(steps) - 1
                kwargs = {"reason": snapshot.cancel_reason} if transition == "cancel" else None
                change = subscription_change_in_memory(
                    sub, transition=transition, cause=cause, updates=updates if last else None, transition_kwargs=kwargs
                )
                if change is not None:
                    changes.append((sub, change, cause))
                    audits.append(partial(change.audit_event, sub, action=None, cause=cause))
                    dirty[sub.pk] = sub
            if untracked:  # the event clock, a plan change, an acknowledgement: saved even when nothing visible moved
                dirty[sub.pk] = sub
            results.append(SyncResult(subscription=sub, created=created, stale=False))
        _save(list(dirty.values()))
        # The offers the store says each subscription is under (introductory offers, store codes).
        store_offers_record(
            [
                (subs[_key(request.snapshot)], request.snapshot)
                for request, result in zip(requests, results, strict=True)
                if not result.stale
            ]
        )
        audit_events_write([build() for build in audits])
        entitlements_invalidate({sub.customer.external_id for sub, _change, _cause in changes})
        for sub, change, cause in changes:
            change.run_hooks(sub, cause)
    return results


def _accounts_named(
    requests: Sequence[SyncRequest], subs: dict[tuple[str, str], Subscription], created_keys: set
) -> dict[int, Customer]:
    """The customer each provider snapshot names as its account where that is not the subscription's owner
    (by request index). Our external id, when the provider carries it, decides (no query when it is the
    owner's); otherwise the account id the snapshot names (App Store app account token, Stripe customer):
    one query for the batch, only for snapshots that name one."""
    by_external: dict[int, str] = {}
    by_identity: dict[int, tuple[str, str, str]] = {}
    for index, request in enumerate(requests):
        snapshot = request.snapshot
        key = _key(snapshot)
        if request.customer is not None or key in created_keys:
            continue
        owner = subs[key].customer
        if snapshot.external_id:
            if snapshot.external_id != owner.external_id:
                by_external[index] = snapshot.external_id
            continue
        account = next((pair for pair in _identities(snapshot) if pair[0] not in PURCHASE_IDENTITY_KINDS), None)
        if account is not None:
            by_identity[index] = (snapshot.provider, *account)
    named: dict[int, Customer] = {}
    if by_identity:
        q = Q()
        for provider, kind, value in set(by_identity.values()):
            q |= Q(provider=provider, kind=kind, value=value)
        owners = {
            (i.provider, i.kind, i.value): i.customer
            for i in ProviderIdentity.objects.filter(q).select_related("customer")
        }
        for index, pair in by_identity.items():
            owner = owners.get(pair)
            if owner is not None and owner.pk != subs[_key(requests[index].snapshot)].customer_id:
                named[index] = owner
    if by_external:
        found = Customer.objects.in_bulk(set(by_external.values()), field_name="external_id")
        named.update({index: found[x] for index, x in by_external.items() if x in found})
    return named


def _named_account_apply(sub: Subscription, named: Customer, cause: Cause) -> None:
    """A provider event names another account as the purchase's: the configured rule."""
    new_owner = named_owner(sub, named)
    if new_owner is None:
        return
    if ownership_rule() == TRANSFER:
        subscription_transfer(subscription=sub, target=new_owner, cause=cause)
        return
    audit_record(
        action="subscription.ownership_kept",
        obj=sub,
        actor_kind=cause.actor_kind,
        actor_label=cause.label,
        customer=sub.customer,
        after={"named_customer": new_owner.external_id},
        reason="The provider names another account; PURCHASE_OWNERSHIP_RULE keeps the purchase with its owner.",
    )


def _save(subs: list[Subscription]) -> None:
    if len(subs) == 1:
        subs[0].save(update_fields=_SYNCED_FIELDS)
    elif subs:
        bulk_update_rows(subs, _SYNCED_FIELDS)


def _untracked_updates(
    sub: Subscription, snapshot: SubscriptionSnapshot, cause: Cause, audits: list[Callable[[], AuditEvent]]
) -> dict:
    """Fields outside the state history: event clock, price increase consent, plan changes, Play acknowledgement."""
    changes: dict = {}
    if sub.last_event_at is None or snapshot.as_of > sub.last_event_at:
        changes["last_event_at"] = snapshot.as_of
    if snapshot.acknowledgement == Acknowledgement.ACKNOWLEDGED and sub.acknowledged_at is None:
        changes["acknowledged_at"] = snapshot.acknowledged_at or clock.now()
    if snapshot.price_increase and snapshot.price_increase != sub.price_increase:
        # A store's price increase, as the subscriber answered it. Only a consent moves their price
        # (subscription_price); a snapshot that no longer names one (the increase applied) changes nothing.
        changes["price_increase"] = snapshot.price_increase
        if snapshot.price_increase == PriceIncrease.ACCEPTED:
            changes["price_consented_at"] = snapshot.as_of
        audits.append(
            partial(
                audit_event_build,
                action="subscription.price_increase",
                obj=sub,
                actor_kind=cause.actor_kind,
                actor_label=cause.label,
                customer=sub.customer,
                before={"price_increase": sub.price_increase},
                after={"price_increase": snapshot.price_increase},
                reason=cause.reason,
            )
        )
    sku = sku_resolve(snapshot)
    if sku.pk != sub.sku_id:
        # Upgrade / crossgrade (downgrades reach us at renewal, when the store switches product).
        audits.append(
            partial(
                audit_event_build,
                action="subscription.change_plan",
                obj=sub,
                actor_kind=cause.actor_kind,
                actor_label=cause.label,
                customer=sub.customer,
                before={"plan": sub.plan.code},
                after={"plan": sku.plan.code},
                reason=cause.reason,
            )
        )
        changes.update(plan=sku.plan, sku=sku)
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
