"""The subscription and grant sources of entitlement resolution (registered in apps.ready).

Each source is one query (joined through the product's entitlements), so a
cache miss on the entitlement endpoint costs the customer lookup plus one
query per source.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q

from .entitlements import ActiveEntitlement
from .models import Grant, Subscription


def subscription_entitlements(customer_id: int, at: datetime) -> list[ActiveEntitlement]:
    S = Subscription.State
    rows = (
        Subscription.objects.filter(customer_id=customer_id, state__in=Subscription.ENTITLING_STATES)
        .filter(~Q(state=S.CANCELED) | Q(current_period_end__gt=at))
        .filter(plan__product__entitlements__isnull=False)
        .values_list("id", "state", "current_period_end", "grace_end", "plan__product__entitlements__key")
    )
    found = []
    for sub_id, state, period_end, grace_end, key in rows:
        # Access runs to the end of grace while in grace, else to the period end;
        # a renewing subscription's expiry is when it next must renew.
        expires = grace_end if state == S.IN_GRACE_PERIOD and grace_end else period_end
        found.append(ActiveEntitlement(key=key, source="subscription", source_id=str(sub_id), expires_at=expires))
    return found


def grant_entitlements(customer_id: int, at: datetime) -> list[ActiveEntitlement]:
    rows = (
        Grant.objects.filter(customer_id=customer_id, revoked_at__isnull=True, starts_at__lte=at)
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=at))
        .values_list("id", "ends_at", "entitlement__key", "product__entitlements__key")
    )
    found = []
    for grant_id, ends_at, entitlement_key, product_key in rows:
        key = entitlement_key or product_key
        if key:
            found.append(ActiveEntitlement(key=key, source="grant", source_id=str(grant_id), expires_at=ends_at))
    return found
