"""Test doubles of the providers, for the demo (``make run`` points the providers here) and the tests.

:class:`FakeProvider` speaks :class:`PaymentProvider`: it keeps its state in memory,
records every call, and can be told to fail the next call of an operation, so the
demo's staff actions go through and tests exercise our side of every path without
the network. Signature checking is the real adapters' job and is tested there with
real keys. :class:`FakePayoutProvider` speaks :class:`PayoutProvider` the same way.
Nothing here is in the production schema.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import threading
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from dateutil.relativedelta import relativedelta
from djmoney.money import Money

from monetization import clock
from monetization.money import minor_from_money
from monetization.providers.base import (
    PayoutError,
    PortalSession,
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

# --- Stripe Billing double (organizations) ----------------------------------------------------


@dataclass
class BillingInvoice:
    id: str
    customer: str
    subscription: str
    currency: str
    lines: list[tuple[str, int]]  # (description, amount in minor units)
    period_start: int
    period_end: int
    billing_reason: str
    created: int
    tax: int = 0  # on top of the lines (an exclusive rate)
    status: str = "open"  # open -> paid | uncollectible
    paid_at: int | None = None

    @property
    def total(self) -> int:
        return sum(amount for _, amount in self.lines) + self.tax


@dataclass
class BillingSubscription:
    id: str
    customer: str
    seat_price_id: str
    seat_amount: int
    base_amount: int
    currency: str
    quantity: int
    anchor: datetime
    period_start: datetime
    period_end: datetime
    external_id: str
    tax_percent: Decimal | None = None
    status: str = "active"


class StripeBillingBook:
    """Stripe Billing kept in memory with its own book (the provider doubles' billing calls).

    The API calls that bill organizations keep customers, subscriptions, pending invoice
    items and invoices here, answered as Stripe would (the same idempotency key returns the
    first result). :meth:`advance` is a test clock: each subscription whose period ended is
    invoiced (base, seats x quantity, pending items) and charged, unless its customer's card
    fails (``failing_customers``: Stripe customer ids or our customers' external ids); every
    change leaves the Stripe event it would send in
    ``outbox``, rendered with the real payload builders.
    """

    def __post_init__(self):
        self.customers: dict[str, dict] = {}
        self.billing: dict[str, BillingSubscription] = {}
        self.pending_items: dict[str, list[tuple[str, int, int]]] = {}  # by subscription: (description, amount, at)
        self.invoices: dict[str, BillingInvoice] = {}
        self.outbox: list[dict] = []
        self.failing_customers: set[str] = set()
        self._by_key: dict[str, object] = {}
        self._book_lock = threading.Lock()
        self._seq = itertools.count(1)
        # Ids unique across books: the demo seeds through one book and the server bills through another,
        # so two books counting from 1 would hand out the same Stripe subscription id.
        self._token = uuid.uuid4().hex[:8]

    def _once(self, key: str, make):
        with self._book_lock:
            if key not in self._by_key:
                self._by_key[key] = make()
            return self._by_key[key]

    def _id(self, prefix: str) -> str:
        return f"{prefix}_dbl{self._token}{next(self._seq):06d}"

    # --- the adapter's billing calls ---

    def billing_customer_create(self, *, name: str, email: str, metadata: dict, idempotency_key: str) -> str:
        self.calls.append(("billing_customer_create", {"name": name}))
        self._maybe_fail("billing_customer_create")

        def make():
            cid = self._id("cus")
            self.customers[cid] = {"name": name, "email": email, "metadata": dict(metadata)}
            return cid

        return self._once(idempotency_key, make)

    def billing_subscription_create(
        self,
        *,
        customer: str,
        seat_price_id: str,
        seat_amount: Money,
        base_amount: Money,
        base_product: str,
        quantity: int,
        metadata: dict,
        idempotency_key: str,
        tax_percent: Decimal | None = None,
    ) -> dict:
        self.calls.append(("billing_subscription_create", {"customer": customer, "quantity": quantity}))
        self._maybe_fail("billing_subscription_create")

        def make():
            now = clock.now().replace(microsecond=0)
            sub = BillingSubscription(
                id=self._id("sub"),
                customer=customer,
                seat_price_id=seat_price_id,
                seat_amount=minor_from_money(seat_amount),
                base_amount=minor_from_money(base_amount),
                currency=str(base_amount.currency).lower(),
                quantity=quantity,
                anchor=now,
                period_start=now,
                period_end=now + relativedelta(months=1),
                external_id=metadata.get("external_id", ""),
                tax_percent=tax_percent,
            )
            self.billing[sub.id] = sub
            invoice = self._invoice(sub, "subscription_create")
            self._subscription_event("customer.subscription.created", sub)
            self._collect(invoice)
            return {
                "id": sub.id,
                "current_period_start": int(sub.period_start.timestamp()),
                "current_period_end": int(sub.period_end.timestamp()),
                "latest_invoice": invoice.id,
            }

        return self._once(idempotency_key, make)

    def billing_quantity_set(self, *, subscription: str, quantity: int, idempotency_key: str) -> None:
        self.calls.append(("billing_quantity_set", {"subscription": subscription, "quantity": quantity}))
        self._maybe_fail("billing_quantity_set")

        def make():
            sub = self.billing[subscription]
            sub.quantity = quantity
            self._subscription_event("customer.subscription.updated", sub)  # Stripe echoes the change
            return quantity

        self._once(idempotency_key, make)

    def billing_invoice_item_create(
        self, *, customer: str, subscription: str, amount: Money, description: str, idempotency_key: str
    ) -> str:
        self.calls.append(("billing_invoice_item_create", {"subscription": subscription, "amount": amount}))
        self._maybe_fail("billing_invoice_item_create")

        def make():
            item_id = self._id("ii")
            self.pending_items.setdefault(subscription, []).append(
                (description, minor_from_money(amount), int(clock.now().timestamp()))
            )
            return item_id

        return self._once(idempotency_key, make)

    def billing_invoice_close(self, *, invoice: str, uncollectible: bool, idempotency_key: str) -> None:
        self.calls.append(("billing_invoice_close", {"invoice": invoice, "uncollectible": uncollectible}))
        self._maybe_fail("billing_invoice_close")
        found = self.invoices.get(invoice)
        if found is None:
            raise ProviderError(f"no such invoice {invoice}", code="not_found")
        if found.status != "open":
            raise ProviderError(f"invoice {invoice} is {found.status}", code="invoice_not_open")
        found.status = "uncollectible" if uncollectible else "void"
        self._invoice_event("invoice.marked_uncollectible" if uncollectible else "invoice.voided", found)

    # --- the test clock ---

    def advance(self, to: datetime) -> None:
        """Run every subscription's renewals up to ``to`` (invoice, charge, events), as Stripe's clock would."""
        for sub in list(self.billing.values()):
            while sub.period_end <= to and sub.status != "canceled":
                sub.period_start = sub.period_end
                n = 1
                while sub.anchor + relativedelta(months=n) <= sub.period_start:
                    n += 1
                sub.period_end = sub.anchor + relativedelta(months=n)
                with clock.frozen(sub.period_start):
                    invoice = self._invoice(sub, "subscription_cycle")
                    self._collect(invoice)

    def set_seat_price(self, subscription: str, amount: Money) -> None:
        self.billing[subscription].seat_amount = minor_from_money(amount)

    def collected(self, customer: str | None = None) -> dict[str, int]:
        """What Stripe collected, per currency (minor units), for a customer or everyone."""
        out: dict[str, int] = {}
        for inv in self.invoices.values():
            if inv.status == "paid" and (customer is None or inv.customer == customer):
                out[inv.currency.upper()] = out.get(inv.currency.upper(), 0) + inv.total
        return out

    def retry(self, invoice_id: str) -> None:
        """A Smart Retry (or the customer paying by hand) of an open invoice."""
        self._collect(self.invoices[invoice_id], retry=True)

    def _invoice(self, sub: BillingSubscription, reason: str) -> BillingInvoice:
        lines = [("Verified Organization", sub.base_amount), (f"{sub.quantity} seats", sub.seat_amount * sub.quantity)]
        boundary = int(sub.period_start.timestamp())
        pending = self.pending_items.get(sub.id, [])
        lines += [(d, a) for d, a, at in pending if at <= boundary]
        self.pending_items[sub.id] = [p for p in pending if p[2] > boundary]
        tax = 0
        if sub.tax_percent is not None:  # per line, rounded half up, then summed
            tax = sum(
                int((Decimal(a) * sub.tax_percent / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)) for _, a in lines
            )
        invoice = BillingInvoice(
            tax=tax,
            id=self._id("in"),
            customer=sub.customer,
            subscription=sub.id,
            currency=sub.currency,
            lines=lines,
            period_start=boundary,
            period_end=int(sub.period_end.timestamp()),
            billing_reason=reason,
            created=int(clock.now().timestamp()),
        )
        self.invoices[invoice.id] = invoice
        return invoice

    def _collect(self, invoice: BillingInvoice, *, retry: bool = False) -> None:
        sub = self.billing[invoice.subscription]
        now = int(clock.now().timestamp())
        external_id = self.customers.get(invoice.customer, {}).get("metadata", {}).get("external_id")
        if {invoice.customer, external_id} & self.failing_customers or invoice.total < 0:
            self._invoice_event("invoice.payment_failed", invoice)
            if sub.status != "past_due":
                sub.status = "past_due"
                self._subscription_event("customer.subscription.updated", sub)
            return
        invoice.status, invoice.paid_at = "paid", now
        self._invoice_event("invoice.paid", invoice)
        if sub.status != "active":
            sub.status = "active"
            self._subscription_event("customer.subscription.updated", sub)

    def _subscription_event(self, event_type: str, sub: BillingSubscription) -> None:
        from monetization.providers.stripe import payloads

        obj = payloads.subscription(
            sub_id=sub.id,
            customer=sub.customer,
            status=sub.status,
            created=int(sub.anchor.timestamp()),
            period_start=int(sub.period_start.timestamp()),
            period_end=int(sub.period_end.timestamp()),
            price_id=sub.seat_price_id,
            product="prod_verified_org",
            unit_amount=sub.seat_amount,
            currency=sub.currency,
            item_id=f"si_{sub.id}",
            quantity=sub.quantity,
            external_id=sub.external_id,
            livemode=False,
        )
        self.outbox.append(
            payloads.event(
                event_id=self._id("evt"),
                event_type=event_type,
                created=int(clock.now().timestamp()),
                obj=obj,
                livemode=False,
            )
        )

    def _invoice_event(self, event_type: str, invoice: BillingInvoice) -> None:
        from monetization.providers.stripe import payloads

        sub = self.billing[invoice.subscription]
        obj = payloads.invoice(
            invoice_id=invoice.id,
            customer=invoice.customer,
            sub_id=invoice.subscription,
            total=invoice.total,
            created=invoice.created,
            period_start=invoice.period_start,
            period_end=invoice.period_end,
            price_id=sub.seat_price_id,
            product="prod_verified_org",
            line_id=f"il_{invoice.id}",
            number=invoice.id.upper(),
            currency=invoice.currency,
            paid=invoice.status == "paid",
            tax=invoice.tax,
            tax_rate="txr_dbl_vat" if invoice.tax else "",
            billing_reason=invoice.billing_reason,
            external_id=sub.external_id,
            finalized_at=invoice.created,
            paid_at=invoice.paid_at,
            livemode=False,
        )
        self.outbox.append(
            payloads.event(
                event_id=self._id("evt"),
                event_type=event_type,
                created=int(clock.now().timestamp()),
                obj=obj,
                livemode=False,
            )
        )


@dataclass
class FakeProvider(StripeBillingBook):
    name: str = "fake"
    subscriptions: dict[str, SubscriptionSnapshot] = field(default_factory=dict)
    refunds: dict[str, RefundResult] = field(default_factory=dict)  # by idempotency key
    portal_sessions: dict[str, PortalSession] = field(default_factory=dict)  # by idempotency key
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

    def change_subscription_plan(
        self, provider_subscription_id: str, *, store_product_id: str, idempotency_key: str
    ) -> SubscriptionSnapshot:
        """Like Stripe: the one item moves to the new price, the period stays (the proration is Stripe's invoice)."""
        return self._item_price_set(
            "change_subscription_plan", provider_subscription_id, store_product_id, idempotency_key
        )

    def move_subscription_price(
        self, provider_subscription_id: str, *, store_product_id: str, idempotency_key: str
    ) -> SubscriptionSnapshot:
        """Like Stripe without proration: the item's price changes, the next renewal charges it."""
        return self._item_price_set(
            "move_subscription_price", provider_subscription_id, store_product_id, idempotency_key
        )

    def _item_price_set(
        self, call: str, provider_subscription_id: str, store_product_id: str, idempotency_key: str
    ) -> SubscriptionSnapshot:
        """The subscription's one item on a new price, the period kept (a plan change and a price move alike)."""
        self.calls.append((call, {"id": provider_subscription_id, "price": store_product_id, "key": idempotency_key}))
        self._maybe_fail(call)
        snap = self.subscriptions.get(provider_subscription_id)
        if snap is None:
            raise ProviderError(f"no such subscription {provider_subscription_id}", code="not_found")
        snap = replace(snap, store_product_id=store_product_id, as_of=clock.now())
        self.subscriptions[provider_subscription_id] = snap
        return snap

    def billing_portal_session(self, *, customer_ref: str, return_url: str, idempotency_key: str) -> PortalSession:
        """A session shaped as Stripe's ``billing_portal.session`` answers (bps_ id, billing.stripe.com URL);
        the same key answers the same session, as Stripe's idempotency does."""
        self.calls.append(("billing_portal_session", {"customer": customer_ref, "return_url": return_url}))
        self._maybe_fail("billing_portal_session")
        if idempotency_key not in self.portal_sessions:
            n = next(self._ids)
            self.portal_sessions[idempotency_key] = PortalSession(
                id=f"bps_fake_{n}",
                url=f"https://billing.stripe.com/p/session/test_fake_{n}",
                return_url=return_url,
                created_at=clock.now(),
            )
        return self.portal_sessions[idempotency_key]

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
                # Written whole and swapped in (a worker reading the book never sees half of it), with the C
                # encoder (json.dump to a file encodes in Python: 40 ms a refund for a soak batch's book).
                path = self._path()
                with open(f"{path}.tmp", "w") as fh:
                    fh.write(json.dumps(book))
                os.replace(f"{path}.tmp", path)
                self._cached = (os.stat(path).st_mtime_ns, book)
        return RefundResult(provider_refund_id=done["id"], amount=amount, status="succeeded")

    def invoice_for_payment_intent(self, payment_intent: str) -> str:
        return self._book()["intents"].get(payment_intent, "")

    def charge_refunds(self, charge_id: str) -> list[dict]:
        return list(self._book()["charge_refunds"].get(charge_id, []))


class PlayBookClient:
    """Google Play's Developer API answering from a store's book: a JSON file (``PLAY_BOOK_FILE``) of
    ``resources`` (subscriptionsv2 by purchase token), ``orders`` (orders.get by order id) and
    ``voided`` (voidedpurchases.list rows), read again whenever the file changes, so a simulator in another
    process (a test, the soak run) can write what Play says and a worker reads it as the real client would."""

    def __init__(self, path: str):
        self.path = path
        self._cached: tuple[tuple, dict] | None = None

    def _book(self) -> dict:
        # Parsed once per version of the file, not per call: a soak's book holds thousands of histories.
        # (A file replaced within one tick of the clock is still told apart by its inode and size.)
        stat = os.stat(self.path)
        version = (stat.st_mtime_ns, stat.st_ino, stat.st_size)
        if self._cached is None or self._cached[0] != version:
            with open(self.path) as fh:
                self._cached = (version, json.load(fh))
        return self._cached[1]

    def get(self, *, package_name: str, token: str) -> dict:
        try:
            return copy.deepcopy(self._book()["resources"][token])  # the caller's to change, not the book's
        except KeyError:
            raise ProviderError(f"no purchase {token}", code="not_found") from None

    def get_order(self, *, package_name: str, order_id: str) -> dict:
        try:
            return copy.deepcopy(self._book()["orders"][order_id])
        except KeyError:
            raise ProviderError(f"no order {order_id}", code="not_found") from None

    def list_voided(self, *, package_name: str, start_ms: int, page_token: str = "") -> dict:
        rows = [
            copy.deepcopy(row) for row in self._book().get("voided", []) if int(row["voidedTimeMillis"]) >= start_ms
        ]
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


@dataclass
class StripeBillingDouble(FakeProvider):
    """The test double whose webhooks are verified by the real Stripe adapter (a real signature
    with the configured secret), so the book's events can be delivered over HTTP."""

    name: str = "stripe"

    def verify_webhook(self, *, body: bytes, headers: dict[str, str]) -> list[ProviderEvent]:
        return StripeProvider(self.name).verify_webhook(body=body, headers=headers)
