"""Demo: the support console's day of grants (one revoked) and subscription actions (extend, cancel, pause).

Runs after the refunds (monetization.demo.support), on the same customers: those the
day's refunds were for. Idempotent: everything it makes is tagged "[demo]"; a re-run
finds the tag and stops. The provider calls go to the in-memory test double.
"""

from __future__ import annotations

from monetization.demo.support import TAG, attempt, staff, with_fake_providers
from monetization.models import Provider, Refund
from monetization.providers.base import SubscriptionSnapshot, SubscriptionStatus, get_provider
from subscriptions.models import Entitlement, Grant, Subscription
from subscriptions.services import actions


def seed(*, rng, out, options) -> None:
    with_fake_providers(lambda: _seed(out=out))


def _customers(limit: int) -> list:
    """The customers of the day's first refunds, in order."""
    refunds = Refund.objects.filter(note__startswith=TAG).select_related("customer").order_by("id")[: limit * 2]
    return list({r.customer_id: r.customer for r in refunds}.values())[:limit]


def _seed(*, out) -> None:
    if Grant.objects.filter(reason__startswith=TAG).exists():
        out.write("  support demo grants and actions already seeded")
        return
    support, _finance, compliance, _admin = staff()
    if support is None:
        out.write("  no demo staff logins (monetization.demo.customers); skipping grants and actions")
        return
    entitlement = Entitlement.objects.order_by("key").first()
    if entitlement is not None:
        grants = []
        for i, customer in enumerate(_customers(6)):
            grant = attempt(
                lambda c=customer, i=i: actions.staff_grant_create(
                    customer=c,
                    user=support,
                    reason=f"{TAG} apology for the outage (ticket #{5200 + i})",
                    entitlement=entitlement,
                    days=7 + 7 * i,
                ),
                out,
                "grant",
            )
            if grant is not None:
                grants.append(grant)
        if grants and compliance is not None:
            attempt(
                lambda: actions.staff_grant_revoke(grant=grants[0], user=compliance, reason=f"{TAG} abuse report"),
                out,
                "grant revoke",
            )
    subs = list(
        Subscription.objects.filter(provider=Provider.STRIPE, state=Subscription.State.ACTIVE).order_by("id")[:3]
    )
    for sub in subs:
        provider = get_provider(sub.provider)
        if hasattr(provider, "subscriptions"):  # the demo's fake provider must know the subscription
            provider.subscriptions[sub.provider_subscription_id] = SubscriptionSnapshot(
                provider=sub.provider,
                provider_subscription_id=sub.provider_subscription_id,
                store_product_id="demo",
                status=SubscriptionStatus.ACTIVE,
                as_of=sub.updated_at,
                current_period_end=sub.current_period_end,
            )
    steps = [
        ("extend", lambda s: actions.subscription_extend(subscription=s, user=support, reason=f"{TAG} outage", days=7)),
        ("cancel", lambda s: actions.subscription_cancel(subscription=s, user=support, reason=f"{TAG} asked to stop")),
        ("pause", lambda s: actions.subscription_pause(subscription=s, user=support, reason=f"{TAG} travelling")),
    ]
    for sub, (label, fn) in zip(subs, steps, strict=False):
        attempt(lambda s=sub, fn=fn: fn(s), out, f"subscription {label}")
    out.write(
        f"  grants: {Grant.objects.filter(reason__startswith=TAG).count()}, "
        f"subscription actions: {', '.join(label for _sub, (label, _fn) in zip(subs, steps, strict=False))}"
    )
