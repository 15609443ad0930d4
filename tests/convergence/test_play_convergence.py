"""Google Play histories delivered in order and shuffled (repeated, in waves) to a real worker, which
reads Play's book back through the Play API double, end where Play's book ends: state, access,
every order paid, refunds (partial and whole) and the ledger.

``SOAK_HISTORIES`` scales it (``make soak``: thousands); CI runs the default.
"""

import json
import os
import random
import time
from decimal import Decimal

import pytest

from tests.monetization.factories import CustomerFactory
from tests.webhooks.support import PLAY_PACKAGE, PLAY_PUSH_TOKEN

from .harness import (
    BatchOutcome,
    Stopwatch,
    customers_books,
    deliver_interleaved,
    failed_events,
    settle,
    soak_batches,
    strip,
)
from .play_sim import play_history

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.worker,
    pytest.mark.timeout(int(os.environ.get("SOAK_TIMEOUT", "300"))),
]
HISTORIES = int(os.environ.get("SOAK_HISTORIES", "120"))


@pytest.fixture
def play_book(tmp_path, monkeypatch, settings):
    """Where the simulated Play keeps its book; the worker's Play adapter reads it (set before the worker starts)."""
    path = tmp_path / "play-book.json"
    path.write_text(json.dumps({"resources": {}, "orders": {}}))
    monkeypatch.setenv("PLAY_BOOK_FILE", str(path))
    monkeypatch.setenv("PAYMENT_PROVIDER_GOOGLE_PLAY", "monetization.demo.providers.BookedGooglePlayProvider")
    monkeypatch.setenv("GOOGLE_PLAY_PACKAGE_NAME", PLAY_PACKAGE)
    settings.GOOGLE_PLAY_PACKAGE_NAME = PLAY_PACKAGE
    settings.GOOGLE_PLAY_PUSH_TOKEN = PLAY_PUSH_TOKEN
    return path


def _expected(book) -> dict:
    purchases = book.purchases()
    return {
        "subscriptions": sorted((p.token, p.plan, p.our_state) for p in purchases),
        "entitled": book.entitled,
        "payments": sorted(
            (order_id, f"{p.price / 100:.4f}", f"{p.refunded(order_id) / 100:.4f}")
            for p in purchases
            for order_id in p.orders
        ),
        "refunds": Decimal(sum(p.refunded(order_id) for p in purchases for order_id in p.orders)) / 100,
    }


def _held(books: dict) -> dict:
    return {
        # An upgrade or downgrade is a new purchase token: the one it replaced ends.
        "subscriptions": sorted((ref, plan, state) for _p, ref, plan, state, _end, _renew in books["subscriptions"]),
        "entitled": bool(books["entitlements"]),
        "payments": sorted((ref, amount, refunded) for _p, ref, _k, amount, _c, _s, refunded in books["payments"]),
        "refunds": Decimal(books["ledger"].get("contra_revenue:refunds/USD", "0")),
    }


def test_play_histories_converge_on_plays_book(play_book, soak_workers, live_server, store_catalog):
    store: dict = {"resources": {}, "orders": {}}

    def run_batch(first: int, count: int) -> BatchOutcome:
        watch = Stopwatch()
        books, ordered, shuffled = {}, [], []
        for i in range(first, first + count):
            for run, deliveries in (("PO", ordered), ("PS", shuffled)):
                ns = f"{run}{i}Z"
                book, history, answers = play_history(random.Random(2000 + i), ns)
                CustomerFactory(external_id=book.external_id)  # the app sets obfuscatedExternalAccountId to it
                for key in store:
                    store[key].update(answers[key])
                books[ns] = book
                deliveries.extend(history)
        # Written whole, then moved into place: the worker never reads half a book.
        play_book.with_suffix(".tmp").write_text(json.dumps(store))
        play_book.with_suffix(".tmp").replace(play_book)
        with watch("send"):
            in_order, report = deliver_interleaved(
                live_server.url, ordered, shuffled, rng=random.Random(7 + first), repeat=0.3, waves=4
            )
        assert in_order.all_accepted and report.all_accepted and report.duplicates
        with watch("drain"):
            settle(timeout=60 + count)
        assert failed_events() == []
        diverged = []
        compared = time.monotonic()
        held = customers_books(book.external_id for book in books.values())
        for i in range(first, first + count):
            o, s = f"PO{i}Z", f"PS{i}Z"
            in_order_books = strip(held[books[o].external_id], o)
            out_of_order = strip(held[books[s].external_id], s)
            expected = strip(_expected(books[o]), o)
            if in_order_books != out_of_order or _held(in_order_books) != expected:
                diverged.append((i, expected, _held(in_order_books), _held(out_of_order)))
        watch.phases["compare"] = time.monotonic() - compared
        return BatchOutcome(count, in_order.sent + report.sent, report.duplicates, diverged, watch.phases)

    outcome = soak_batches("google_play", HISTORIES, run_batch)
    assert outcome.diverged == [], f"{len(outcome.diverged)} of {HISTORIES} diverged, e.g. {outcome.diverged[:3]}"
