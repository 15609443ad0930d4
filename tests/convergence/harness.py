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

import os
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
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
    paused: float = 0.0  # seconds spent between waves, waiting for the worker

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


def deliver_interleaved(
    base_url: str,
    ordered: Sequence[Delivery],
    shuffled: Sequence[Delivery],
    *,
    rng: random.Random,
    repeat: float = 0.3,
    waves: int = 4,
    pause: float | None = None,
    senders: int | None = None,
) -> tuple[SendReport, SendReport]:
    """A batch of histories sent at once: the in-order run (each history's deliveries in the provider's
    order, one history after another on one sender) and the shuffled run (all of the batch's deliveries
    shuffled together, a ``repeat`` share sent again) interleaved over ``senders`` concurrent senders, in
    ``waves`` with a ``pause`` between them, so the worker applies some before the rest arrive. The pause
    (``pause=None``) lasts until the worker has taken every event sent so far, at most a second plus 10 ms per
    delivery of the wave: a late event then really finds its successors applied, however large the batch and
    however busy the machine (a fixed pause was too short for a large batch and idle time for a small one).

    Returns the in-order and the shuffled run's reports."""
    senders = senders or int(os.environ.get("SOAK_SENDERS", "4"))
    histories: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in sorted(ordered, key=lambda d: (d.history, d.seq)):
        histories[delivery.history].append(delivery)
    runs = list(histories.values())
    pool = list(shuffled)
    pool += [rng.choice(pool) for _ in range(int(len(pool) * repeat))] if pool else []
    rng.shuffle(pool)
    in_order, out_of_order = SendReport(), SendReport(duplicates=len(pool) - len(shuffled))
    local, lock = threading.local(), threading.Lock()

    def send(chunk: Sequence[Delivery], report: SendReport) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        mine = SendReport()
        for delivery in chunk:
            _post(session, base_url, delivery, mine)
        with lock:
            report.sent += mine.sent
            for status, n in mine.statuses.items():
                report.statuses[status] += n

    waves = max(1, waves)
    with ThreadPoolExecutor(max_workers=max(1, senders)) as executor:
        for wave in range(waves):
            # The wave's in-order histories and slices of its shuffled deliveries, submitted alternately.
            histories_now = runs[wave::waves]
            part = pool[wave * len(pool) // waves : (wave + 1) * len(pool) // waves]
            slices = max(1, senders, len(histories_now))
            jobs = []
            for k in range(slices):
                if k < len(histories_now):
                    jobs.append(executor.submit(send, histories_now[k], in_order))
                if part[k::slices]:
                    jobs.append(executor.submit(send, part[k::slices], out_of_order))
            for job in jobs:
                job.result()  # a refused delivery fails the batch
            if wave + 1 < waves:
                paused = time.monotonic()
                if pause is None:
                    caught_up(timeout=1.0 + 0.01 * (sum(map(len, histories_now)) + len(part)))
                else:
                    time.sleep(pause)
                out_of_order.paused += time.monotonic() - paused
    return in_order, out_of_order


def caught_up(*, timeout: float) -> bool:
    """Wait (at most ``timeout`` seconds) until the worker has taken every stored event: none is left
    ``received``. Events waiting for their subject or for a retry do not count: their subject may be in
    the next wave."""
    deadline = time.monotonic() + timeout
    while WebhookEvent.objects.filter(status=WebhookEvent.Status.RECEIVED).exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@dataclass
class BatchOutcome:
    histories: int  # histories of the batch (each run in order and shuffled)
    deliveries: int  # requests sent, duplicates included
    duplicates: int
    diverged: list  # what differed, per diverging history
    phases: dict[str, float] = field(default_factory=dict)  # seconds spent sending, draining, comparing


class Stopwatch:
    """Seconds per phase of a batch: ``with watch("send"): ...``."""

    def __init__(self):
        self.phases: dict[str, float] = defaultdict(float)

    def paused(self, report: SendReport) -> None:
        """Count a send's pauses between waves as such, not as sending."""
        self.phases["send"] -= report.paused
        self.phases["pauses"] += report.paused

    def __call__(self, phase: str):
        watch = self

        class _Lap:
            def __enter__(self):
                self.started = time.monotonic()

            def __exit__(self, *exc):
                watch.phases[phase] += time.monotonic() - self.started

        return _Lap()


def soak_batches(
    provider: str, total: int, run_batch: Callable[[int, int], BatchOutcome], *, size: int | None = None
) -> BatchOutcome:
    """Run ``total`` histories in batches of ``size`` (``SOAK_BATCH``, default 250): ``run_batch(first, count)``
    makes, delivers, drains and compares one batch. One line per batch says how far the run got (printed, and
    appended to ``SOAK_LOG`` when set), so a run stopped half-way still tells what it proved. With ``SOAK_BUDGET``
    (seconds) set, no batch starts after the budget is spent: the histories run so far are what is checked."""
    size = max(1, size or int(os.environ.get("SOAK_BATCH", "250")))
    log_path = os.environ.get("SOAK_LOG", "")
    started = time.monotonic()
    total_outcome = BatchOutcome(histories=0, deliveries=0, duplicates=0, diverged=[])
    budget = float(os.environ.get("SOAK_BUDGET", "0"))  # seconds; 0: run every batch
    for first in range(0, total, size):
        if budget and time.monotonic() - started > budget:
            _log(
                f"{time.strftime('%H:%M:%S')} {provider}: stopped after {total_outcome.histories} of {total} "
                f"histories, the {budget:.0f} s budget (SOAK_BUDGET) spent",
                log_path,
            )
            break
        batch_started = time.monotonic()
        outcome = run_batch(first, min(size, total - first))
        total_outcome.histories += outcome.histories
        total_outcome.deliveries += outcome.deliveries
        total_outcome.duplicates += outcome.duplicates
        total_outcome.diverged += outcome.diverged
        now = time.monotonic()
        line = (
            f"{time.strftime('%H:%M:%S')} {provider} batch {first // size + 1}/{-(-total // size)}: "
            f"histories {total_outcome.histories}/{total}, deliveries {total_outcome.deliveries} "
            f"({total_outcome.duplicates} duplicates), diverged {len(total_outcome.diverged)}; "
            f"batch {now - batch_started:.1f} s ({', '.join(f'{k} {v:.1f}' for k, v in outcome.phases.items())}), "
            f"total {now - started:.1f} s"
        )
        _log(line, log_path)
        for example in outcome.diverged[:2]:  # what diverged, so a partial run says why
            _log(f"    diverged: {str(example)[:1500]}", log_path)
    return total_outcome


def store_batch(
    base_url: str,
    first: int,
    count: int,
    *,
    prefix: str,
    history: Callable[[int, str], tuple[object, list[Delivery]]],
    expected: Callable[[object], dict],
    held: Callable[[dict], dict],
    before_send: Callable[[], None] | None = None,
) -> BatchOutcome:
    """One batch of a store's histories: history ``i`` made twice, under namespaces ``<prefix>O<i>Z`` (delivered
    in order) and ``<prefix>S<i>Z`` (shuffled, repeated, in waves), drained, then each pair compared with itself
    and with the store's book. ``history(i, namespace)`` returns the store's book and its deliveries (and sets up
    the customer); ``expected(book)`` and ``held(customer_books)`` put both sides in the same words."""
    watch = Stopwatch()
    books, ordered, shuffled = {}, [], []
    for i in range(first, first + count):
        for namespace, deliveries in ((f"{prefix}O{i}Z", ordered), (f"{prefix}S{i}Z", shuffled)):
            book, made = history(i, namespace)
            books[namespace] = book
            deliveries.extend(made)
    if before_send is not None:
        before_send()
    with watch("send"):
        in_order, report = deliver_interleaved(
            base_url, ordered, shuffled, rng=random.Random(7 + first), repeat=0.3, waves=4
        )
    watch.paused(report)
    assert in_order.all_accepted and report.all_accepted and report.duplicates
    with watch("drain"):
        settle(timeout=60 + count)
    assert_none_failed()
    diverged = []
    compared = time.monotonic()
    ours = customers_books(book.external_id for book in books.values())
    for i in range(first, first + count):
        o, s = f"{prefix}O{i}Z", f"{prefix}S{i}Z"
        in_order_books = strip(ours[books[o].external_id], o)
        out_of_order = strip(ours[books[s].external_id], s)
        want = strip(expected(books[o]), o)
        if in_order_books != out_of_order or held(in_order_books) != want:
            # The book's view, and every part of our books where the two runs differ (in order, shuffled): a
            # difference outside the book's view (periods, auto-renew, ledger accounts) shows only there.
            apart = {k: (v, out_of_order[k]) for k, v in in_order_books.items() if out_of_order[k] != v}
            diverged.append((i, want, held(in_order_books), held(out_of_order), apart))
    watch.phases["compare"] = time.monotonic() - compared
    return BatchOutcome(count, in_order.sent + report.sent, report.duplicates, diverged, watch.phases)


def _log(line: str, log_path: str) -> None:
    print(line, flush=True)
    if log_path:
        with open(log_path, "a") as fh:
            fh.write(line + "\n")


def unfinished() -> dict[str, int]:
    """Stored events not finished yet, by status."""
    # Asked for by the unfinished statuses (not "all but finished"): the partial index answers it at once,
    # however many finished events a long soak has stored.
    rows = WebhookEvent.objects.filter(status__in=WebhookEvent.UNFINISHED).values_list("status", flat=True)
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
        WebhookEvent.objects.filter(status__in=WebhookEvent.UNFINISHED).values_list(
            "provider", "event_type", "status", "last_error"
        )[:20]
    )
    raise AssertionError(f"events still unfinished after {timeout} s: {unfinished()}; e.g. {stuck}")


