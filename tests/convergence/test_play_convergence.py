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

from .harness import soak_batches, store_batch
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


def test_play_histories_converge_on_plays_book(play_book, soak_workers, soak_server, store_catalog):
    store: dict = {"resources": {}, "orders": {}}

    def history(i: int, namespace: str):
        book, deliveries, answers = play_history(random.Random(2000 + i), namespace)
        CustomerFactory(external_id=book.external_id)  # the app sets obfuscatedExternalAccountId to it
        for key in store:
            store[key].update(answers[key])
        return book, deliveries

    def publish_book():
        # Written whole, then moved into place: the worker never reads half a book.
        play_book.with_suffix(".tmp").write_text(json.dumps(store))
        play_book.with_suffix(".tmp").replace(play_book)

    server = soak_server()

    def run_batch(first: int, count: int):
        return store_batch(
            server,
            first,
            count,
            prefix="P",
            history=history,
            expected=_expected,
            held=_held,
            before_send=publish_book,
        )

    outcome = soak_batches("google_play", HISTORIES, run_batch)
    assert outcome.diverged == [], f"{len(outcome.diverged)} of {HISTORIES} diverged, e.g. {outcome.diverged[:3]}"
