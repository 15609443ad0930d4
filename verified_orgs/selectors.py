"""Reads of verified organizations that are more than a filter, tuned for query count."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.paginator import Page, Paginator
from django.db.models import Q, QuerySet

from monetization.models import AuditEvent, Customer
from verified_orgs.error_codes import org_not_found
from verified_orgs.models import (
    Affiliation,
    Organization,
    OrgInvoice,
    SeatLedgerEntry,
    VerificationApplication,
)


def organization_by_handle(handle: str) -> Organization:
    org = Organization.objects.select_related("subscription").filter(handle=handle).first()
    if org is None:
        raise org_not_found(f"No organization @{handle}.")
    return org


AFFILIATE_ROW_FIELDS = (
    "id",
    "customer__external_id",
    "customer__handle",
    "state",
    "invited_at",
    "expires_at",
    "accepted_at",
    "ended_at",
)


def affiliates_rows(*, organization: Organization, state: str | None = None) -> QuerySet:
    """The seat list as plain rows (no model instances): the API's hot read over thousands of seats."""
    qs = Affiliation.objects.filter(organization=organization)
    if state:
        qs = qs.filter(state=state)
    return qs.values(*AFFILIATE_ROW_FIELDS)


def seat_count(organization_id: int) -> int:
    """Active seats, from the ledger's newest row: O(1) however many affiliates."""
    last = SeatLedgerEntry.objects.filter(organization_id=organization_id).order_by("-id").values("quantity").first()
    return last["quantity"] if last else 0


class _NoCountPaginator(Paginator):
    """Pages by offset with the count taken from the seat ledger (no COUNT(*) over seats)."""

    def __init__(self, object_list, per_page, *, count: int):
        super().__init__(object_list, per_page)
        self._count = count

    @property
    def count(self) -> int:
        return self._count


@dataclass
class OrganizationPage:
    organization: Organization
    seats: Page
    seat_count: int
    live_count: int
    ledger: list[SeatLedgerEntry]
    invoices: list[OrgInvoice]
    applications: list[VerificationApplication]
    admins: list[Customer]
    audit: list[AuditEvent]


def organization_page(*, organization: Organization, seats_page: int = 1, per_page: int = 50) -> OrganizationPage:
    """Everything the admin's organization page shows, in a fixed number of queries."""
    org = organization
    seats_qs = (
        Affiliation.objects.filter(organization=org, state__in=Affiliation.LIVE_STATES)
        .select_related("customer")
        .order_by("-id")
    )
    count = seat_count(org.pk)
    invited = Affiliation.objects.filter(organization=org, state=Affiliation.State.INVITED).count()
    paginator = _NoCountPaginator(seats_qs, per_page, count=count + invited)
    page = paginator.get_page(seats_page)
    page.object_list = list(page.object_list)
    # The org's own events and its subscription's (state changes from webhooks, sweeps, staff).
    audit_filter = Q(object_type="verified_orgs.organization", object_id=str(org.pk))
    if org.subscription_id is not None:
        audit_filter |= Q(object_type="subscriptions.subscription", object_id=str(org.subscription_id))
    return OrganizationPage(
        organization=org,
        seats=page,
        seat_count=count,
        live_count=count + invited,
        ledger=list(SeatLedgerEntry.objects.filter(organization=org).order_by("-id")[:20]),
        invoices=list(
            OrgInvoice.objects.filter(organization=org).prefetch_related("lines").order_by("-period_start")[:12]
        ),
        applications=list(
            VerificationApplication.objects.filter(organization=org)
            .select_related("reviewer")
            .order_by("-submitted_at")[:20]
        ),
        admins=[a.customer for a in org.admins.select_related("customer").order_by("id")[:50]],
        audit=list(
            AuditEvent.objects.filter(audit_filter).select_related("actor").order_by("-occurred_at", "-id")[:50]
        ),
    )


def customer_panel_organizations(customer) -> list[dict]:
    """The support console's panel: organizations this customer bills, administers or holds a seat in."""
    from django.db.models import Q

    from .models import Affiliation, Organization

    rows = [
        {
            "organization": f"@{o.handle}",
            "state": o.state,
            "role": "billing" if o.billing_customer_id == customer.pk else "admin",
        }
        for o in Organization.objects.filter(Q(billing_customer=customer) | Q(admins__customer=customer))
        .distinct()
        .order_by("handle")[:20]
    ]
    rows += [
        {"organization": f"@{a.organization.handle}", "state": a.organization.state, "role": f"affiliate ({a.state})"}
        for a in Affiliation.objects.filter(customer=customer).select_related("organization").order_by("-id")[:20]
    ]
    return rows