def assert_none_failed() -> None:
    """No stored event ended ``failed``; when some did, their errors go to the log (``SOAK_LOG``) before the
    assertion stops the run, since the test database and its inbox are dropped after it."""
    failed = failed_events()
    if failed:
        _log(f"{time.strftime('%H:%M:%S')} {len(failed)} events failed, e.g.:", os.environ.get("SOAK_LOG", ""))
        for provider, event_id, event_type, error in failed[:10]:
            _log(f"    failed: {provider} {event_id} {event_type}: {str(error)[:2000]}", os.environ.get("SOAK_LOG", ""))
    assert failed == []


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
    return customers_books([external_id])[external_id]


def customers_books(external_ids: Iterable[str]) -> dict[str, dict]:
    """:func:`customer_books` for many customers, in a few queries (a soak batch compares thousands)."""
    customers = dict(Customer.objects.filter(external_id__in=list(external_ids)).values_list("pk", "external_id"))
    books = {
        external_id: {"subscriptions": [], "entitlements": [], "payments": [], "refunds": [], "ledger": {}}
        for external_id in customers.values()
    }
    for s in Subscription.objects.filter(customer_id__in=customers).select_related("plan"):
        books[customers[s.customer_id]]["subscriptions"].append(
            (s.provider, s.provider_subscription_id, s.plan.code, s.state, s.current_period_end, s.auto_renew)
        )
    for p in Payment.objects.filter(customer_id__in=customers):
        books[customers[p.customer_id]]["payments"].append(
            (
                p.provider,
                p.provider_reference,
                p.kind,
                str(p.amount.amount),
                str(p.amount.currency),
                p.status,
                str(p.refunded.amount),
            )
        )
    for r in Refund.objects.filter(customer_id__in=customers).select_related("payment"):
        books[customers[r.customer_id]]["refunds"].append(
            (r.payment.provider_reference, str(r.amount.amount), r.status)
        )
    for row in (
        JournalLine.objects.filter(entry__customer_id__in=customers)
        .values("entry__customer_id", "account", "currency")
        .annotate(total=Sum("amount"))
        .order_by("entry__customer_id", "account", "currency")
    ):
        total = Decimal(row["total"] or 0)
        if total != 0:
            books[customers[row["entry__customer_id"]]]["ledger"][f"{row['account']}/{row['currency']}"] = str(total)
    for pk, external_id in customers.items():
        book = books[external_id]
        for key in ("subscriptions", "payments", "refunds"):
            book[key].sort()
        book["entitlements"] = sorted({e.key for e in resolve_entitlements(pk)})
    return books
