"""Demo: a purchase restored on a new login, moved by Support (the staff transfer), for the console to show.

Runs after the support demo. Idempotent: the transfer's reason carries "[demo]"; a re-run finds it and stops.
"""

from __future__ import annotations

from monetization.demo.support import TAG, attempt, staff
from monetization.models import Customer, CustomerMerge, Provider
from monetization.services.customer_merge import customer_merge_request
from subscriptions.models import Subscription


def seed(*, rng, out, options) -> None:
    if CustomerMerge.objects.filter(reason__startswith=TAG).exists():
        out.write("  transfer demo already seeded")
        return
    support, _finance, _compliance, _admin = staff()
    sub = (
        Subscription.objects.filter(provider=Provider.APP_STORE, state=Subscription.State.ACTIVE)
        .select_related("customer")
        .order_by("id")
        .first()
    )
    if support is None or sub is None:
        out.write("  no demo staff or App Store subscription; skipping the transfer demo")
        return
    owner = sub.customer
    login, _ = Customer.objects.get_or_create(
        external_id=f"{owner.external_id}-new"[:64],
        defaults={"handle": f"{owner.handle}_new"[:64], "email": owner.email, "country": owner.country},
    )
    merge = attempt(
        lambda: customer_merge_request(
            source=owner,
            target=login,
            purchase_id=sub.pk,
            reason=f"{TAG} restored on a new login; the old one is no longer used (ticket #5301)",
            requested_by=support,
        ),
        out,
        "transfer",
    )
    if merge is not None:
        out.write(f"  transfer of subscription {sub.pk} to @{login.handle}: {merge.status}")
