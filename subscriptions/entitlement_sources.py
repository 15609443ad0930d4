"""The subscription and grant sources of entitlement resolution (registered in apps.ready).

Each source is a queryset of entitlement rows (joined through the product's
entitlements), one branch of the UNION ALL that resolves a customer's
entitlements in one query (subscriptions.entitlements).
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Case, F, Q, QuerySet, When
from django.db.models.functions import Coalesce

from .entitlements import entitlement_rows
from .models import Grant, Subscription


def in_grace_or_period_end(prefix: str = ""):
    """When a subscription's access ends: the end of grace while in grace, else the period end (a renewing
    subscription's expiry is when it next must renew)."""
    return Case(
        When(
            **{f"{prefix}state": Subscription.State.IN_GRACE_PERIOD, f"{prefix}grace_end__isnull": False},
            then=F(f"{prefix}grace_end"),
        ),
        default=F(f"{prefix}current_period_end"),
    )


def subscription_entitlements(customer, at: datetime) -> list[QuerySet]:
    S = Subscription.State
    rows = (
        Subscription.objects.filter(customer_id=customer, state__in=Subscription.ENTITLING_STATES)
        .filter(~Q(state=S.CANCELED) | Q(current_period_end__gt=at))
        .filter(plan__product__entitlements__isnull=False)
    )
    return [
        entitlement_rows(
            rows,
            source="subscription",
            source_id=F("id"),
            key=F("plan__product__entitlements__key"),
            expires_at=in_grace_or_period_end(),
        )
    ]


def grant_entitlements(customer, at: datetime) -> list[QuerySet]:
    rows = Grant.objects.filter(customer_id=customer, revoked_at__isnull=True, starts_at__lte=at).filter(
        Q(ends_at__isnull=True) | Q(ends_at__gt=at)
    )
    return [
        entitlement_rows(
            rows,
            source="grant",
            source_id=F("id"),
            key=Coalesce("entitlement__key", "product__entitlements__key"),
            expires_at=F("ends_at"),
        )
    ]
