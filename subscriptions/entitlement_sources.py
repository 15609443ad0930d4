"""The subscription and grant sources of entitlement resolution (registered in apps.ready)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q

from .entitlements import ActiveEntitlement
from .models import Grant, Product, Subscription


def subscription_entitlements(customer_id: int, at: datetime) -> list[ActiveEntitlement]:
    S = Subscription.State
    through = Product.entitlements.through
    rows = (
        Subscription.objects.filter(customer_id=customer_id, state__in=Subscription.ENTITLING_STATES)
        .filter(~Q(state=S.CANCELED) | Q(current_period_end__gt=at))
        .values_list("id", "state", "current_period_end", "grace_end", "plan__product_id")
    )
    rows = list(rows)
    if not rows:
        return []
    keys: dict[int, list[str]] = {}
    for product_id, key in through.objects.filter(product_id__in={r[4] for r in rows}).values_list(
        "product_id", "entitlement__key"
    ):
        keys.setdefault(product_id, []).append(key)
    found = []
    for sub_id, state, period_end, grace_end, product_id in rows:
        # Access runs to the end of grace while in grace, else to the period end;
        # a renewing subscription's expiry is when it next must renew.
        expires = grace_end if state == S.IN_GRACE_PERIOD and grace_end else period_end
        for key in keys.get(product_id, []):
            found.append(ActiveEntitlement(key=key, source="subscription", source_id=str(sub_id), expires_at=expires))
    return found


def grant_entitlements(customer_id: int, at: datetime) -> list[ActiveEntitlement]:
    grants = list(
        Grant.objects.filter(customer_id=customer_id, revoked_at__isnull=True, starts_at__lte=at)
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=at))
        .values_list("id", "ends_at", "entitlement__key", "product_id")
    )
    if not grants:
        return []
    through = Product.entitlements.through
    product_keys: dict[int, list[str]] = {}
    product_ids = {g[3] for g in grants if g[3]}
    if product_ids:
        for product_id, key in through.objects.filter(product_id__in=product_ids).values_list(
            "product_id", "entitlement__key"
        ):
            product_keys.setdefault(product_id, []).append(key)
    found = []
    for grant_id, ends_at, ent_key, product_id in grants:
        for key in [ent_key] if ent_key else product_keys.get(product_id, []):
            found.append(ActiveEntitlement(key=key, source="grant", source_id=str(grant_id), expires_at=ends_at))
    return found
