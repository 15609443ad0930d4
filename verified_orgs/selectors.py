"""Reads of verified organizations that are more than a filter, tuned for query count."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import Q, QuerySet

from monetization.bulk import int_array_param
from monetization.errors import NotFound, OrgErrorCode
from monetization.models import AuditEvent, Customer
from verified_orgs.errors import org_not_found
from verified_orgs.models import (
    Affiliation,
    Organization,
    OrganizationAdmin,
    OrgInvoice,
    SeatLedgerEntry,
    VerificationApplication,
)


def badge_holder_external_ids(organization_id: int) -> list[str]:
    """External ids of everyone whose badge depends on the org: its admins and active affiliates."""
    affiliates = Affiliation.objects.filter(
        organization_id=organization_id, state=Affiliation.State.ACTIVE
    ).values_list("customer__external_id", flat=True)
    admins = OrganizationAdmin.objects.filter(organization_id=organization_id).values_list(
        "customer__external_id", flat=True
    )
    return [*affiliates, *admins]


def organization_ids_by_subscription(subscription_ids: Sequence[int]) -> dict[int, int]:
    """{subscription id: organization id} for those of these subscriptions an organization pays with:
    one query with the ids as one array parameter (a lifecycle sweep's chunk holds thousands)."""
    if not subscription_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT subscription_id, id FROM {Organization._meta.db_table} WHERE subscription_id = ANY(%s::bigint[])",  # noqa: S608
            [int_array_param(subscription_ids)],
        )
        return dict(cursor.fetchall())


def organization_by_handle(handle: str) -> Organization:
    org = Organization.objects.select_related("subscription").filter(handle=handle).first()
    if org is None:
        raise org_not_found(f"No organization @{handle}.")
    return org


def org_invoice_by_number(org: Organization, number: str) -> OrgInvoice:
    """An issued invoice of the organization, with its lines and credit notes (another org's: not found)."""
    invoice = (
        OrgInvoice.objects.select_related("organization")
        .prefetch_related("lines", "credit_notes")
        .filter(organization=org, number=number)
        .first()
    )
    if invoice is None:
        raise NotFound(f"No invoice {number} of @{org.handle}.", code=OrgErrorCode.INVOICE_NOT_FOUND)
    return invoice


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


def customer_organizations_panel(customer: Customer) -> list[dict]:
    """The support page's "Verified organizations" panel: two queries whatever the customer's history.

    One row per organization the customer administers or pays for, then one per affiliation
    (latest first): the relation, the affiliation's state, the org's verification and
    subscription state, its active seat count and a link to the org's admin page.
    """
    from django.db.models import Count, IntegerField, OuterRef, Subquery
    from django.db.models.functions import Coalesce
    from django.urls import reverse
    from django.utils.html import format_html

    from subscriptions.models import Subscription

    limit = 20
    seats = Subquery(
        Affiliation.objects.filter(organization=OuterRef("pk"), state=Affiliation.State.ACTIVE)
        .order_by()
        .values("organization")
        .annotate(n=Count("id"))
        .values("n"),
        output_field=IntegerField(),
    )
    administered = Subquery(
        OrganizationAdmin.objects.filter(organization=OuterRef("pk"), customer=customer).values("id")[:1]
    )
    orgs = list(
        Organization.objects.filter(Q(admins__customer=customer) | Q(billing_customer=customer))
        .distinct()
        .select_related("subscription")
        .annotate(seat_count=Coalesce(seats, 0), admin_row=administered)
        .order_by("-id")[:limit]
    )
    affiliations = list(
        Affiliation.objects.filter(customer=customer)
        .select_related("organization__subscription")
        .order_by("-id")[:limit]
    )

    def link(org: Organization):
        url = reverse("admin:verified_orgs_organization_change", args=[org.pk])
        return format_html('<a href="{}">{} (@{})</a>', url, org.name, org.handle)

    def subscription_state(org: Organization) -> str:
        sub = org.subscription
        if sub is None:
            return "—"
        if sub.state == Subscription.State.IN_GRACE_PERIOD and sub.grace_end:
            return f"{sub.get_state_display()} until {sub.grace_end:%Y-%m-%d}"
        return sub.get_state_display()

    rows = []
    for org in orgs:
        roles = []
        if org.admin_row:
            roles.append("admin")
        if org.billing_customer_id == customer.pk:
            roles.append("billing")
        rows.append(
            {
                "organization": link(org),
                "relation": " + ".join(roles),
                "verification": org.get_state_display()
                + (f" ({org.get_suspension_cause_display()})" if org.suspension_cause else ""),
                "subscription": subscription_state(org),
                "seats": org.seat_count if org.seat_limit is None else f"{org.seat_count} / {org.seat_limit}",
            }
        )
    for aff in affiliations:
        org = aff.organization
        rows.append(
            {
                "organization": link(org),
                "relation": "affiliate",
                "affiliation": aff.get_state_display()
                + (f" since {aff.accepted_at:%Y-%m-%d}" if aff.accepted_at and aff.state == "active" else ""),
                "verification": org.get_state_display(),
                "subscription": subscription_state(org),
            }
        )
    return rows
