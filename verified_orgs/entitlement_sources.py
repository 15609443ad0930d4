"""The organization source of entitlement resolution (registered in apps.ready).

Active affiliates get ``affiliate_badge``, an organization's admins
``org_gold_badge``, only while the organization is verified (not suspended)
and its subscription entitles.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import CharField, F, Q, QuerySet, Value

from subscriptions.entitlement_sources import in_grace_or_period_end
from subscriptions.entitlements import entitlement_rows, entitlements_invalidate
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


def organization_entitlements(customer, at: datetime) -> list[QuerySet]:
    """Affiliate and admin badges: two branches of the entitlement endpoint's one query."""
    return [
        entitlement_rows(
            model.objects.filter(customer_id=customer).filter(extra).filter(_entitling("organization__", at)),
            source="organization",
            source_id=F("organization_id"),
            key=Value(badge, output_field=CharField()),
            expires_at=in_grace_or_period_end("organization__subscription__"),
        )
        for model, extra, badge in (
            (Affiliation, Q(state=Affiliation.State.ACTIVE), AFFILIATE_BADGE),
            (OrganizationAdmin, Q(), ORG_GOLD_BADGE),
        )
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
