"""Complimentary access given and taken back by staff."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from monetization import clock
from monetization.errors import Conflict, InvalidInput
from monetization.models import Customer
from monetization.reasons import reason_check
from monetization.services.audit import audit_record, snapshot
from subscriptions.entitlements import entitlements_invalidate
from subscriptions.models import Entitlement, Grant, Product

GRANT_FIELDS = ["entitlement_id", "product_id", "starts_at", "ends_at", "revoked_at", "reason"]


def grant_create(
    *,
    customer: Customer,
    reason: str,
    granted_by,
    entitlement: Entitlement | None = None,
    product: Product | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
) -> Grant:
    if (entitlement is None) == (product is None):
        raise InvalidInput("Grant either one entitlement or one product.")
    reason_check(reason, what="A grant")
    starts_at = starts_at or clock.now()
    if ends_at is not None and ends_at <= starts_at:
        raise InvalidInput("A grant must end after it starts.")
    with transaction.atomic():
        grant = Grant(
            customer=customer,
            entitlement=entitlement,
            product=product,
            starts_at=starts_at,
            ends_at=ends_at,
            reason=reason,
            granted_by=granted_by,
        )
        grant.full_clean()
        grant.save()
        audit_record(
            action="grant.create",
            obj=grant,
            actor=granted_by,
            customer=customer,
            after=snapshot(grant, GRANT_FIELDS),
            reason=reason,
        )
        entitlements_invalidate([customer.external_id])
    return grant


def grant_revoke(*, grant: Grant, revoked_by, reason: str) -> Grant:
    reason_check(reason, what="Revoking a grant")
    with transaction.atomic():
        locked = Grant.objects.select_for_update().select_related("customer").get(pk=grant.pk)
        if locked.revoked_at is not None:
            raise Conflict("This grant is already revoked.")
        before = snapshot(locked, GRANT_FIELDS)
        locked.revoked_at = clock.now()
        locked.revoked_by = revoked_by
        locked.revoke_reason = reason
        locked.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
        audit_record(
            action="grant.revoke",
            obj=locked,
            actor=revoked_by,
            customer=locked.customer,
            before=before,
            after=snapshot(locked, GRANT_FIELDS),
            reason=reason,
        )
        entitlements_invalidate([locked.customer.external_id])
    return locked
