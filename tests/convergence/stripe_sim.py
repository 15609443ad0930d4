"""A Stripe simulator: random customer histories, Stripe's own book of them, and the events Stripe sends.

Each history is one customer's web subscription, walked month by month through what Stripe does:
purchase, renewals, failed payments (recovered, or retries exhausted and canceled), upgrades and
downgrades, pause and resume (``pause_collection``), refunds made in Stripe's dashboard (partial
and full), disputes (won and lost), cancellation at the period end and expiry. The simulator keeps
Stripe's book (subscription, invoices, charges, refunds, disputes and their balance transactions)
and emits the events Stripe would, with the payload shapes of the pinned API version (the
provider package's ``payloads``), in Stripe's order.

The book is what the test double answers the applier's reads from (which invoice a payment intent
paid, a charge's refunds: :class:`monetization.demo.providers.StripeBookDouble`), and what the
test compares our books with at the end (:meth:`StripeHistory.expected`).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from monetization.providers.stripe import payloads
from tests.webhooks.support import STRIPE_PRODUCT, stripe_body, stripe_signature

from .harness import Delivery

MONTH = 30 * 86400
BASIC = ("price_1QpremiumMonthlyUSD0001", "premium-monthly", 800)
PLUS = ("price_1QpremiumPlusMonthlyUSD1", "premium-plus-monthly", 2200)
DISPUTE_FEE = 1500


def card_fee(amount: int) -> int:
    return 30 + (amount * 29 + 500) // 1000  # 2.9% + 30c, as Stripe's standard pricing


@dataclass
class Invoice:
    id: str
    charge: str
    intent: str
    amount: int
    fee: int
    reason: str
    refunds: list[tuple[str, int]] = field(default_factory=list)
    disputed: int = 0  # withdrawn and not reinstated
    dispute_fees: int = 0

    @property
    def refunded(self) -> int:
        return sum(amount for _id, amount in self.refunds)


@dataclass
class StripeHistory:
    """One customer's life at Stripe: its events in Stripe's order, and Stripe's book at the end."""

    ns: str
    rng: random.Random
    t: int
    external_id: str = ""
    events: list[dict] = field(default_factory=list)
    invoices: list[Invoice] = field(default_factory=list)
    disputes: list[dict] = field(default_factory=list)
    # The subscription as Stripe holds it.
    status: str = "incomplete"
    price: tuple = BASIC
    period_start: int = 0
    period_end: int = 0
    cancel_at_period_end: bool = False
    paused: bool = False
    steps: list[str] = field(default_factory=list)
    staff_revoked: bool = False  # Support refunded with "revoke access now"

    def __post_init__(self):
        self.external_id = self.external_id or f"cust{self.ns}"
        self.sub_id = f"sub_{self.ns}"
        self.customer = f"cus_{self.ns}"
        self._n = 0

    # --- ids and events ---------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self.ns}_{self._n}"

    def _tick(self, seconds: int = 60) -> int:
        self.t += seconds
        return self.t

    def _emit(self, event_type: str, obj: dict) -> None:
        self.events.append(
            payloads.event(
                event_id=self._id("evt"), event_type=event_type, created=self._tick(), obj=obj, livemode=False
            )
        )

    def _subscription_obj(self) -> dict:
        return payloads.subscription(
            sub_id=self.sub_id,
            customer=self.customer,
            status=self.status,
            created=self.events[0]["created"] if self.events else self.t,
            period_start=self.period_start,
            period_end=self.period_end,
            price_id=self.price[0],
            product=STRIPE_PRODUCT,
            unit_amount=self.price[2],
            item_id=f"si_{self.ns}",
            external_id=self.external_id,
            cancel_at_period_end=self.cancel_at_period_end,
            pause_collection={"behavior": "void", "resumes_at": None} if self.paused else None,
            canceled_at=self.t if self.status == "canceled" else None,
            livemode=False,
        )

    def _subscription_event(self, event_type: str = "customer.subscription.updated") -> None:
        self._emit(event_type, self._subscription_obj())

    def _pay(self, reason: str, amount: int | None = None) -> None:
        amount = self.price[2] if amount is None else amount
        inv = Invoice(
            id=self._id("in"),
            charge=self._id("ch"),
            intent=self._id("pi"),
            amount=amount,
            fee=card_fee(amount),
            reason=reason,
        )
        self.invoices.append(inv)
        obj = payloads.invoice(
            invoice_id=inv.id,
            customer=self.customer,
            sub_id=self.sub_id,
            total=amount,
            created=self.t,
            period_start=self.period_start,
            period_end=self.period_end,
            price_id=self.price[0],
            product=STRIPE_PRODUCT,
            line_id=self._id("il"),
            number=f"{self.ns}-{len(self.invoices)}",
            billing_reason=reason,
            external_id=self.external_id,
            charge=payloads.expanded_charge(
                charge_id=inv.charge, balance_transaction_id=self._id("txn"), amount=amount, fee=inv.fee
            ),
            livemode=False,
        )
        self._emit("invoice.paid", obj)

    # --- what Stripe does ---------------------------------------------------------------------

    def purchase(self) -> None:
        self.period_start, self.period_end = self.t, self.t + MONTH
        self._subscription_event("customer.subscription.created")
        self._pay("subscription_create")
        self.status = "active"
        self._subscription_event()
        self.steps.append("purchase")

    def renew(self) -> None:
        self.t = max(self.t, self.period_end)  # Stripe's clock never runs back
        self.period_start, self.period_end = self.period_end, self.period_end + MONTH
        self._pay("subscription_cycle")
        self._subscription_event()
        self.steps.append("renew")

    def fail_then(self, recover: bool) -> bool:
        """A renewal charge fails; Smart Retries recover it, or give up and cancel. Returns whether it lives."""
        self.t = max(self.t, self.period_end)  # Stripe's clock never runs back
        self.status = "past_due"
        self._subscription_event()
        failed = payloads.invoice(
            invoice_id=self._id("in"),
            customer=self.customer,
            sub_id=self.sub_id,
            total=self.price[2],
            created=self.t,
            period_start=self.period_end,
            period_end=self.period_end + MONTH,
            price_id=self.price[0],
            product=STRIPE_PRODUCT,
            line_id=self._id("il"),
            number=f"{self.ns}-f{self._n}",
            paid=False,
            external_id=self.external_id,
            next_payment_attempt=self.t + 86400,
            livemode=False,
        )
        self._emit("invoice.payment_failed", failed)
        self._tick(3 * 86400)
        if recover:
            self.period_start, self.period_end = self.period_end, self.period_end + MONTH
            self.status = "active"
            self._pay("subscription_cycle")
            self._subscription_event()
            self.steps.append("failed_recovered")
            return True
        self.status = "canceled"
        self._subscription_event("customer.subscription.deleted")
        self.steps.append("failed_canceled")
        return False

    def change_plan(self) -> None:
        upgrade = self.price == BASIC
        self.price = PLUS if upgrade else BASIC
        self._tick(86400)
        self._subscription_event()
        if upgrade:  # prorated at once; a downgrade takes effect with the next invoice
            self._pay("subscription_update", amount=self.rng.choice([700, 1400]))
        self.steps.append("upgrade" if upgrade else "downgrade")

    def pause_and_resume(self, resume: bool) -> None:
        self._tick(86400)
        self.paused = True
        self._subscription_event()
        if resume:
            self._tick(5 * 86400)
            self.paused = False
            self._subscription_event()
        self.steps.append("pause_resume" if resume else "pause")

    def refund_at_stripe(self, full: bool) -> None:
        """A refund made in Stripe's dashboard: charge.refunded and refund.created, in either order."""
        candidates = [i for i in self.invoices if i.amount - i.refunded - i.disputed > 0 and not i.disputed]
        if not candidates:
            return
        inv = self.rng.choice(candidates)
        left = inv.amount - inv.refunded
        amount = left if full else max(1, left // self.rng.choice([2, 3, 4]))
        self._refund_events(inv, self._id("re"), amount)
        self.steps.append("refund_full" if full else "refund_partial")

    def _refund_events(self, inv: Invoice, refund_id: str, amount: int) -> None:
        """Stripe's notifications of a refund (made in its dashboard, or ours): refund.created and
        charge.refunded, in either order."""
        inv.refunds.append((refund_id, amount))
        self._tick(3600)
        refund = _refund_obj(refund_id, inv, amount, self.t)
        charge = payloads.refunded_charge(
            charge_id=inv.charge,
            customer=self.customer,
            amount=inv.amount,
            refunded=inv.refunded,
            created=self.t,
            payment_intent=inv.intent,
            payment_method=f"pm_{self.ns}",
            balance_transaction=f"txn_{inv.charge}",
            livemode=False,
        )
        pair = [("refund.created", refund), ("charge.refunded", charge)]
        self.rng.shuffle(pair)
        for event_type, obj in pair:
            self._emit(event_type, obj)

    def staff_refund_plan(self) -> tuple[str, int, str] | None:
        """What Support refunds after the history (invoice, amount, access choice), or None; the same for both runs."""
        candidates = [i for i in self.invoices if i.amount - i.refunded > 0 and not i.disputed]
        if not candidates or self.rng.random() < 0.5:
            return None
        inv = self.rng.choice(candidates)
        left = inv.amount - inv.refunded
        amount = left if self.rng.random() < 0.5 else max(1, left // 2)
        live = self.status != "canceled" and not self.paused and self.status != "past_due"
        revoke = "now" if live and self.rng.random() < 0.3 else "none"
        return inv.id, amount, revoke

    def staff_refund_echo(self, invoice_id: str, refund_id: str, amount: int, revoke: str) -> list[Delivery]:
        """Stripe's echo of the refund Support made: the deliveries of its events (after the history's own)."""
        inv = next(i for i in self.invoices if i.id == invoice_id)
        first = len(self.events)
        self._refund_events(inv, refund_id, amount)
        self.staff_revoked = revoke == "now"
        self.steps.append(f"staff_refund_{'full' if inv.refunded == inv.amount else 'partial'}_{revoke}")
        return self.deliveries()[first:]

    def dispute(self, won: bool) -> None:
        # One dispute per charge, as at Stripe.
        candidates = [i for i in self.invoices if not i.dispute_fees and i.amount - i.refunded > 0]
        if not candidates:
            return
        inv = self.rng.choice(candidates)
        amount = inv.amount - inv.refunded
        dispute_id = self._id("dp")
        due = self.t + 10 * 86400
        withdrawal = payloads.dispute_balance_transaction(
            txn_id=self._id("txn"), amount=-amount, fee=DISPUTE_FEE, created=self._tick(3600)
        )
        movements = [withdrawal]
        inv.disputed, inv.dispute_fees = amount, DISPUTE_FEE

        def obj(status):
            return payloads.dispute(
                dispute_id=dispute_id,
                charge_id=inv.charge,
                payment_intent=inv.intent,
                amount=amount,
                status=status,
                created=withdrawal["created"],
                due_by=due,
                balance_transactions=list(movements),
                livemode=False,
            )

        self._emit("charge.dispute.created", obj("needs_response"))
        self._emit("charge.dispute.funds_withdrawn", obj("needs_response"))
        self._tick(2 * 86400)
        self._emit("charge.dispute.updated", obj("under_review"))
        self._tick(20 * 86400)
        if won:
            movements.append(
                payloads.dispute_balance_transaction(txn_id=self._id("txn"), amount=amount, fee=0, created=self.t)
            )
            inv.disputed = 0
            self._emit("charge.dispute.funds_reinstated", obj("won"))
        self._emit("charge.dispute.closed", obj("won" if won else "lost"))
        self.disputes.append({"id": dispute_id, "status": "won" if won else "lost", "invoice": inv.id})
        self.steps.append("dispute_won" if won else "dispute_lost")

    def cancel(self, expire: bool) -> None:
        self._tick(86400)
        self.cancel_at_period_end = True
        self._subscription_event()
        if expire:
            self.t = max(self.t, self.period_end)  # Stripe's clock never runs back
            self.status = "canceled"
            self._subscription_event("customer.subscription.deleted")
        self.steps.append("cancel_expire" if expire else "cancel")

    # --- the whole life -----------------------------------------------------------------------

    def walk(self, months: int) -> StripeHistory:
        self.purchase()
        for _ in range(months):
            roll = self.rng.random()
            if self.paused:
                if roll < 0.7:
                    self.paused = False
                    self._tick(86400)
                    self._subscription_event()
                    self.steps.append("resume")
                continue
            if roll < 0.35:
                self.renew()
            elif roll < 0.47:
                if not self.fail_then(recover=self.rng.random() < 0.7):
                    break
            elif roll < 0.57:
                self.change_plan()
            elif roll < 0.65:
                self.pause_and_resume(resume=self.rng.random() < 0.7)
            elif roll < 0.77:
                self.refund_at_stripe(full=self.rng.random() < 0.4)
            elif roll < 0.87:
                self.dispute(won=self.rng.random() < 0.5)
            else:
                self.cancel(expire=self.rng.random() < 0.5)
                break
        return self

    # --- Stripe's book in our words -------------------------------------------------------------

    def expected(self, now: int) -> dict:
        """What our books must say at the end: subscription, payments, refunds, disputes, ledger by account."""
        if self.status == "canceled":
            state = "expired"
        elif self.paused:
            state = "paused"
        elif self.status == "past_due":
            state = "on_hold"
        elif self.cancel_at_period_end:
            state = "canceled" if self.period_end > self.events[-1]["created"] else "expired"
        else:
            state = "active"
        if self.staff_revoked:
            state = "revoked"
        entitled = state == "active" or (state == "canceled" and self.period_end > now)
        cents = Decimal("0.01")
        captured = sum(i.amount for i in self.invoices)
        fees = sum(i.fee for i in self.invoices)
        refunded = sum(i.refunded for i in self.invoices)
        disputed = sum(i.disputed for i in self.invoices)
        dispute_fees = sum(i.dispute_fees for i in self.invoices)
        ledger = {
            "cash:stripe/USD": captured - fees - refunded - disputed - dispute_fees,
            "expense:provider_fees/USD": fees,
            "revenue:subscriptions/USD": -captured,
            "contra_revenue:refunds/USD": refunded,
            "contra_revenue:disputes/USD": disputed,
            "expense:dispute_fees/USD": dispute_fees,
        }
        return {
            "state": state,
            "plan": self.price[1],
            "period_end": self.period_end,
            "auto_renew": not self.cancel_at_period_end and self.status != "canceled",
            "entitled": entitled,
            "payments": sorted(
                (i.id, str(Decimal(i.amount) * cents), str(Decimal(i.refunded) * cents)) for i in self.invoices
            ),
            "refunds": sorted((r, str(Decimal(a) * cents)) for i in self.invoices for r, a in i.refunds),
            "disputes": sorted((d["id"], d["status"]) for d in self.disputes),
            "ledger": {k: str(Decimal(v) * cents) for k, v in ledger.items() if v},
        }

    def deliveries(self, secret: str | None = None) -> list[Delivery]:
        out = []
        for seq, event in enumerate(self.events):
            body = stripe_body(event)
            signature = stripe_signature(body) if secret is None else stripe_signature(body, secret=secret)
            out.append(
                Delivery(
                    history=self.ns,
                    seq=seq,
                    path="/api/v1/webhooks/stripe",
                    body=body,
                    headers={"Content-Type": "application/json", "Stripe-Signature": signature},
                )
            )
        return out

    def book(self) -> dict:
        """The part of Stripe's book its API answers the applier from."""
        return {
            "invoices": {i.id: {"charge": i.charge, "intent": i.intent} for i in self.invoices},
            "intents": {i.intent: i.id for i in self.invoices},
            "charge_refunds": {
                i.charge: [_refund_obj(r, i, a, self.t) for r, a in i.refunds] for i in self.invoices if i.refunds
            },
        }


def _refund_obj(refund_id: str, inv: Invoice, amount: int, created: int) -> dict:
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "charge": inv.charge,
        "created": created,
        "currency": "usd",
        "metadata": {},
        "payment_intent": inv.intent,
        "reason": "requested_by_customer",
        "status": "succeeded",
    }


def write_book(path: Path, histories: list[StripeHistory]) -> None:
    book: dict = {"invoices": {}, "intents": {}, "charge_refunds": {}}
    for history in histories:
        part = history.book()
        book["invoices"].update(part["invoices"])
        book["intents"].update(part["intents"])
        book["charge_refunds"].update(part["charge_refunds"])
    path.write_text(json.dumps(book))
