"""Affiliates: invite, accept, remove, expire. Seats follow active affiliations.

Lock order is always organization, then affiliation. Locking the organization
serializes one org's seat changes (seat limit, prorated cumulative totals);
the one-live-affiliation-per-customer rule across organizations is the
database's partial unique constraint, so two organizations inviting the same
account at the same moment cannot both succeed.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction

from monetization import clock
from monetization.errors import Conflict, DomainError, NotFound, OrgErrorCode, PermissionDenied
from monetization.models import AuditEvent, Customer
from monetization.services.audit import audit_events_write, audit_record
from subscriptions.entitlements import entitlements_invalidate
from subscriptions.services.lifecycle import Cause
from verified_orgs.errors import not_org_admin, org_not_verified
from verified_orgs.models import Affiliation, Organization, OrganizationAdmin, SeatLedgerEntry
from verified_orgs.services.billing import org_seat_change
from verified_orgs.services.locks import organization_lock

INVITATION_TTL = timedelta(days=7)


def org_admin_check(*, organization: Organization, customer: Customer) -> None:
    if not OrganizationAdmin.objects.filter(organization=organization, customer=customer).exists():
        raise not_org_admin()


def _seat_limit_check(org: Organization, *, states) -> None:
    if org.seat_limit is None:
        return
    used = Affiliation.objects.filter(organization=org, state__in=states).count()
    if used >= org.seat_limit:
        raise Conflict(
            f"The organization has used all of its {org.seat_limit} seats.",
            code=OrgErrorCode.SEAT_LIMIT_REACHED,
            extra={"seat_limit": org.seat_limit},
        )


def _expire_stale_invitations(*, customer_id: int, now: datetime) -> None:
    stale = list(
        Affiliation.objects.select_for_update()
        .filter(customer_id=customer_id, state=Affiliation.State.INVITED, expires_at__lte=now)
        .values_list("id", flat=True)
    )
    if stale:
        _expire_ids(stale, now=now, label="invite")


def _expire_ids(ids: list[int], *, now: datetime, label: str) -> None:
    rows = list(Affiliation.objects.filter(pk__in=ids).values_list("id", "customer_id"))
    Affiliation.objects.filter(pk__in=ids, state=Affiliation.State.INVITED).update(
        state=Affiliation.State.EXPIRED, ended_at=now
    )
    audit_events_write(
        [
            AuditEvent(
                occurred_at=now,
                actor_kind=AuditEvent.ActorKind.SYSTEM,
                actor_label=f"task:affiliations_expire:{label}",
                action="affiliation.expire",
                object_type="verified_orgs.affiliation",
                object_id=str(aff_id),
                customer_id=customer_id,
                before={"state": Affiliation.State.INVITED},
                after={"state": Affiliation.State.EXPIRED},
                reason="Invitation not accepted within 7 days.",
            )
            for aff_id, customer_id in rows
        ],
    )


def affiliation_invite(
    *, organization: Organization, customer: Customer, invited_by: Customer, actor_label: str = ""
) -> tuple[Affiliation, str]:
    """An org admin invites an account. Returns (affiliation, token); only the token's hash is stored."""
    now = clock.now()
    with transaction.atomic():
        org = organization_lock(organization.pk)
        org_admin_check(organization=org, customer=invited_by)
        if org.state != Organization.State.VERIFIED:
            raise org_not_verified(org.state)
        _expire_stale_invitations(customer_id=customer.pk, now=now)
        existing = (
            Affiliation.objects.filter(customer=customer, state__in=Affiliation.LIVE_STATES)
            .values_list("organization_id", flat=True)
            .first()
        )
        if existing is not None:
            raise _already_affiliated(same_org=existing == org.pk)
        _seat_limit_check(org, states=Affiliation.LIVE_STATES)
        token = secrets.token_urlsafe(32)
        try:
            with transaction.atomic():
                affiliation = Affiliation.objects.create(
                    organization=org,
                    customer=customer,
                    invited_by=invited_by,
                    token_hash=Affiliation.hash_token(token),
                    invited_at=now,
                    expires_at=now + INVITATION_TTL,
                )
        except IntegrityError:
            # Another organization's invitation of this account committed first.
            raise _already_affiliated(same_org=False) from None
        audit_record(
            action="affiliation.invite",
            obj=affiliation,
            actor_kind=AuditEvent.ActorKind.CLIENT,
            actor_label=actor_label or f"org-admin:{invited_by.external_id}",
            customer=customer,
            after={"state": affiliation.state, "organization": org.pk, "expires_at": affiliation.expires_at},
        )
    return affiliation, token


def _already_affiliated(*, same_org: bool) -> DomainError:
    where = "this" if same_org else "another"
    return Conflict(
        f"This account is already invited to or affiliated with {where} organization.",
        code=OrgErrorCode.ALREADY_AFFILIATED,
    )


