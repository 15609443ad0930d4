"""Demo: customers paying on two platforms at once, and the daily detection's cases in Support's queue.

Two App Store subscribers also subscribe on the web to the same product, and one Play subscriber
on the App Store: the detection then opens three cases (the web one to end for the first two, the
newer store one with its manage link for the third), alongside any overlap the seeded history
already holds. Idempotent: a re-run finds the second-platform subscriptions and stops.
"""

from __future__ import annotations

from monetization.models import Provider
from subscriptions.models import Platform, Sku, Subscription
from subscriptions.services.lifecycle import Cause, subscription_change_state, subscription_create
from subscriptions.services.overlaps import overlaps_detect

PREFIX = "demo_second_platform_"
SECOND_PLATFORM = (
    (Provider.APP_STORE, Provider.STRIPE, Platform.WEB),
    (Provider.APP_STORE, Provider.STRIPE, Platform.WEB),
    (Provider.GOOGLE_PLAY, Provider.APP_STORE, Platform.IOS),
)


def seed(*, rng, out, options) -> None:
    if Subscription.objects.filter(provider_subscription_id__startswith=PREFIX).exists():
        out.write("  two-platform cases already seeded")
        return
    cause = Cause.task("demo", reason="demo seed: a second platform")
    used: set[int] = set()
    for n, (first, second, platform) in enumerate(SECOND_PLATFORM):
        sub = (
            Subscription.objects.filter(provider=first, state=Subscription.State.ACTIVE, auto_renew=True)
            .exclude(customer_id__in=used)
            .exclude(customer__subscriptions__provider=second)
            .select_related("plan", "customer")
            .order_by("id")
            .first()
        )
        sku = sub and Sku.objects.filter(plan__product_id=sub.plan.product_id, platform=platform).first()
        if sub is None or sku is None:
            continue
        used.add(sub.customer_id)
        twin = subscription_create(
            customer=sub.customer,
            plan=sku.plan,
            sku=sku,
            provider=second,
            provider_subscription_id=f"{PREFIX}{n}_{sub.customer.external_id}",
            cause=cause,
        )
        subscription_change_state(
            subscription=twin,
            transition="activate",
            cause=cause,
            updates={"current_period_start": sub.current_period_start, "current_period_end": sub.current_period_end},
        )
    run = overlaps_detect()
    out.write(f"  two-platform cases: {run.opened} opened")
