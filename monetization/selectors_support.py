"""Reads for the support console: a customer's whole picture and their timeline.

Query count is bounded whatever the history's length: every section is one
query (limited), and the timeline is a keyset page over the
``audit_customer_time_idx`` index (``customer, -occurred_at``).
"""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Q, Value

from monetization import clock
from monetization.models import (
    AuditEvent,
    Customer,
    Dispute,
    Payment,
    Provider,
    ProviderIdentity,
    Refund,
    WebhookEvent,
)
from monetization.registry import Registry

SECTION_LIMIT = 50
TIMELINE_PAGE = 50


@dataclass(frozen=True)
class CustomerPanel:
    """A part of the customer page that an app above the core offers (subscriptions, org seats, creator status).

    ``load(customer)`` reads the panel's data in a bounded number of queries, whatever the
    customer's history. Without a ``template`` the data is a list of dict rows, shown as a
    table; with one, the template renders it (as ``panel.data``, with the page's context).
    ``top`` panels come right under the customer's identity, the others after the refunds.
    """

    title: str
    load: Callable[[Customer], Any]
    template: str = ""
    top: bool = False
    # ``for_viewer(data, user)``: the data narrowed to what this staff member may do (the page offers nothing
    # that can only fail); applied when the page names its viewer.
    for_viewer: Callable[[Any, Any], Any] | None = None


# Apps add panels from AppConfig.ready(): customer_panels.register(name, CustomerPanel(...)).
customer_panels: Registry[CustomerPanel] = Registry("customer panel")

# Exact ids an app knows a customer by (a provider subscription id): customer_lookups.register(name, fn(term)
# -> customer ids, at most a few, through an index). The search box and the support page's finder use them.
CustomerLookup = Callable[[str], list[int]]
customer_lookups: Registry[CustomerLookup] = Registry("customer lookup")


@dataclass(frozen=True)
class SummaryFact:
    """One item of the customer page's summary line that an app above the core knows (the current plan and
    its platform), linked to its admin page when it has one."""

    label: str
    text: str
    link: str = ""


# customer_summary_facts.register(name, fn(customer_id) -> list[SummaryFact]) from AppConfig.ready(); each is
# one bounded query, whatever the customer's history.
customer_summary_facts: Registry[Callable[[int], list[SummaryFact]]] = Registry("customer summary fact")


@dataclass(frozen=True)
class LoadedPanel:
    name: str
    title: str
    template: str
    top: bool
    data: Any


@dataclass
class CustomerOverview:
    customer: Customer
    identities: list
    payments: list
    refunds: list
    panels: list[LoadedPanel] = field(default_factory=list)

    @property
    def panel_data(self) -> dict[str, Any]:
        return {panel.name: panel.data for panel in self.panels}


def customer_overview(customer: Customer, *, panels: Collection[str] | None = None, viewer=None) -> CustomerOverview:
    """The customer's own sections and the panels (all, or only those named), for ``viewer`` when given."""
    return CustomerOverview(
        customer=customer,
        identities=list(
            ProviderIdentity.objects.filter(customer=customer).order_by("provider", "kind")[:SECTION_LIMIT]
        ),
        payments=list(Payment.objects.filter(customer=customer).order_by("-occurred_at", "-id")[:SECTION_LIMIT]),
        refunds=list(
            Refund.objects.filter(customer=customer)
            .select_related("payment", "requested_by", "approved_by")
            .order_by("-id")[:SECTION_LIMIT]
        ),
        panels=[
            LoadedPanel(name=name, title=p.title, template=p.template, top=p.top, data=_panel_data(p, customer, viewer))
            for name, p in customer_panels.items()
            if panels is None or name in panels
        ],
    )


