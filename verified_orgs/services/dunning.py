"""Dunning of verified organizations: the organization follows its subscription.

The subscription's lifecycle is the subscriptions app's, with the grace the Verified
Organization product grants on its own terms (``SUBSCRIPTION_PRODUCT_GRACE_DAYS``: a lapsed
organization keeps its badges for 14 days, whatever Stripe's own rule says). Whoever moves the
subscription (a Stripe event, staff, the organization's billing, or the lifecycle sweep when no
event comes), :func:`orgs_follow_subscriptions`, a state hook, moves the organization in the
same transaction: grace keeps it verified, on hold (or expired out of payment trouble) suspends
it for non-payment, active again lifts a payment suspension (never a compliance one).
"""

from __future__ import annotations

from monetization.services.permissions import System
from subscriptions.entitlements import entitlements_invalidate
from subscriptions.models import Subscription
from subscriptions.services.lifecycle import Cause, StateMoves, subscription_change_state
from verified_orgs.models import Organization
from verified_orgs.selectors import badge_holder_external_ids, organization_ids_by_subscription
from verified_orgs.services.organizations import organization_reinstate, organization_suspend

S = Subscription.State
# Expired after payment trouble suspends; a canceled subscription running out is not a payment failure.
PAYMENT_TROUBLE_STATES = (S.IN_GRACE_PERIOD, S.ON_HOLD)


def org_payment_failed(*, organization: Organization, cause: Cause) -> Subscription:
    """A renewal failed: the subscription enters the product's grace (badges stay until it ends)."""
    return subscription_change_state(
        subscription=organization.subscription,
        transition="enter_grace_period",
        cause=cause,
        action="subscription.payment_failed",
    )


def org_payment_recovered(*, organization: Organization, cause: Cause) -> Organization:
    """The overdue payment went through: the subscription is active again, a payment suspension lifts."""
    subscription_change_state(
        subscription=organization.subscription,
        transition="activate",
        cause=cause,
        action="subscription.payment_recovered",
    )
    return Organization.objects.get(pk=organization.pk)


def orgs_follow_subscriptions(moves: StateMoves) -> None:
    """State hook: organizations follow their subscriptions' changes of state, whatever made them."""
    if moves.subscriptions and not any(s.is_organization_subscription() for s in moves.subscriptions):
        return  # a consumer subscription changed by a service: no query
    org_ids = organization_ids_by_subscription(moves.subscription_ids)
    for org_id in sorted(org_ids.values()):
        # Entitling states and badge expiry (grace end) follow the subscription.
        entitlements_invalidate(badge_holder_external_ids(org_id))
        _org_follow(Organization.objects.get(pk=org_id), moves.source, moves.target, moves.cause)


def _org_follow(org: Organization, source: str, target: str, cause: Cause) -> None:
    label = cause.label or "system"
    if org.state == Organization.State.VERIFIED and (
        target == S.ON_HOLD or (target == S.EXPIRED and source in PAYMENT_TROUBLE_STATES)
    ):
        organization_suspend(
            organization=org,
            actor=System(label),
            reason=cause.reason or "Payment failed and the grace period ended.",
            cause=Organization.SuspensionCause.PAYMENT,
        )
    elif (
        target == S.ACTIVE
        and org.state == Organization.State.SUSPENDED
        and org.suspension_cause == Organization.SuspensionCause.PAYMENT
    ):
        organization_reinstate(organization=org, actor=System(label), reason="Payment recovered.")
