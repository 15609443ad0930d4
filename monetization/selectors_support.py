"""Reads for the support console: a customer's whole picture and their timeline.

Query count is bounded whatever the history's length: every section is one
query (limited), and the timeline is a keyset page over the
``audit_customer_time_idx`` index (``customer, -occurred_at``).
"""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db.models import Q

from monetization.models import AuditEvent, Customer, Payment, Provider, ProviderIdentity, Refund

SECTION_LIMIT = 50
TIMELINE_PAGE = 50

# Apps add panels to the customer page (org seats, creator status, ...):
# register_customer_panel("Organization seats", fn(customer) -> list[dict]).
CustomerPanel = Callable[[Customer], list[dict]]
_panels: dict[str, CustomerPanel] = {}


def register_customer_panel(title: str, fn: CustomerPanel) -> CustomerPanel:
    _panels[title] = fn
    return fn


def customer_panels(customer: Customer) -> list[tuple[str, list[dict]]]:
    return [(title, fn(customer)) for title, fn in _panels.items()]


@dataclass
class CustomerOverview:
    customer: Customer
    identities: list
    subscriptions: list
    entitlements: list
    payments: list
    refunds: list
    grants: list
    panels: list = field(default_factory=list)


def customer_overview(customer: Customer) -> CustomerOverview:
    from subscriptions.entitlements import resolve_entitlements
    from subscriptions.models import Grant, Subscription

    return CustomerOverview(
        customer=customer,
        identities=list(
            ProviderIdentity.objects.filter(customer=customer).order_by("provider", "kind")[:SECTION_LIMIT]
        ),
        subscriptions=list(
            Subscription.objects.filter(customer=customer)
            .select_related("plan__product")
            .order_by("-id")[:SECTION_LIMIT]
        ),
        entitlements=resolve_entitlements(customer.pk),
        payments=list(Payment.objects.filter(customer=customer).order_by("-occurred_at", "-id")[:SECTION_LIMIT]),
        refunds=list(
            Refund.objects.filter(customer=customer)
            .select_related("payment", "requested_by", "approved_by")
            .order_by("-id")[:SECTION_LIMIT]
        ),
        grants=list(
            Grant.objects.filter(customer=customer)
            .select_related("entitlement", "product", "granted_by")
            .order_by("-id")[:SECTION_LIMIT]
        ),
        panels=customer_panels(customer),
    )


def _encode_cursor(event: AuditEvent) -> str:
    raw = json.dumps([event.occurred_at.isoformat(), event.pk]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_cursor(cursor: str) -> tuple[datetime.datetime, int] | None:
    try:
        at, pk = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.datetime.fromisoformat(at), int(pk)
    except (ValueError, TypeError):
        return None


@dataclass
class TimelinePage:
    events: list[AuditEvent]
    next_cursor: str | None


def customer_timeline(customer_id: int, *, cursor: str = "", limit: int = TIMELINE_PAGE) -> TimelinePage:
    """Newest first; one query for the page (actor joined), keyset-paginated, so page N costs what page 1 costs."""
    qs = AuditEvent.objects.filter(customer_id=customer_id).select_related("actor")
    position = _decode_cursor(cursor) if cursor else None
    if position is not None:
        at, pk = position
        qs = qs.filter(Q(occurred_at__lt=at) | Q(occurred_at=at, id__lt=pk))
    rows = list(qs.order_by("-occurred_at", "-id")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return TimelinePage(events=rows, next_cursor=_encode_cursor(rows[-1]) if more and rows else None)


def customer_find(term: str) -> list[Customer]:
    """Exact, indexed lookups: external id, handle, email, any provider id (identity, subscription, payment)."""
    from subscriptions.models import Subscription

    term = term.strip()
    if not term:
        return []
    handle = term[1:] if term.startswith("@") else term
    ids: list[int] = list(
        Customer.objects.filter(Q(external_id=term) | Q(handle=handle) | Q(email=term)).values_list("id", flat=True)[
            :20
        ]
    )
    ids += ProviderIdentity.objects.filter(value=term).values_list("customer_id", flat=True)[:20]
    # The unique indexes lead with provider: naming every provider keeps these index lookups.
    providers = list(Provider.values)
    ids += Subscription.objects.filter(provider__in=providers, provider_subscription_id=term).values_list(
        "customer_id", flat=True
    )[:20]
    ids += Payment.objects.filter(provider__in=providers, provider_reference=term).values_list(
        "customer_id", flat=True
    )[:20]
    if term.isdigit() and len(term) < 19:
        ids += Customer.objects.filter(pk=int(term)).values_list("id", flat=True)
    unique = list(dict.fromkeys(ids))
    return list(Customer.objects.filter(pk__in=unique).order_by("-id")[:50])
