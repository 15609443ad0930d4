"""The organization source of entitlement resolution (registered in apps.ready).

Active affiliates get ``affiliate_badge``, an organization's admins
``org_gold_badge``, only while the organization is verified (not suspended)
and its subscription entitles.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import CharField, Q, Value

from subscriptions.entitlements import ActiveEntitlement, entitlements_invalidate
from subscriptions.models import Subscription

from .models import Affiliation, Organization, OrganizationAdmin
from .selectors import badge_holder_external_ids

AFFILIATE_BADGE = "affiliate_badge"
ORG_GOLD_BADGE = "org_gold_badge"


def _entitling(prefix: str, at: datetime) -> Q:
    S = Subscription.State
    sub = f"{prefix}subscription__"
    return Q(**{f"{prefix}state": Organization.State.VERIFIED}) & Q(
        **{f"{sub}state__in": [s for s in Subscription.ENTITLING_STATES if s != S.CANCELED]}
    ) | (
        Q(**{f"{prefix}state": Organization.State.VERIFIED, f"{sub}state": S.CANCELED})
        & Q(**{f"{sub}current_period_end__gt": at})
    )


def _expiry(state: str, period_end, grace_end):
    if state == Subscription.State.IN_GRACE_PERIOD and grace_end:
        return grace_end
    return period_end


def organization_entitlements(customer_id: int, at: datetime) -> list[ActiveEntitlement]:
    """Affiliate and admin badges in one UNION query (the entitlement endpoint's miss path)."""
    fields = (
        "badge",
        "organization_id",
        "organization__subscription__state",
        "organization__subscription__current_period_end",
        "organization__subscription__grace_end",
    )
    affiliations = (
        Affiliation.objects.filter(customer_id=customer_id, state=Affiliation.State.ACTIVE)
        .filter(_entitling("organization__", at))
        .annotate(badge=Value(AFFILIATE_BADGE, output_field=CharField()))
        .values_list(*fields)
    )
    admins = (
        OrganizationAdmin.objects.filter(customer_id=customer_id)
        .filter(_entitling("organization__", at))
        .annotate(badge=Value(ORG_GOLD_BADGE, output_field=CharField()))
        .values_list(*fields)
    )
    return [
        ActiveEntitlement(
            key=badge, source="organization", source_id=str(org_id), expires_at=_expiry(state, period_end, grace_end)
        )
        for badge, org_id, state, period_end, grace_end in affiliations.union(admins, all=True)
    ]


def invalidate_on_subscription_transition(sender, instance, name, source, target, **kwargs):
    """An org subscription's transition that keeps its state (an extension) changes its badges'
    expiry: every badge holder's cached entitlements go, on commit of the same transaction.

    Changes of state (whoever makes them, the lifecycle sweep included) reach the organization
    through the state hook, which drops the same caches (verified_orgs.services.dunning).
    """
    if target is not None or not instance.is_organization_subscription():
        return  # consumer subscriptions (nearly all of them) cost no query here
    org_id = Organization.objects.filter(subscription_id=instance.pk).values_list("id", flat=True).first()
    if org_id is not None:
        entitlements_invalidate(badge_holder_external_ids(org_id))
