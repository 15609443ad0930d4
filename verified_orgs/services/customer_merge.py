"""Organizations' part of merging two customers: billing, admin roles and affiliate seats move to the survivor."""

from __future__ import annotations

from monetization.services.customer_merge import Moved, MoveScope
from verified_orgs.models import Affiliation, Organization, OrganizationAdmin


def organizations_move(scope: MoveScope, apply: bool) -> list[Moved]:
    if not scope.is_merge:
        return []
    source, target = scope.source, scope.target
    billed = Organization.objects.filter(billing_customer=source)
    target_orgs = OrganizationAdmin.objects.filter(customer=target).values("organization_id")
    admins = OrganizationAdmin.objects.filter(customer=source).exclude(organization_id__in=target_orgs)
    # Admin of an organization the survivor administers already: the survivor's role is that role.
    duplicate_admins = OrganizationAdmin.objects.filter(customer=source, organization_id__in=target_orgs)
    seats = Affiliation.objects.filter(customer=source)
    invited = Affiliation.objects.filter(invited_by=source)
    live = Affiliation.LIVE_STATES
    blocked = ""
    if seats.filter(state__in=live).exists() and Affiliation.objects.filter(customer=target, state__in=live).exists():
        # An account holds one seat at a time: Support removes one of the two first.
        blocked = "both customers hold an organization seat (invited or active)"
    moved = [
        Moved("organizations billed", billed.count()),
        Moved("organization admin roles", admins.count() + duplicate_admins.count()),
        Moved("organization seats", seats.count(), blocked=blocked),
        Moved("invitations sent", invited.count()),
    ]
    if apply and not blocked:
        billed.update(billing_customer=target)
        duplicate_admins.delete()
        admins.update(customer=target)
        seats.update(customer=target)
        invited.update(invited_by=target)
    return moved
