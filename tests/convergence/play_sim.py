"""A Google Play simulator: one customer's subscription as Play books it (the subscriptionsv2 resource,
every order with the refunds processed on it) and the real-time developer notifications Play pushes.

A history is a random walk: purchase, renewals, grace (recovered, or into account hold and out of
it or expired), a pause (resumed, or still paused at the end), cancel (restored, or expired),
refunds made at Play (partial, or whole: Play voids the purchase and ends it), and upgrades and
downgrades between Premium and Premium Plus: a new purchase (a new token, ``linkedPurchaseToken``
naming the one it replaces, charged the new plan's full price at once: Play's
IMMEDIATE_AND_CHARGE_FULL_PRICE) announced by SUBSCRIPTION_PURCHASED; the old purchase ends there,
with no notification of its own. Notifications only say that something changed: the worker reads
the book back through the Play API double, as the real adapter reads Play. The book is what Play says at the end.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass, field

from monetization.providers.google_play import payloads as play
from tests.webhooks.support import PLAY_PACKAGE, PLAY_PUSH_SUBSCRIPTION, PLAY_PUSH_TOKEN

from .harness import Delivery

START = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)  # every period ends after today: access depends on state alone
MONTH = dt.timedelta(days=30)
PRICE = 999  # cents
# Play products (base plan "monthly") -> (our plan, price in cents).
PRODUCTS = {"premium": ("premium-monthly", PRICE), "premium_plus": ("premium-plus-monthly", 1999)}
ENTITLED = {"active", "canceled", "in_grace_period"}
OUR_STATE = {
    "SUBSCRIPTION_STATE_ACTIVE": "active",
    "SUBSCRIPTION_STATE_CANCELED": "canceled",
    "SUBSCRIPTION_STATE_IN_GRACE_PERIOD": "in_grace_period",
    "SUBSCRIPTION_STATE_ON_HOLD": "on_hold",
    "SUBSCRIPTION_STATE_PAUSED": "paused",
    "SUBSCRIPTION_STATE_EXPIRED": "expired",
}


@dataclass
class PlayBook:
    ns: str
    external_id: str
    token: str
    state: str = "SUBSCRIPTION_STATE_ACTIVE"
    auto_renew: bool = True
    expiry: dt.datetime = START + MONTH
    orders: list[str] = field(default_factory=list)
    partial_refunds: dict[str, list[tuple[dt.datetime, int]]] = field(default_factory=dict)
    refunded_whole: dict[str, dt.datetime] = field(default_factory=dict)
    revoked: bool = False  # a whole refund made at Play ended it (our REVOKED)
    product: str = "premium"
    linked: str = ""  # the purchase token this purchase replaced (an upgrade or downgrade)
    previous: list[PlayBook] = field(default_factory=list)  # the purchases it replaced, oldest first

    @property
    def price(self) -> int:
        return PRODUCTS[self.product][1]

    @property
    def plan(self) -> str:
        return PRODUCTS[self.product][0]

    def purchases(self) -> list[PlayBook]:
        """Every purchase of the customer's subscription, the current one last."""
        return [*self.previous, self]

    @property
    def our_state(self) -> str:
        return "revoked" if self.revoked else OUR_STATE[self.state]

    @property
    def entitled(self) -> bool:
        return self.our_state in ENTITLED

    def refunded(self, order_id: str) -> int:
        if order_id in self.refunded_whole:
            return self.price
        return sum(cents for _at, cents in self.partial_refunds.get(order_id, []))

    def resource(self) -> dict:
        resource = play.subscription_v2(
            state=self.state,
            product_id=self.product,
            base_plan_id="monthly",
            start=play.zulu(START),
            expiry=play.zulu(self.expiry),
            order_id=self.orders[-1],
            currency="USD",
            units=str(self.price // 100),
            nanos=(self.price % 100) * 10_000_000,
            account_id=self.external_id,
            acknowledgement="ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED",
            etag="CMPKu8aW0pEDEAE=",
            linked_purchase_token=self.linked,
        )
        resource["lineItems"][0]["autoRenewingPlan"]["autoRenewEnabled"] = self.auto_renew
        return resource

    def order(self, order_id: str, created: dt.datetime) -> dict:
        return play.order(
            order_id=order_id,
            token=self.token,
            total_minor=self.price,
            currency="USD",
            created=created,
            partial_refunds=self.partial_refunds.get(order_id, []),
            refunded_at=self.refunded_whole.get(order_id),
        )


class _Play:
    def __init__(self, rng: random.Random, ns: str):
        self.rng, self.ns = rng, ns
        self.book = PlayBook(ns=ns, external_id=f"and{ns}", token=f"{ns}.AO-J1Oy{rng.getrandbits(32):08x}")
        self.created: dict[str, dt.datetime] = {}
        self.deliveries: list[Delivery] = []
        self.now = START

    def push(self, code: int | None = None, *, voided_order: str = "", refund_type: int = 1) -> None:
        ms = int(self.now.timestamp() * 1000)
        if voided_order:
            notification = play.voided_notification(
                package_name=PLAY_PACKAGE,
                event_ms=ms,
                token=self.book.token,
                order_id=voided_order,
                refund_type=refund_type,
            )
        else:
            notification = play.developer_notification(
                package_name=PLAY_PACKAGE, event_ms=ms, code=code, token=self.book.token, product_id=self.book.product
            )
        seq = len(self.deliveries)
        envelope = play.pubsub_push(
            notification=notification,
            message_id=f"{self.ns}-{seq}",
            published=self.now,
            subscription=PLAY_PUSH_SUBSCRIPTION,
        )
        self.deliveries.append(
            Delivery(
                history=self.ns,
                seq=seq,
                path="/api/v1/webhooks/google-play",
                body=json.dumps(envelope).encode(),
                headers={"Content-Type": "application/json"},
                query=f"token={PLAY_PUSH_TOKEN}",
            )
        )

    def charge(self, code: int) -> None:
        base = f"GPA.{self.ns}-{len(self.book.previous) + 1:04d}"
        n = len(self.book.orders)
        order_id = base if n == 0 else f"{base}..{n - 1}"
        self.book.orders.append(order_id)
        self.created[order_id] = self.now
        self.book.state, self.book.auto_renew = "SUBSCRIPTION_STATE_ACTIVE", True
        self.book.expiry = self.now + MONTH
        self.push(code)

    def run(self) -> None:
        rng = self.rng
        self.charge(4)
        for _month in range(rng.randint(0, 5)):
            book = self.book  # the current purchase (a plan change starts a new one)
            self.now = book.expiry
            move = rng.choices(
                ["renew", "grace", "pause", "cancel", "partial", "refund", "change"], weights=[6, 2, 2, 2, 1, 1, 2]
            )[0]
            if move == "renew":
                self.charge(2)
            elif move == "change":
                self.change_plan()
            elif move == "grace":
                book.state = "SUBSCRIPTION_STATE_IN_GRACE_PERIOD"
                self.push(6)
                outcome = rng.choice(["recover", "hold_recover", "hold_expire"])
                if outcome == "recover":
                    self.now += dt.timedelta(days=2)
                    self.charge(1)
                    continue
                self.now += dt.timedelta(days=7)
                book.state = "SUBSCRIPTION_STATE_ON_HOLD"
                self.push(5)
                if outcome == "hold_recover":
                    self.now += dt.timedelta(days=5)
                    self.charge(1)
                    continue
                self.now += dt.timedelta(days=30)
                book.state, book.auto_renew = "SUBSCRIPTION_STATE_EXPIRED", False
                self.push(13)
                return
            elif move == "pause":
                self.now -= dt.timedelta(days=5)
                self.push(11)  # the pause is scheduled; it starts at the period's end
                self.now = book.expiry
                book.state = "SUBSCRIPTION_STATE_PAUSED"
                self.push(10)
                if rng.random() < 0.5:
                    return  # still paused at the end
                self.now += MONTH
                self.charge(2)  # resumed: Play charges again
            elif move == "cancel":
                self.now -= dt.timedelta(days=10)
                book.state, book.auto_renew = "SUBSCRIPTION_STATE_CANCELED", False
                self.push(3)
                if rng.random() < 0.4:
                    self.now += dt.timedelta(days=1)
                    book.state, book.auto_renew = "SUBSCRIPTION_STATE_ACTIVE", True
                    self.push(7)
                    continue
                self.now = book.expiry
                book.state = "SUBSCRIPTION_STATE_EXPIRED"
                self.push(13)
                return
            elif move == "partial":
                self.now -= dt.timedelta(days=20)
                order_id = book.orders[-1]
                cents = rng.choice([100, 250, 500])
                book.partial_refunds.setdefault(order_id, []).append((self.now, cents))
                self.push(voided_order=order_id, refund_type=2)
                self.now += dt.timedelta(days=20)
                self.charge(2)
            else:
                self.refund_whole()
                return
        if rng.random() < 0.2 and self.book.state == "SUBSCRIPTION_STATE_ACTIVE":
            self.refund_whole()

    def change_plan(self) -> None:
        """An upgrade (or downgrade) in the app: a new purchase replaces this one, charged at once."""
        old = self.book
        self.now -= dt.timedelta(days=10)  # mid-period
        old.state, old.auto_renew, old.expiry = "SUBSCRIPTION_STATE_EXPIRED", False, self.now
        self.book = PlayBook(
            ns=old.ns,
            external_id=old.external_id,
            token=f"{old.token}.{len(old.previous) + 1}",
            product="premium" if old.product == "premium_plus" else "premium_plus",
            linked=old.token,
            previous=[*old.previous, old],
        )
        old.previous = []
        self.charge(4)

    def refund_whole(self) -> None:
        book = self.book
        self.now = book.expiry - dt.timedelta(days=20)
        order_id = book.orders[-1]
        book.refunded_whole[order_id] = self.now
        # Refunded and revoked in the Play Console: the purchase ends now.
        book.state, book.auto_renew, book.expiry, book.revoked = "SUBSCRIPTION_STATE_EXPIRED", False, self.now, True
        self.push(voided_order=order_id)

    def store(self) -> dict:
        purchases = self.book.purchases()
        return {
            "resources": {p.token: p.resource() for p in purchases},
            "orders": {o: p.order(o, self.created[o]) for p in purchases for o in p.orders},
        }


def play_history(rng: random.Random, ns: str) -> tuple[PlayBook, list[Delivery], dict]:
    """A history's book, its pushes, and what the Play API answers for it at the end."""
    sim = _Play(rng, ns)
    sim.run()
    return sim.book, sim.deliveries, sim.store()
