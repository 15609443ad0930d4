"""A subscription's state changes row by row: lock, transition, save, record, invalidate.

Staff actions, webhook appliers, the purchases API and the organizations' billing change
one subscription at a time through :func:`subscription_change_state` (the provider sync runs
the same steps for many rows at once; the lifecycle sweep makes the clock's moves in SQL from
the same declaration). Every change is recorded with its cause, every entitlement cache that
it touches is invalidated, and the state hooks hear of every change of state, wherever it
was made.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django_fsm import TransitionNotAllowed, can_proceed, has_transition_perm

from monetization import clock
from monetization.errors import IllegalTransition, InvalidInput, PermissionDenied
from monetization.models import AuditEvent, Customer
from monetization.registry import Registry
from monetization.services.audit import audit_event_build, audit_event_write, snapshot
from subscriptions.entitlements import entitlements_invalidate
from subscriptions.models import Plan, Sku, Subscription

# The fields shown as before/after in the history.
SNAPSHOT_FIELDS = [
    "state",
    "current_period_start",
    "current_period_end",
    "trial_end",
    "grace_end",
    "hold_end",
    "billing_issue_at",
    "auto_renew",
    "cancel_reason",
    "quantity",
]


@dataclass(frozen=True)
class Cause:
    """Who or what caused a change: a staff user, a provider event, a task, a client app."""

    actor_kind: str = AuditEvent.ActorKind.SYSTEM
    label: str = ""  # e.g. "stripe:evt_123", "task:lifecycle_sweep", "api-key:ios-app"
    user: Any = None
    reason: str = ""
    # Set when the staff user acts under another permission that already covers this
    # change (a refund that revokes access): the transition's own permission is not asked.
    authorized_by: str = ""

    @classmethod
    def staff(cls, user, reason: str) -> Cause:
        return cls(actor_kind=AuditEvent.ActorKind.STAFF, user=user, label=user.get_username(), reason=reason)

    @classmethod
    def staff_consequence(cls, user, reason: str, *, authorized_by: str) -> Cause:
        """A state change that follows from a staff action authorized by ``authorized_by`` (a permission)."""
        return cls(
            actor_kind=AuditEvent.ActorKind.STAFF,
            user=user,
            label=user.get_username(),
            reason=reason,
            authorized_by=authorized_by,
        )

    @classmethod
    def provider_event(cls, provider: str, event_id: str, reason: str = "") -> Cause:
        return cls(actor_kind=AuditEvent.ActorKind.PROVIDER, label=f"{provider}:{event_id}", reason=reason)

    @classmethod
    def task(cls, name: str, reason: str = "") -> Cause:
        return cls(actor_kind=AuditEvent.ActorKind.SYSTEM, label=f"task:{name}", reason=reason)


@dataclass(frozen=True)
class StateMoves:
    """Subscriptions moved from ``source`` to ``target`` by one cause: one row changed by a
    service (``subscriptions`` holds it, loaded and locked), or a chunk of the lifecycle sweep
    (ids only)."""

    source: str
    target: str
    transition: str | None
    cause: Cause
    subscription_ids: Sequence[int]
    subscriptions: Sequence[Subscription] = ()


# Other apps follow subscription state changes (an organization's subscription drives the
# organization's suspension): state_hooks.register(name, fn(moves: StateMoves)) from AppConfig.ready().
# Unlike django-fsm's post_transition (fired before the row is saved, and never by the set-based
# sweep), a hook runs after the change is saved and audited, inside the same transaction and with
# the subscriptions locked, so what it does commits or rolls back with the change; the sweep calls
# the hooks once per chunk.
StateHook = Callable[[StateMoves], None]
state_hooks: Registry[StateHook] = Registry("subscription state hook")


def state_hooks_run(moves: StateMoves) -> None:
    if moves.source != moves.target and moves.subscription_ids:
        for hook in state_hooks:
            hook(moves)


def _keep_in_step(target: Subscription, source: Subscription) -> None:
    """What ``target.refresh_from_db()`` would do, from ``source`` (the same row, locked and just saved
    in this transaction), without the query: every column, FK caches (taken over from ``source`` when it
    has them), reverse-relation and prefetch caches cleared."""
    for f in Subscription._meta.concrete_fields:
        # Through __dict__: the FSM state field is protected against setattr.
        target.__dict__[f.attname] = source.__dict__[f.attname]
        if f.is_relation:
            if f.is_cached(source):
                f.set_cached_value(target, f.get_cached_value(source))
            elif f.is_cached(target):
                f.delete_cached_value(target)
    for f in Subscription._meta.related_objects:
        if f.is_cached(target):
            f.delete_cached_value(target)
    for f in Subscription._meta.private_fields:
        if f.is_relation and f.is_cached(target):
            f.delete_cached_value(target)
    target._state.db = source._state.db
    target._state.adding = False
    if hasattr(target, "_prefetched_objects_cache"):
        del target._prefetched_objects_cache


@dataclass(frozen=True)
class StateChange:
    """A change made to a locked subscription in memory, not yet saved (before/after as audited)."""

    transition: str | None
    before: dict[str, Any]
    after: dict[str, Any]

    def audit_event(self, sub: Subscription, *, action: str | None, cause: Cause) -> AuditEvent:
        return audit_event_build(
            action=action or f"subscription.{self.transition or 'update'}",
            obj=sub,
            actor=cause.user,
            actor_kind=cause.actor_kind,
            actor_label=cause.label,
            customer=sub.customer,
            before=self.before,
            after=self.after,
            reason=cause.reason,
        )

    def record(self, sub: Subscription, cause: Cause) -> None:
        """After the row is saved and audited: forget cached entitlements on commit, tell the other apps."""
        entitlements_invalidate([sub.customer.external_id])
        self.run_hooks(sub, cause)

    def run_hooks(self, sub: Subscription, cause: Cause) -> None:
        state_hooks_run(
            StateMoves(
                source=self.before["state"],
                target=self.after["state"],
                transition=self.transition,
                cause=cause,
                subscription_ids=[sub.pk],
                subscriptions=[sub],
            )
        )


def subscription_change_in_memory(
    sub: Subscription,
    *,
    transition: str | None,
    cause: Cause,
    updates: dict[str, Any] | None = None,
    transition_kwargs: dict[str, Any] | None = None,
) -> StateChange | None:
    """Check and run ``transition`` plus field ``updates`` on a locked ``sub``, in memory.

    Refuses an illegal transition with :class:`IllegalTransition` (``sub`` unchanged).
    Returns None when nothing visible changed; otherwise the change, stamped
    ``updated_at``, for the caller to save, audit and :meth:`StateChange.record`
    (one row at a time here, in bulk in the provider sync).
    """
    if cause.actor_kind == AuditEvent.ActorKind.STAFF and not cause.reason.strip():
        raise InvalidInput("A staff change to a subscription needs a reason.")
    before = snapshot(sub, SNAPSHOT_FIELDS)
    if transition:
        method = getattr(sub, transition, None)
        if method is None or not hasattr(method, "_django_fsm"):
            raise InvalidInput(f"Unknown subscription transition '{transition}'.")
        if not can_proceed(method):
            raise IllegalTransition(f"Cannot {transition} a subscription that is {sub.state}.")
        # Staff act under the permission the transition declares (Meta.permissions, roles.py).
        if cause.user is not None and not cause.authorized_by and not has_transition_perm(method, cause.user):
            raise PermissionDenied(f"You may not {transition} subscriptions.")
        try:
            method(**(transition_kwargs or {}))
        except TransitionNotAllowed as exc:  # a condition failed
            raise IllegalTransition(str(exc)) from exc
    for name, value in (updates or {}).items():
        setattr(sub, name, value)
    after = snapshot(sub, SNAPSHOT_FIELDS)
    if before == after:
        return None
    sub.updated_at = clock.now()
    return StateChange(transition=transition, before=before, after=after)


def subscription_lock(subscription_id: int) -> Subscription:
    # of=("self",): lock the subscription only, not its customer row (joined for the audit record).
    return Subscription.objects.select_for_update(of=("self",)).select_related("customer").get(pk=subscription_id)


def subscription_change_state(
    *,
    subscription: Subscription,
    transition: str | None,
    cause: Cause,
    updates: dict[str, Any] | None = None,
    action: str | None = None,
    transition_kwargs: dict[str, Any] | None = None,
) -> Subscription:
    """Apply ``transition`` (a method name on Subscription, or None) plus field ``updates``.

    Locks the row, refuses an illegal transition with :class:`IllegalTransition`
    (nothing changes), records an audit event with before/after and cause, and
    invalidates the customer's cached entitlements on commit. Returns the
    locked, saved subscription. (The provider sync, which locks many rows at once,
    runs the same steps in bulk: :func:`subscription_change_in_memory`, :class:`StateChange`.)
    """
    with transaction.atomic():
        sub = subscription_lock(subscription.pk)
        change = subscription_change_in_memory(
            sub, transition=transition, cause=cause, updates=updates, transition_kwargs=transition_kwargs
        )
        if change is None:
            return sub
        sub.save()
        audit_event_write(change.audit_event(sub, action=action, cause=cause))
        change.record(sub, cause)
    # Keep the caller's instance in step with the database (what was just saved, under the lock).
    _keep_in_step(subscription, sub)
    return sub


def subscription_create(
    *,
    customer: Customer,
    plan: Plan,
    provider: str,
    provider_subscription_id: str,
    cause: Cause,
    sku: Sku | None = None,
    platform: str = "",
    quantity: int = 1,
    started_at: datetime | None = None,
) -> Subscription:
    """A subscription that our own billing sells (an organization's seats), created pending and
    audited; its first paid period activates it (``subscription_change_state``)."""
    sub = Subscription(
        customer=customer,
        plan=plan,
        sku=sku,
        platform=platform or (sku.platform if sku is not None else ""),
        provider=provider,
        provider_subscription_id=provider_subscription_id,
        quantity=quantity,
        started_at=started_at or clock.now(),
    )
    sub.full_clean(exclude=["state"])  # protected: only transitions set it
    with transaction.atomic():
        sub.save()
        audit_event_write(
            audit_event_build(
                action="subscription.create",
                obj=sub,
                actor=cause.user,
                actor_kind=cause.actor_kind,
                actor_label=cause.label,
                customer=customer,
                after={"plan": plan.code, "provider": provider, "quantity": quantity},
                reason=cause.reason,
            )
        )
    return sub


def subscription_quantity_set(*, subscription: Subscription, quantity: int) -> Subscription:
    """The seat count of a subscription whose seats a product app keeps in a ledger of its own (the
    ledger rows are the history, so no audit row here). Call with the subscription locked."""
    if quantity < 0:
        raise InvalidInput("A subscription's quantity cannot be negative.")
    now = clock.now()
    Subscription.objects.filter(pk=subscription.pk).update(quantity=quantity, updated_at=now)
    subscription.quantity, subscription.updated_at = quantity, now
    return subscription


# --- paths through the declared transitions -------------------------------------------------


@functools.cache
def _transitions_by_source() -> dict[str, list]:
    """The declared transitions that change state, by source; to ACTIVE first (a paid period is the plain
    way back into the billing cycle), then those declared for fewer states (a paused subscription
    resumes rather than activates)."""
    transitions = [
        t
        for t in Subscription._meta.get_field("state").get_all_transitions(Subscription)
        if t.target is not None and t.target != t.source and t.source not in ("*", "+")
    ]
    sources = {}
    for t in transitions:
        sources[t.name] = sources.get(t.name, 0) + 1
    by_source: dict[str, list] = {}
    for t in sorted(transitions, key=lambda t: (t.target != Subscription.State.ACTIVE, sources[t.name], t.name)):
        by_source.setdefault(t.source, []).append(t)
    return by_source


def _paths(by_source: dict[str, list], current: str, target: str, length: int) -> Iterator[list]:
    if length == 0:
        if current == target:
            yield []
        return
    for t in by_source.get(current, ()):
        for rest in _paths(by_source, t.target, target, length - 1):
            yield [t, *rest]


def _legal(sub: Subscription, path: list) -> bool:
    """Would each step be allowed, conditions included, on this subscription as the previous ones leave it?"""
    probe = copy.copy(sub)  # the transitions' own bodies run on a copy: no signal, nothing saved
    for t in path:
        meta = t.method._django_fsm
        if probe.state != t.source or not meta.conditions_met(probe, probe.state):
            return False
        t.method(probe)
        probe.__dict__["state"] = t.target  # the FSM field is protected against setattr
    return True


def transition_path(subscription: Subscription, target: str, *, max_steps: int = 3) -> list[str]:
    """The transitions that take ``subscription`` to ``target``: the shortest chain the model allows,
    conditions included, of the declared transitions that change state ([] when none, or already there)."""
    if subscription.state == target:
        return []
    by_source = _transitions_by_source()
    for length in range(1, max_steps + 1):
        for path in _paths(by_source, subscription.state, target, length):
            if _legal(subscription, path):
                return [t.name for t in path]
    return []
