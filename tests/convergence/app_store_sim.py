"""An App Store simulator: one customer's auto-renewable subscription as Apple books it, and the
signed notifications (App Store Server Notifications V2, JWS chain from the test CA) Apple sends for it.

A history is a random walk: purchase, renewals, a failed renewal with grace (recovered, or into
billing retry and out of it or expired), auto-renew off (and on again) and expiry, a refund (whole
or prorated) and sometimes its reversal. Half the histories link the customer only through the
app's ``POST /purchases`` call, which is delivered with the notifications (so it may come after
them). The book is what Apple would say at the end: the subscription's status, each transaction
paid, what was refunded of it.
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from dataclasses import dataclass, field

from monetization.providers.app_store import payloads as apple
from tests.webhooks.support import APP_APPLE_ID, BUNDLE_ID, ApplePKI

from .harness import Delivery

PRODUCT = "com.example.premium.monthly"
PRICE = 9990  # milliunits
DAY = 86_400_000
MONTH = 30 * DAY
START = 1893456000000  # 2030-01-01: every period ends after today, so access depends on state alone
GRACE_DAYS = 16
ENTITLED = {"active", "canceled", "in_grace_period"}


@dataclass
class AppleBook:
    ns: str
    external_id: str
    account_token: str
    otid: str
    linked_by_purchase_call: bool
    state: str = "pending"  # in our words: what Apple's status maps to
    payments: dict[str, int] = field(default_factory=dict)  # transaction id -> price in cents
    refunded: dict[str, int] = field(default_factory=dict)  # transaction id -> cents refunded (net)

    @property
    def entitled(self) -> bool:
        return self.state in ENTITLED


class _Apple:
    def __init__(self, rng: random.Random, ns: str, pki: ApplePKI, api_key: str):
        self.rng, self.ns, self.pki, self.api_key = rng, ns, pki, api_key
        self.book = AppleBook(
            ns=ns,
            external_id=f"ios{ns}",
            account_token=str(uuid.uuid5(uuid.NAMESPACE_URL, f"app-account:{ns}")),
            otid=f"{ns}0001",
            linked_by_purchase_call=rng.random() < 0.5,
        )
        self.deliveries: list[Delivery] = []
        self.auto_renew = True
        self.tx: dict | None = None
        self.n = 0

    # --- what Apple signs ----------------------------------------------------------

    def _transaction(self, purchase_ms: int) -> dict:
        self.n += 1
        return apple.transaction(
            transaction_id=f"{self.ns}{self.n:04d}",
            original_transaction_id=self.book.otid,
            web_order_line_item_id=f"{self.ns}{self.n:04d}9",
            bundle_id=BUNDLE_ID,
            product_id=PRODUCT,
            purchase_ms=purchase_ms,
            original_purchase_ms=START,
            expires_ms=purchase_ms + MONTH,
            signed_ms=purchase_ms,
            price=PRICE,
            currency="USD",
            app_account_token=self.book.account_token,
            reason="PURCHASE" if self.n == 1 else "RENEWAL",
        )

    def _renewal(self, at: int, **extra) -> dict:
        return apple.renewal_info(
            original_transaction_id=self.book.otid,
            product_id=PRODUCT,
            signed_ms=at,
            recent_start_ms=START,
            renewal_ms=self.tx["expiresDate"],
            renewal_price=PRICE,
            currency="USD",
            auto_renew=self.auto_renew,
            **extra,
        )

    def notify(self, ntype: str, at: int, subtype: str = "", tx: dict | None = None, **renewal) -> None:
        notification = apple.notification(
            notification_type=ntype,
            subtype=subtype,
            uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"notification:{self.ns}:{len(self.deliveries)}")),
            signed_ms=at,
            app_apple_id=APP_APPLE_ID,
            bundle_id=BUNDLE_ID,
        )
        transaction = {**(tx or self.tx), "signedDate": at}
        data = copy.deepcopy(notification["data"])
        data["signedTransactionInfo"] = self.pki.sign(transaction)
        data["signedRenewalInfo"] = self.pki.sign(self._renewal(at, **renewal))
        body = json.dumps({"signedPayload": self.pki.sign({**notification, "data": data})}).encode()
        self._deliver("/api/v1/webhooks/app-store", body, {"Content-Type": "application/json"})

    def purchase_call(self, tx: dict) -> None:
        body = json.dumps(
            {"platform": "ios", "customer": self.book.external_id, "signed_transaction": self.pki.sign(tx)}
        ).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"}
        self._deliver("/api/v1/purchases", body, headers)

    def _deliver(self, path: str, body: bytes, headers: dict) -> None:
        self.deliveries.append(
            Delivery(history=self.ns, seq=len(self.deliveries), path=path, body=body, headers=headers)
        )

    # --- the history ----------------------------------------------------------------

    def pay(self, ntype: str, subtype: str, purchase_ms: int) -> None:
        self.tx = self._transaction(purchase_ms)
        self.book.payments[self.tx["transactionId"]] = PRICE // 10
        self.notify(ntype, purchase_ms + 1000, subtype)
        self.book.state = "active" if self.auto_renew else "canceled"

    def run(self) -> None:
        rng, book = self.rng, self.book
        self.pay("SUBSCRIBED", "INITIAL_BUY", START)
        if book.linked_by_purchase_call:
            self.purchase_call(self.tx)
        for _month in range(rng.randint(0, 5)):
            end = self.tx["expiresDate"]
            move = rng.choices(
                ["renew", "grace", "cancel", "refund"], weights=[5, 2, 2, 2] if self.auto_renew else [0, 0, 1, 1]
            )[0]
            if move == "renew":
                self.pay("DID_RENEW", "", end)
            elif move == "grace":
                grace_end = end + GRACE_DAYS * DAY
                retry = {"in_billing_retry": True, "grace_expires_ms": grace_end}
                self.notify("DID_FAIL_TO_RENEW", end + 3_600_000, "GRACE_PERIOD", **retry)
                book.state = "in_grace_period"
                outcome = rng.choice(["recover_in_grace", "hold_then_recover", "hold_then_expire"])
                if outcome == "recover_in_grace":
                    self.pay("DID_RENEW", "BILLING_RECOVERY", end + 2 * DAY)
                    continue
                self.notify("GRACE_PERIOD_EXPIRED", grace_end + 1000, **retry)
                book.state = "on_hold"
                if outcome == "hold_then_recover":
                    self.pay("DID_RENEW", "BILLING_RECOVERY", grace_end + 5 * DAY)
                    continue
                self.auto_renew = False
                self.notify("EXPIRED", end + 60 * DAY, "BILLING_RETRY", expiration_intent=2)
                book.state = "expired"
                return
            elif move == "cancel":
                if self.auto_renew:
                    self.auto_renew = False
                    self.notify("DID_CHANGE_RENEWAL_STATUS", self.tx["purchaseDate"] + 3 * DAY, "AUTO_RENEW_DISABLED")
                    book.state = "canceled"
                    if rng.random() < 0.4:
                        self.auto_renew = True
                        self.notify(
                            "DID_CHANGE_RENEWAL_STATUS", self.tx["purchaseDate"] + 4 * DAY, "AUTO_RENEW_ENABLED"
                        )
                        book.state = "active"
                        continue
                self.notify("EXPIRED", end + 1000, "VOLUNTARY", expiration_intent=1)
                book.state = "expired"
                return
            else:
                self.refund()
                return
        if rng.random() < 0.25 and book.state in ("active", "canceled"):
            self.refund()

    def refund(self) -> None:
        rng, book = self.rng, self.book
        txid, paid = self.tx["transactionId"], book.payments[self.tx["transactionId"]]
        at = self.tx["purchaseDate"] + 5 * DAY
        revoked = {**self.tx, "revocationDate": at, "revocationReason": 0}
        if rng.random() < 0.5:
            percentage = rng.choice([25000, 50000, 75000])
            revoked.update(revocationType="REFUND_PRORATED", revocationPercentage=percentage)
            cents = round(paid * percentage / 100_000)
        else:
            revoked["revocationType"] = "REFUND_FULL"
            cents = paid
        self.notify("REFUND", at + 1000, tx=revoked)
        book.refunded[txid] = cents
        book.state = "revoked"
        if rng.random() < 0.4:
            self.notify("REFUND_REVERSED", at + 4 * DAY, tx=self.tx)
            book.refunded[txid] = 0
            book.state = "active" if self.auto_renew else "canceled"


def app_store_history(rng: random.Random, ns: str, *, pki: ApplePKI, api_key: str) -> tuple[AppleBook, list[Delivery]]:
    sim = _Apple(rng, ns, pki, api_key)
    sim.run()
    return sim.book, sim.deliveries
