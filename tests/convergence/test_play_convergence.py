"""Google Play histories delivered in order and shuffled (repeated, in waves) to a real worker, which
reads Play's book back through the Play API double, end where Play's book ends: state, access,
every order paid, refunds (partial and whole) and the ledger.

``SOAK_HISTORIES`` scales it (``make soak``: thousands); CI runs the default.
"""

import json
import os
import random
from decimal import Decimal

import pytest

from tests.monetization.factories import CustomerFactory
from tests.webhooks.support import PLAY_PACKAGE, PLAY_PUSH_TOKEN

from .harness import customer_books, deliver_in_order, deliver_shuffled, failed_events, settle, strip
from .play_sim import PRICE, play_history

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
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
    return {
        "state": book.our_state,
        "entitled": book.entitled,
        "payments": sorted(
            (order_id, f"{PRICE / 100:.4f}", f"{book.refunded(order_id) / 100:.4f}") for order_id in book.orders
        ),
        "refunds": Decimal(sum(book.refunded(order_id) for order_id in book.orders)) / 100,
    }


def _held(books: dict) -> dict:
    (subscription,) = books["subscriptions"]
    return {
        "state": subscription[3],
        "entitled": bool(books["entitlements"]),
        "payments": sorted((ref, amount, refunded) for _p, ref, _k, amount, _c, _s, refunded in books["payments"]),
        "refunds": Decimal(books["ledger"].get("contra_revenue:refunds/USD", "0")),
    }


def test_play_histories_converge_on_plays_book(play_book, celery_worker_process, live_server, catalog):
    books, ordered, shuffled = {}, [], []
    store: dict = {"resources": {}, "orders": {}}
    for i in range(HISTORIES):
        for run, deliveries in (("PO", ordered), ("PS", shuffled)):
            ns = f"{run}{i}Z"
            book, history, answers = play_history(random.Random(2000 + i), ns)
            CustomerFactory(external_id=book.external_id)  # the app sets obfuscatedExternalAccountId to it
            for key in store:
                store[key].update(answers[key])
            books[ns] = book
            deliveries.extend(history)
    play_book.write_text(json.dumps(store))
    assert deliver_in_order(live_server.url, ordered).all_accepted
    report = deliver_shuffled(live_server.url, shuffled, rng=random.Random(7), repeat=0.3, waves=4)
    assert report.all_accepted and report.duplicates
    settle(timeout=60 + HISTORIES)
    assert failed_events() == []
    diverged = []
    for i in range(HISTORIES):
        o, s = f"PO{i}Z", f"PS{i}Z"
        in_order = strip(customer_books(books[o].external_id), o)
        out_of_order = strip(customer_books(books[s].external_id), s)
        expected = strip(_expected(books[o]), o)
        if in_order != out_of_order or _held(in_order) != expected:
            diverged.append((i, expected, _held(in_order), _held(out_of_order)))
    assert diverged == [], f"{len(diverged)} of {HISTORIES} diverged, e.g. {diverged[:3]}"
