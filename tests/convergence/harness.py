"""Delivering provider notifications the way providers do, and reading back what we made of them.

Providers reorder, repeat and delay. A simulated history (one customer's life at one provider,
built by a simulator that keeps the provider's own book) is turned into :class:`Delivery` rows:
the exact HTTP requests the provider would send (signed bodies, the provider's headers). They go
to the real webhook endpoints of a live server over HTTP, in the provider's order or shuffled,
repeated and spread over waves (so a late event really arrives after its successors were
applied), and a real Celery worker applies them. :func:`settle` waits until the inbox holds no
unfinished event; :func:`customer_books` reads what we hold for a customer in a form that two runs
of the same history (under different id namespaces) and the simulator's book can be compared with.

Two runs of one history use two namespaces (every provider id and customer id carries it), so the
in-order run and the shuffled run live side by side in one database; :func:`strip` removes the
namespace before comparing.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import requests
from django.db.models import Sum

from monetization.models import Customer, JournalLine, Payment, Refund, WebhookEvent
from subscriptions.entitlements import resolve_entitlements
from subscriptions.models import Subscription

# An event in one of these needs nothing more from anyone (a person replays a failed one).
FINISHED = ("applied", "ignored", "failed")


@dataclass(frozen=True)
class Delivery:
    """One HTTP request a provider makes to our webhook endpoint."""

    history: str  # the simulated history it belongs to (for reports)
    seq: int  # its place in the provider's own order
    path: str  # e.g. "/api/v1/webhooks/stripe"
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    query: str = ""  # e.g. "token=..." for Play's push endpoint


@dataclass
class SendReport:
    sent: int = 0
    duplicates: int = 0
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def all_accepted(self) -> bool:
        return all(200 <= status < 300 for status in self.statuses)


def _post(session: requests.Session, base_url: str, delivery: Delivery, report: SendReport) -> None:
    url = base_url.rstrip("/") + delivery.path + (f"?{delivery.query}" if delivery.query else "")
    response = session.post(url, data=delivery.body, headers=delivery.headers, timeout=60)
    report.sent += 1
    report.statuses[response.status_code] += 1
    if not 200 <= response.status_code < 300:
        raise AssertionError(
            f"{delivery.history}#{delivery.seq} {delivery.path}: {response.status_code} {response.text[:500]}"
        )


def deliver_in_order(base_url: str, deliveries: Iterable[Delivery]) -> SendReport:
    """Each history's deliveries in the provider's own order, once each."""
    report = SendReport()
    with requests.Session() as session:
        for delivery in sorted(deliveries, key=lambda d: (d.history, d.seq)):
            _post(session, base_url, delivery, report)
    return report


def deliver_shuffled(
    base_url: str,
    deliveries: Sequence[Delivery],
    *,
    rng: random.Random,
    repeat: float = 0.3,
    waves: int = 4,
    pause: float = 0.3,
) -> SendReport:
    """All deliveries shuffled together, a ``repeat`` share of them sent again, in ``waves`` with a
    ``pause`` between them so the worker applies some before the rest (late and out of order) arrive."""
    pool = list(deliveries)
    pool += [rng.choice(pool) for _ in range(int(len(pool) * repeat))] if pool else []
    rng.shuffle(pool)
    report = SendReport(duplicates=len(pool) - len(deliveries))
    size = max(1, -(-len(pool) // max(1, waves)))
    with requests.Session() as session:
        for start in range(0, len(pool), size):
            for delivery in pool[start : start + size]:
                _post(session, base_url, delivery, report)
            if start + size < len(pool):
                time.sleep(pause)
    return report


def unfinished() -> dict[str, int]:
    """Stored events not finished yet, by status."""
    rows = WebhookEvent.objects.exclude(status__in=FINISHED).values_list("status", flat=True)
    counts: dict[str, int] = defaultdict(int)
    for status in rows:
        counts[status] += 1
    return dict(counts)


def settle(*, timeout: float = 180.0, quiet: float = 1.0) -> None:
    """Wait until every stored event is finished and has stayed so for ``quiet`` seconds (a retry due
    later may still change things). Raises with what is stuck after ``timeout``."""
    deadline = time.monotonic() + timeout
    calm_since = None
    while time.monotonic() < deadline:
        if unfinished():
            calm_since = None
        elif calm_since is None:
            calm_since = time.monotonic()
        elif time.monotonic() - calm_since >= quiet:
            return
        time.sleep(0.1)
    stuck = list(
        WebhookEvent.objects.exclude(status__in=FINISHED).values_list("provider", "event_type", "status", "last_error")[
            :20
        ]
    )
    raise AssertionError(f"events still unfinished after {timeout} s: {unfinished()}; e.g. {stuck}")


def failed_events() -> list[tuple]:
    return list(
        WebhookEvent.objects.filter(status="failed").values_list("provider", "event_id", "event_type", "last_error")
    )


def strip(value, namespace: str):
    """``value`` with every occurrence of ``namespace`` removed (recursively through lists, tuples, dicts)."""
    if isinstance(value, str):
        return value.replace(namespace, "")
    if isinstance(value, tuple):
        return tuple(strip(v, namespace) for v in value)
    if isinstance(value, list):
        return [strip(v, namespace) for v in value]
    if isinstance(value, dict):
        return {strip(k, namespace): strip(v, namespace) for k, v in value.items()}
    return value


def customer_books(external_id: str) -> dict:
    """What we hold for one customer, in comparable form: subscriptions, entitlements, payments,
    refunds and the customer's ledger balances per account and currency."""
    customer = Customer.objects.get(external_id=external_id)
    subscriptions = sorted(
        (
            s.provider,
            s.provider_subscription_id,
            s.plan.code,
            s.state,
            s.current_period_end,
            s.auto_renew,
        )
        for s in Subscription.objects.filter(customer=customer).select_related("plan")
    )
    entitlements = sorted({e.key for e in resolve_entitlements(customer.pk)})
    payments = sorted(
        (
            p.provider,
            p.provider_reference,
            p.kind,
            str(p.amount.amount),
            str(p.amount.currency),
            p.status,
            str(p.refunded.amount),
        )
        for p in Payment.objects.filter(customer=customer)
    )
    refunds = sorted(
        (r.payment.provider_reference, str(r.amount.amount), r.status)
        for r in Refund.objects.filter(customer=customer).select_related("payment")
    )
    ledger = {
        (row["account"], row["currency"]): Decimal(row["total"] or 0)
        for row in JournalLine.objects.filter(entry__customer=customer)
        .values("account", "currency")
        .annotate(total=Sum("amount"))
    }
    return {
        "subscriptions": subscriptions,
        "entitlements": entitlements,
        "payments": payments,
        "refunds": refunds,
        "ledger": {f"{a}/{c}": str(v) for (a, c), v in sorted(ledger.items()) if v != 0},
    }
