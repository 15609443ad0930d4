"""Staff actions on subscriptions and grants (support console).

Each action checks the staff user's permission here, in the service layer,
so the admin, the staff API and any script get the same refusal. The
platform is told first (cancel, extend, pause go through the provider
adapter); our state follows through subscription_change_state, which audits.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django_fsm import can_proceed

from monetization import clock
from monetization.errors import DomainError, ErrorCode, IllegalTransition, InvalidInput
from monetization.models import Customer
from monetization.providers import provider_capabilities
from monetization.providers.base import ProviderError, UnsupportedOperation, get_provider
from monetization.reasons import reason_check
from monetization.services.permissions import require_perm
from subscriptions.models import Entitlement, Grant, Product, Subscription
from subscriptions.services.grants import grant_create, grant_revoke
from subscriptions.services.lifecycle import Cause, subscription_change_state

PERM_CANCEL = "subscriptions.cancel_subscription"
PERM_EXTEND = "subscriptions.extend_subscription"
PERM_PAUSE = "subscriptions.pause_subscription"
PERM_REVOKE = "subscriptions.revoke_subscription"
PERM_GRANT = "subscriptions.grant_entitlement"
PERM_REVOKE_GRANT = "subscriptions.revoke_grant"
MAX_EXTEND_DAYS = 365


class UnsupportedByProvider(DomainError):
    """The platform does not allow this action."""

    code = ErrorCode.UNSUPPORTED_BY_PROVIDER
    status = 422


class ProviderFailed(DomainError):
    """The payment platform refused or failed; nothing was changed here."""

    code = ErrorCode.PROVIDER_ERROR
    status = 502


def _check(user, perm: str, reason: str, what: str) -> None:
    require_perm(user, perm)
    reason_check(reason, what=what)


def _provider(subscription: Subscription):
    if subscription.provider not in settings.PAYMENT_PROVIDERS:
        return None  # internal / comped subscriptions live only here
    return get_provider(subscription.provider)


def provider_call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except UnsupportedOperation as exc:
        raise UnsupportedByProvider(str(exc)) from exc
    except ProviderError as exc:
        raise ProviderFailed(f"{exc} ({exc.code})") from exc


def _ensure(subscription: Subscription, transition: str) -> None:
    if not can_proceed(getattr(subscription, transition)):
        raise IllegalTransition(f"Cannot {transition} a subscription that is {subscription.state}.")


def provider_op_key(subscription: Subscription, op: str, *params, action_id: str = "") -> str:
    """The provider idempotency key of one staff action, the same for every retry of it.

    ``action_id`` is the action's own id when the caller has one (the API's Idempotency-Key);
    otherwise the action is named by what it acts on: the subscription as the staff member saw
    it (its last change) and the parameters. A retry after a timeout changed nothing here, so it
    sends the same key and the provider answers it once; the next action starts from a changed
    subscription and gets a new key.
    """
    origin = action_id or f"v{subscription.updated_at.isoformat()}"
    return ":".join(str(part) for part in (op, subscription.pk, *params, origin))[:255]


def subscription_cancel(
    *, subscription: Subscription, user, reason: str, at_period_end: bool = True, action_id: str = ""
) -> Subscription:
    """Cancel at period end (auto-renew off, access until then) or now (access ends now)."""
    _check(user, PERM_CANCEL, reason, "Cancelling a subscription")
    subscription.refresh_from_db()
    transition = "cancel" if at_period_end else "expire"
    _ensure(subscription, transition)
    provider = _provider(subscription)
    if provider is not None:
        provider_call(
            provider.cancel_subscription,
            subscription.provider_subscription_id,
            at_period_end=at_period_end,
            idempotency_key=provider_op_key(
                subscription, "cancel", "period_end" if at_period_end else "now", action_id=action_id
            ),
        )
    cause = Cause.staff(user, reason)
    if at_period_end:
        return subscription_change_state(
            subscription=subscription,
            transition="cancel",
            cause=cause,
            transition_kwargs={"reason": "staff"},
            action="subscription.cancel",
        )
    return subscription_change_state(
        subscription=subscription,
        transition="expire",
        cause=cause,
        updates={"auto_renew": False, "cancel_reason": "staff_now", "current_period_end": clock.now()},
        action="subscription.cancel_now",
    )


def subscription_extend(
    *, subscription: Subscription, user, reason: str, days: int, action_id: str = ""
) -> Subscription:
    """Push the period end out by ``days`` where the platform allows it (Stripe, App Store extension)."""
    _check(user, PERM_EXTEND, reason, "Extending a subscription")
    if not isinstance(days, int) or not 1 <= days <= MAX_EXTEND_DAYS:
        raise InvalidInput(f"Extend by 1 to {MAX_EXTEND_DAYS} days.")
    subscription.refresh_from_db()
    if subscription.state in (Subscription.State.EXPIRED, Subscription.State.REVOKED):
        raise IllegalTransition(f"Cannot extend a subscription that is {subscription.state}.")
    base = subscription.current_period_end or clock.now()
    new_end = base + datetime.timedelta(days=days)
    provider = _provider(subscription)
    if provider is not None:
        snap = provider_call(
            provider.extend_subscription,
            subscription.provider_subscription_id,
            days=days,
            reason=reason,
            idempotency_key=provider_op_key(subscription, "extend", days, action_id=action_id),
        )
        new_end = getattr(snap, "current_period_end", None) or new_end
    return subscription_change_state(
        subscription=subscription,
        transition=None,
        cause=Cause.staff(user, reason),
        updates={"current_period_end": new_end},
        action="subscription.extend",
    )


def _pause_supported(subscription: Subscription) -> None:
    if not provider_capabilities(subscription.provider).pause:
        raise UnsupportedByProvider(f"{subscription.get_provider_display()} subscriptions cannot be paused by us.")


def subscription_pause(*, subscription: Subscription, user, reason: str, action_id: str = "") -> Subscription:
    """Stop charging and access until resumed (Stripe: collection paused, invoices voided)."""
    return _pause_or_resume(subscription, user=user, reason=reason, operation="pause", action_id=action_id)


def subscription_resume(*, subscription: Subscription, user, reason: str, action_id: str = "") -> Subscription:
    return _pause_or_resume(subscription, user=user, reason=reason, operation="resume", action_id=action_id)


def _pause_or_resume(
    subscription: Subscription, *, user, reason: str, operation: str, action_id: str = ""
) -> Subscription:
    _check(user, PERM_PAUSE, reason, "Pausing a subscription" if operation == "pause" else "Resuming a subscription")
    subscription.refresh_from_db()
    _pause_supported(subscription)
    _ensure(subscription, operation)
    provider = _provider(subscription)
    if provider is not None:
        provider_call(
            getattr(provider, f"{operation}_subscription"),
            subscription.provider_subscription_id,
            idempotency_key=provider_op_key(subscription, operation, action_id=action_id),
        )
    return subscription_change_state(
        subscription=subscription,
        transition=operation,
        cause=Cause.staff(user, reason),
        action=f"subscription.{operation}",
    )


# What each staff action on a subscription needs: the permission, the state machine's transition (None: any
# state but the final ones) and the platform's capability (None: ours alone).
SUBSCRIPTION_ACTIONS = {
    "cancel": (PERM_CANCEL, "cancel", "cancel"),
    "cancel_now": (PERM_CANCEL, "expire", "cancel"),
    "extend": (PERM_EXTEND, None, "extend"),
    "pause": (PERM_PAUSE, "pause", "pause"),
    "resume": (PERM_PAUSE, "resume", "pause"),
    "revoke": (PERM_REVOKE, "revoke", None),
}


def subscription_actions_offered(subscription: Subscription, user) -> list[str]:
    """The staff actions this user may take on this subscription now: the same permission, state and
    platform rules the actions check, so a console offers nothing that can only fail."""
    external = subscription.provider in settings.PAYMENT_PROVIDERS
    capabilities = provider_capabilities(subscription.provider)
    offered = []
    for op, (perm, transition, capability) in SUBSCRIPTION_ACTIONS.items():
        if not user.has_perm(perm):
            continue
        if capability and external and not getattr(capabilities, capability):
            continue
        if transition is None:
            if subscription.state in (Subscription.State.EXPIRED, Subscription.State.REVOKED):
                continue
        elif not can_proceed(getattr(subscription, transition)):
            continue
        offered.append(op)
    return offered


def subscription_revoke(*, subscription: Subscription, user, reason: str) -> Subscription:
    """Compliance: end access at once (fraud, abuse). The platform is not refunded here."""
    _check(user, PERM_REVOKE, reason, "Revoking a subscription")
    subscription.refresh_from_db()
    _ensure(subscription, "revoke")
    return subscription_change_state(
        subscription=subscription, transition="revoke", cause=Cause.staff(user, reason), action="subscription.revoke"
    )


def staff_grant_create(
    *,
    customer: Customer,
    user,
    reason: str,
    entitlement: Entitlement | None = None,
    product: Product | None = None,
    days: int | None = None,
    until: datetime.datetime | None = None,
    open_ended: bool = False,
) -> Grant:
    """Complimentary access for N days or until a date; open-ended only when asked for by name
    (a blank end used to mean "forever" without anyone choosing it)."""
    _check(user, PERM_GRANT, reason, "A grant")
    if days is not None and until is not None:
        raise InvalidInput("Give either a number of days or an end date, not both.")
    if days is None and until is None and not open_ended:
        raise InvalidInput("A grant needs an end: a number of days or an end date.", code=ErrorCode.GRANT_END_REQUIRED)
    starts = clock.now()
    if until is not None and until <= starts:
        raise InvalidInput("A grant's end date must be in the future.")
    ends = until
    if days is not None:
        if days < 1 or days > 3660:
            raise InvalidInput("Grant for 1 to 3660 days.")
        ends = starts + datetime.timedelta(days=days)
    return grant_create(
        customer=customer,
        reason=reason,
        granted_by=user,
        entitlement=entitlement,
        product=product,
        starts_at=starts,
        ends_at=ends,
    )


def staff_grant_revoke(*, grant: Grant, user, reason: str) -> Grant:
    _check(user, PERM_REVOKE_GRANT, reason, "Revoking a grant")
    return grant_revoke(grant=grant, revoked_by=user, reason=reason)