class InvitationExpired(DomainError):
    """The invitation has expired; ask the organization for a new one."""

    code = OrgErrorCode.INVITATION_EXPIRED
    status = 410


def affiliation_accept(*, token: str, customer: Customer, actor_label: str = "") -> Affiliation:
    """The invited account accepts: the seat is added (prorated) and the affiliate badge appears."""
    now = clock.now()
    found = Affiliation.objects.filter(token_hash=Affiliation.hash_token(token or "")).values_list(
        "id", "organization_id"
    )
    row = found.first()
    if row is None:
        raise NotFound("No such invitation.", code=OrgErrorCode.INVITATION_NOT_FOUND)
    expired = False
    with transaction.atomic():
        org = organization_lock(row[1])
        affiliation = Affiliation.objects.select_for_update().get(pk=row[0])
        if affiliation.customer_id != customer.pk:
            raise PermissionDenied(
                "This invitation is for another account.", code=OrgErrorCode.INVITATION_NOT_FOR_CUSTOMER
            )
        if affiliation.state == Affiliation.State.ACTIVE:
            return affiliation  # accepting twice is a no-op
        if affiliation.state == Affiliation.State.INVITED and affiliation.expires_at <= now:
            _expire_ids([affiliation.pk], now=now, label="accept")
            expired = True
        elif affiliation.state != Affiliation.State.INVITED:
            if affiliation.state == Affiliation.State.EXPIRED:
                raise InvitationExpired()
            raise Conflict("This invitation was withdrawn.", code=OrgErrorCode.INVITATION_NOT_FOUND)
        if not expired:
            if org.state != Organization.State.VERIFIED:
                raise org_not_verified(org.state)
            _seat_limit_check(org, states=[Affiliation.State.ACTIVE])
            affiliation.accept()
            affiliation.save(update_fields=["state", "accepted_at"])
            org_seat_change(
                organization=org,
                delta=+1,
                affiliation=affiliation,
                reason=SeatLedgerEntry.Reason.AFFILIATE_ADDED,
                cause=Cause(actor_kind=AuditEvent.ActorKind.CLIENT, label=actor_label),
            )
            audit_record(
                action="affiliation.accept",
                obj=affiliation,
                actor_kind=AuditEvent.ActorKind.CLIENT,
                actor_label=actor_label or f"customer:{customer.external_id}",
                customer=customer,
                before={"state": Affiliation.State.INVITED},
                after={"state": Affiliation.State.ACTIVE, "organization": org.pk},
            )
            entitlements_invalidate([customer.external_id])
    if expired:
        # Raised after the commit, so the expiry itself is kept.
        raise InvitationExpired()
    return affiliation


def affiliation_remove(*, affiliation: Affiliation, actor=None, actor_label: str = "", reason: str = "") -> Affiliation:
    """End an invitation or a seat (credited for the rest of the period). Removing twice is a no-op."""
    with transaction.atomic():
        org = organization_lock(affiliation.organization_id)
        aff = Affiliation.objects.select_for_update().select_related("customer").get(pk=affiliation.pk)
        if aff.state not in Affiliation.LIVE_STATES:
            return aff
        was_active = aff.state == Affiliation.State.ACTIVE
        before = {"state": aff.state}
        aff.remove()
        aff.save(update_fields=["state", "ended_at"])
        if was_active and org.subscription_id is not None:
            org_seat_change(
                organization=org,
                delta=-1,
                affiliation=aff,
                reason=SeatLedgerEntry.Reason.AFFILIATE_REMOVED,
                cause=Cause(actor_kind=AuditEvent.ActorKind.CLIENT, label=actor_label),
            )
        audit_record(
            action="affiliation.remove",
            obj=aff,
            actor=actor,
            actor_kind=AuditEvent.ActorKind.STAFF if actor is not None else AuditEvent.ActorKind.CLIENT,
            actor_label=actor_label,
            customer=aff.customer,
            before=before,
            after={"state": aff.state},
            reason=reason,
        )
        if was_active:
            entitlements_invalidate([aff.customer.external_id])
    return aff


def affiliations_expire_due(*, now: datetime | None = None, batch_size: int = 1000) -> int:
    """Set-based sweep: expire every invitation older than 7 days, in chunks. Returns how many."""
    now = now or clock.now()
    total = 0
    while True:
        with transaction.atomic():
            ids = list(
                Affiliation.objects.select_for_update(skip_locked=True)
                .filter(state=Affiliation.State.INVITED, expires_at__lte=now)
                .order_by("id")
                .values_list("id", flat=True)[:batch_size]
            )
            if not ids:
                return total
            _expire_ids(ids, now=now, label="sweep")
            total += len(ids)
