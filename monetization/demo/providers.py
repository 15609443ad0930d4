"""Test doubles of the providers, for the demo (``make run`` points the providers here) and the tests.

:class:`FakeProvider` speaks :class:`PaymentProvider`: it keeps its state in memory,
records every call, and can be told to fail the next call of an operation, so the
demo's staff actions go through and tests exercise our side of every path without
the network. Signature checking is the real adapters' job and is tested there with
real keys. :class:`FakePayoutProvider` speaks :class:`PayoutProvider` the same way.
Nothing here is in the production schema.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from dataclasses import dataclass, field, replace
from datetime import timedelta

from djmoney.money import Money

from monetization import clock
from monetization.money import minor_from_money
from monetization.providers.base import (
    PayoutError,
    ProviderError,
    ProviderEvent,
    RefundResult,
    SubscriptionSnapshot,
    SubscriptionStatus,
    TransferResult,
    UnsupportedOperation,
)
from monetization.providers.google_play import GooglePlayProvider
from monetization.providers.stripe import StripeProvider


@dataclass
class FakeProvider:
    name: str = "fake"
    subscriptions: dict[str, SubscriptionSnapshot] = field(default_factory=dict)
    refunds: dict[str, RefundResult] = field(default_factory=dict)  # by idempotency key
    calls: list[tuple[str, dict]] = field(default_factory=list)
    fail_next: dict[str, ProviderError] = field(default_factory=dict)
    supports_refunds: bool = True
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def _maybe_fail(self, operation: str) -> None:
        error = self.fail_next.pop(operation, None)
        if error is not None:
            raise error

    def verify_webhook(self, *, body: bytes, headers: dict[str, str]) -> list[ProviderEvent]:
        raise NotImplementedError("the fake provider receives no webhooks; use the real adapters with test keys")

    def fetch_subscription(self, provider_subscription_id: str) -> SubscriptionSnapshot:
        self.calls.append(("fetch_subscription", {"id": provider_subscription_id}))
        self._maybe_fail("fetch_subscription")
        try:
            return self.subscriptions[provider_subscription_id]
        except KeyError:
            raise ProviderError(f"no such subscription {provider_subscription_id}", code="not_found") from None

    def refund(self, *, payment_reference: str, amount: Money, idempotency_key: str, reason: str) -> RefundResult:
        self.calls.append(("refund", {"payment": payment_reference, "amount": amount, "key": idempotency_key}))
        if not self.supports_refunds:
            raise UnsupportedOperation(f"{self.name} does not allow developer-initiated refunds")
        self._maybe_fail("refund")
        # Like Stripe: the same idempotency key returns the first result.
        if idempotency_key not in self.refunds:
            self.refunds[idempotency_key] = RefundResult(
                provider_refund_id=f"re_fake_{next(self._ids)}", amount=amount, status="succeeded"
            )
        return self.refunds[idempotency_key]

    def cancel_subscription(self, provider_subscription_id: str, *, at_period_end: bool, idempotency_key: str) -> None:
        self.calls.append(("cancel_subscription", {"id": provider_subscription_id, "at_period_end": at_period_end}))
        self._maybe_fail("cancel_subscription")
        snap = self.subscriptions.get(provider_subscription_id)
        if snap is not None:
            # Cancelled now, it has ended; at the period end, it runs until then without renewing.
            status = SubscriptionStatus.EXPIRED if not at_period_end else snap.status
            self.subscriptions[provider_subscription_id] = replace(
                snap, auto_renew=False, status=status, as_of=clock.now()
            )

    def pause_subscription(self, provider_subscription_id: str, *, idempotency_key: str) -> None:
        self.calls.append(("pause_subscription", {"id": provider_subscription_id, "key": idempotency_key}))
        self._maybe_fail("pause_subscription")

    def resume_subscription(self, provider_subscription_id: str, *, idempotency_key: str) -> None:
        self.calls.append(("resume_subscription", {"id": provider_subscription_id, "key": idempotency_key}))
        self._maybe_fail("resume_subscription")

    def extend_subscription(
        self, provider_subscription_id: str, *, days: int, reason: str, idempotency_key: str
    ) -> SubscriptionSnapshot:
        self.calls.append(("extend_subscription", {"id": provider_subscription_id, "days": days}))
        self._maybe_fail("extend_subscription")
        snap = self.subscriptions.get(provider_subscription_id)
        if snap is None:
            raise ProviderError(f"no such subscription {provider_subscription_id}", code="not_found")
        end = (snap.current_period_end or clock.now()) + timedelta(days=days)
        snap = replace(snap, current_period_end=end, as_of=clock.now())
        self.subscriptions[provider_subscription_id] = snap
        return snap


class FakePayoutProvider:
    """In memory, once per idempotency key, like a real payout provider (per process: the demo's and
    the tests' double). ``fail_destinations``: accounts whose transfers fail."""

    name = "fake"
    fail_destinations: set[str] = set()
    # By idempotency key, shared by every instance of the process (a provider remembers keys across runs).
    transfers: dict[str, TransferResult] = {}
    _ids = itertools.count(1)
    _lock = threading.Lock()  # paying runs share a cycle from several threads

    def transfer(self, *, destination: str, amount: Money, idempotency_key: str) -> TransferResult:
        if destination in self.fail_destinations:
            raise PayoutError(f"destination {destination} rejected the transfer")
        with self._lock:
            first = self.transfers.get(idempotency_key)
            if first is not None:
                return replace(first, replayed=True)
            result = TransferResult(transfer_id=f"tr_fake_{next(self._ids)}", amount=amount, destination=destination)
            self.transfers[idempotency_key] = result
            return result


class StripeBookDouble(StripeProvider):
    """The real Stripe adapter (signatures, payload parsing), its API reads answered from a simulator's book.

    The book is a JSON file (``STRIPE_DOUBLE_BOOK``, from the environment, so a worker process reads
    the same one): which invoice each payment intent paid, each charge's refunds. Written by the
    convergence tests' Stripe simulator before it delivers its events.
    """

    _lock = threading.Lock()

    def _path(self) -> str:
        return os.environ.get("STRIPE_DOUBLE_BOOK", "")

    def _book(self) -> dict:
        try:
            mtime = os.stat(self._path()).st_mtime_ns
        except OSError:
            raise ProviderError("the Stripe double has no book", code="provider_unavailable", retryable=True) from None
        cached = getattr(self, "_cached", None)
        if cached is None or cached[0] != mtime:
            with open(self._path()) as fh:
                self._cached = cached = (mtime, json.load(fh))
        return cached[1]

    def refund(self, *, payment_reference: str, amount: Money, idempotency_key: str, reason: str) -> RefundResult:
        """A refund of an invoice's charge, entered in the book (the worker then reads it), once per key."""
        with self._lock:
            book = self._book()
            done = book.setdefault("refunds_by_key", {}).get(idempotency_key)
            if done is None:
                invoice = book["invoices"].get(payment_reference)
                if invoice is None:
                    raise ProviderError(f"No payment found for invoice {payment_reference}.", code="not_found")
                refunds = book["charge_refunds"].setdefault(invoice["charge"], [])
                done = {
                    "id": f"re_{payment_reference}_{len(refunds) + 1}",
                    "object": "refund",
                    "amount": minor_from_money(amount),
                    "charge": invoice["charge"],
                    "currency": str(amount.currency).lower(),
                    "payment_intent": invoice["intent"],
                    "status": "succeeded",
                }
                refunds.append(done)
                book["refunds_by_key"][idempotency_key] = done
                with open(self._path(), "w") as fh:
                    json.dump(book, fh)
                self._cached = None
        return RefundResult(provider_refund_id=done["id"], amount=amount, status="succeeded")

    def invoice_for_payment_intent(self, payment_intent: str) -> str:
        return self._book()["intents"].get(payment_intent, "")

    def charge_refunds(self, charge_id: str) -> list[dict]:
        return list(self._book()["charge_refunds"].get(charge_id, []))


class PlayBookClient:
    """Google Play's Developer API answering from a store's book: a JSON file (``PLAY_BOOK_FILE``) of
    ``resources`` (subscriptionsv2 by purchase token), ``orders`` (orders.get by order id) and
    ``voided`` (voidedpurchases.list rows), read on every call, so a simulator in another process
    (a test, the soak run) can write what Play says and a worker reads it as the real client would."""

    def __init__(self, path: str):
        self.path = path

    def _book(self) -> dict:
        with open(self.path) as fh:
            return json.load(fh)

    def get(self, *, package_name: str, token: str) -> dict:
        try:
            return self._book()["resources"][token]
        except KeyError:
            raise ProviderError(f"no purchase {token}", code="not_found") from None

    def get_order(self, *, package_name: str, order_id: str) -> dict:
        try:
            return self._book()["orders"][order_id]
        except KeyError:
            raise ProviderError(f"no order {order_id}", code="not_found") from None

    def list_voided(self, *, package_name: str, start_ms: int, page_token: str = "") -> dict:
        rows = [row for row in self._book().get("voided", []) if int(row["voidedTimeMillis"]) >= start_ms]
        return {"voidedPurchases": rows}

    def acknowledge(self, *, package_name: str, product_id: str, token: str) -> None:
        """The book's purchases are acknowledged already (the simulator's app did it)."""

    def defer(self, *, package_name: str, token: str, body: dict) -> dict:
        raise UnsupportedOperation("the Play book is read-only")

    def cancel(self, *, package_name: str, token: str, body: dict) -> None:
        raise UnsupportedOperation("the Play book is read-only")

    def revoke(self, *, package_name: str, token: str, body: dict) -> None:
        raise UnsupportedOperation("the Play book is read-only")

    def refund_order(self, *, package_name: str, order_id: str) -> None:
        raise UnsupportedOperation("the Play book is read-only")


class BookedGooglePlayProvider(GooglePlayProvider):
    """The real Play adapter over :class:`PlayBookClient` (``PAYMENT_PROVIDER_GOOGLE_PLAY`` points here)."""

    def __init__(self, name: str = "google_play"):
        super().__init__(name, client=PlayBookClient(os.environ["PLAY_BOOK_FILE"]))