def _panel_data(panel: CustomerPanel, customer: Customer, viewer) -> Any:
    data = panel.load(customer)
    return panel.for_viewer(data, viewer) if viewer is not None and panel.for_viewer else data


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
    # The customer's charges and renewals in the page's span of time (payments are not audit events).
    payments: list[Payment] = field(default_factory=list)

    @property
    def rows(self) -> list:
        """Events and payments together, newest first."""
        return sorted([*self.events, *self.payments], key=lambda row: row.occurred_at, reverse=True)


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
    # The page spans from its oldest event (or the beginning, on the last page) up to the cursor (or now):
    # consecutive pages' spans touch without overlapping, so each payment is shown once.
    payments = Payment.objects.filter(customer_id=customer_id)
    if position is not None:
        payments = payments.filter(occurred_at__lt=position[0])
    if more and rows:
        payments = payments.filter(occurred_at__gte=rows[-1].occurred_at)
    return TimelinePage(
        events=rows,
        next_cursor=_encode_cursor(rows[-1]) if more and rows else None,
        payments=list(payments.order_by("-occurred_at", "-id")[:limit]),
    )


def timeline_webhook_events(events: list[AuditEvent]) -> dict[str, int]:
    """The inbox rows behind a page's provider events ("stripe:evt_123" -> WebhookEvent id): one query on the
    (provider, event_id) unique index, so each provider event links to what the provider sent."""
    pairs = set()
    for event in events:
        provider, _, event_id = event.actor_label.partition(":")
        if event.actor_kind == AuditEvent.ActorKind.PROVIDER and provider in Provider.values and event_id:
            pairs.add((provider, event_id))
    if not pairs:
        return {}
    # Two IN lists, not 50 OR-ed pairs: the same index probes, without the ORM building and compiling a
    # 50-branch condition on every page (a tenth of the page's time). The pairs are checked here.
    rows = WebhookEvent.objects.filter(
        provider__in={provider for provider, _ in pairs}, event_id__in={event_id for _, event_id in pairs}
    ).values_list("pk", "provider", "event_id")
    return {f"{provider}:{event_id}": pk for pk, provider, event_id in rows if (provider, event_id) in pairs}


# Below this a trigram index can't narrow the search (pg_trgm needs a whole trigram), so it would scan.
PARTIAL_SEARCH_MIN = 3


def customer_find(term: str) -> list[Customer]:
    """The customers :func:`customer_find_ids` finds, in its order."""
    ranked = customer_find_ids(term)
    found = Customer.objects.in_bulk(ranked)
    return [found[pk] for pk in ranked if pk in found]


def customer_find_ids(term: str) -> list[int]:
    """Exact matches first; part of a handle or e-mail only when nothing matches exactly.

    Exact: external id, any provider id (identity, the apps' lookups, payment or Stripe invoice id,
    refund id), the customer's number, the whole handle or e-mail in any case. These are index probes,
    sent as one UNION ALL (one round trip, ranked in that order). Partial matches use the pg_trgm GIN
    indexes on UPPER(handle) and UPPER(email) (monetization migration 0016), so ``icontains`` is an
    index scan, not a table scan; still, on a million customers a common fragment costs 10-30 ms, so
    it is not paid when an id already names the customer.
    """
    term = term.strip()
    if not term:
        return []
    handle = term[1:] if term.startswith("@") else term
    ids = _exact_matches(term, handle)
    if not ids and len(handle) >= PARTIAL_SEARCH_MIN:
        ids = list(
            Customer.objects.filter(Q(handle__icontains=handle) | Q(email__icontains=term))
            .order_by("-id")
            .values_list("id", flat=True)[:SECTION_LIMIT]
        )
    return list(dict.fromkeys(ids))[:SECTION_LIMIT]


# Where the apps' lookups rank among the core's exact probes: after the provider identities.
_LOOKUPS_RANK = 2


