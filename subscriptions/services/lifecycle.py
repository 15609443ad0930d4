"""Changing one subscription's state: lock, transition, save, record, invalidate.

Staff actions, provider events applied one at a time and organization billing go
through :func:`subscription_change_state`, so the change is recorded with its cause
and every entitlement cache it touches is invalidated. The provider sync runs the
same steps in bulk (:func:`subscription_change_in_memory`, :class:`StateChange`);
the lifecycle sweep moves rows set-based in SQL, records their history itself and
calls no state hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django_fsm import TransitionNotAllowed, can_proceed, has_transition_perm

from monetization import clock
from monetization.errors import IllegalTransition, InvalidInput, PermissionDenied
from monetization.models import AuditEvent
from monetization.registry import Registry
from monetization.services.audit import audit_event_build, audit_event_write, snapshot
from subscriptions.entitlements import entitlements_invalidate
from subscriptions.models import Subscription

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


# Other apps follow subscription state changes (an organization's subscription drives the
# organization's suspension): state_hooks.register(name, fn(subscription, source, target, cause))
# from AppConfig.ready(). Unlike django-fsm's post_transition (fired before the row is saved,
# and before the field updates), a hook runs after the change is saved and audited, inside the
# same transaction and with the subscription row locked, so what it does commits or rolls back
# with the change. The set-based lifecycle sweep moves rows in SQL and calls no hooks: an app
# that must see those moves reconciles from the rows (verified_orgs' grace sweep does).
StateHook = Callable[[Subscription, str, str, "Cause"], None]
state_hooks: Registry[StateHook] = Registry("subscription state hook")


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
        if self.before["state"] != self.after["state"]:
            for hook in state_hooks:
                hook(sub, self.before["state"], self.after["state"], cause)


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
