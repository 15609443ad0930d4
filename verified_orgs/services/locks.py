"""Row locks of verified organizations, taken in one order on every path."""

from __future__ import annotations

from subscriptions.models import Subscription
from verified_orgs.models import Organization


def organization_lock(organization_id: int) -> Organization:
    """Lock the organization, after its subscription: one lock order (subscription, then
    organization) for every path. A webhook changing the subscription locks it first and its
    state hook then suspends or reinstates the org; seat changes and renewals, which start from
    the org, take the subscription first too, so the two can wait for each other but never
    deadlock."""
    list(
        Subscription.objects.select_for_update(of=("self",))
        .filter(organization__pk=organization_id)
        .values_list("id", flat=True)
    )
    return (
        Organization.objects.select_for_update(of=("self",))
        .select_related("billing_customer", "subscription")
        .get(pk=organization_id)
    )