def _exact_matches(term: str, handle: str) -> list[int]:
    def probe(rank: int, qs, column: str = "customer_id", limit: int = 20):
        return qs.order_by().annotate(rank=Value(rank)).values_list(column, "rank")[:limit]

    probes = [
        probe(0, Customer.objects.filter(external_id=term), "id", 1),
        probe(1, ProviderIdentity.objects.filter(value=term)),
        # The unique indexes lead with provider: naming every provider keeps this an index lookup.
        probe(3, Payment.objects.filter(provider__in=list(Provider.values), provider_reference=term)),
        probe(4, Refund.objects.filter(provider_refund_id=term)),
        # The B-tree indexes on UPPER(handle) and UPPER(email) (monetization migration 0020).
        probe(6, Customer.objects.filter(handle__iexact=handle), "id"),
        probe(6, Customer.objects.filter(email__iexact=term), "id"),
    ]
    if term.isdigit() and len(term) < 19:
        probes.append(probe(5, Customer.objects.filter(pk=int(term)), "id", 1))
    rows = sorted(probes[0].union(*probes[1:], all=True), key=lambda row: row[1])
    looked_up = [pk for lookup in customer_lookups for pk in lookup(term)]
    return [
        *(pk for pk, rank in rows if rank < _LOOKUPS_RANK),
        *looked_up,
        *(pk for pk, rank in rows if rank > _LOOKUPS_RANK),
    ]


# A subscription renews at most monthly: two platforms charging within this window means paying twice.
DOUBLE_PAYING_WINDOW = datetime.timedelta(days=35)
RECENT_REFUNDS = datetime.timedelta(days=30)


@dataclass(frozen=True)
class CustomerSummary:
    """The customer page's header line: what Support asks first."""

    lifetime_value: dict[str, Any]  # currency -> net paid (charged less refunded)
    refunds_30d: int
    disputes: int
    open_disputes: int
    paying_providers: list[str]  # providers with a successful charge in the last 35 days
    facts: list[SummaryFact] = field(default_factory=list)  # the apps' (current plan and platform)

    @property
    def paying_twice(self) -> bool:
        return len(self.paying_providers) > 1


def customer_summary(customer_id: int) -> CustomerSummary:
    """One query for the counts and sums (index scans on the customer's rows), and one per app's facts,
    whatever the history's length."""
    now = clock.now()
    paid = [Payment.Status.SUCCEEDED, Payment.Status.PARTIALLY_REFUNDED, Payment.Status.REFUNDED]
    # One round trip instead of four: the header is on every customer page.
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH paid AS (
                SELECT amount_currency, amount, refunded, provider, occurred_at FROM {Payment._meta.db_table}
                WHERE customer_id = %(customer)s AND status = ANY(%(paid)s)
            ), lifetime AS (
                SELECT amount_currency, sum(amount) - sum(refunded) AS net FROM paid GROUP BY amount_currency
            )
            SELECT
                ARRAY(SELECT amount_currency FROM lifetime ORDER BY amount_currency),
                ARRAY(SELECT net FROM lifetime ORDER BY amount_currency),
                ARRAY(SELECT DISTINCT provider FROM paid WHERE occurred_at >= %(paying_since)s ORDER BY provider),
                (SELECT count(*) FROM {Dispute._meta.db_table} WHERE customer_id = %(customer)s),
                (SELECT count(*) FROM {Dispute._meta.db_table}
                 WHERE customer_id = %(customer)s AND status = ANY(%(open)s)),
                (SELECT count(*) FROM {Refund._meta.db_table}
                 WHERE customer_id = %(customer)s AND requested_at >= %(refunds_since)s AND status <> %(rejected)s)
            """,  # noqa: S608 (table names from model metadata; values are parameters)
            {
                "customer": customer_id,
                "paid": [str(status) for status in paid],
                "paying_since": now - DOUBLE_PAYING_WINDOW,
                "open": [str(status) for status in Dispute.OPEN],
                "refunds_since": now - RECENT_REFUNDS,
                "rejected": str(Refund.Status.REJECTED),
            },
        )
        currencies, nets, providers, disputes, open_disputes, refunds_30d = cursor.fetchone()
    return CustomerSummary(
        lifetime_value=dict(zip(currencies, nets, strict=True)),
        refunds_30d=refunds_30d,
        disputes=disputes,
        open_disputes=open_disputes,
        paying_providers=[Provider(p).label for p in providers],
        facts=[fact for facts in customer_summary_facts for fact in facts(customer_id)],
    )
