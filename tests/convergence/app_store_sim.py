"""An App Store simulator: one customer's auto-renewable subscription as Apple books it, and the
signed notifications (App Store Server Notifications V2, JWS chain from the test CA) Apple sends for it.

A history is a random walk: purchase, renewals, a failed renewal with grace (recovered, or into
billing retry and out of it or expired), auto-renew off (and on again) and expiry, a refund (whole
or prorated) and sometimes its reversal, and changes of plan within the subscription group
(DID_CHANGE_RENEWAL_PREF): an upgrade to Premium Plus (UPGRADE: a new transaction, charged and in
effect at once), a downgrade back (DOWNGRADE: in effect from the next renewal, sometimes taken back
before it), a crossgrade to the yearly plan (another duration: DOWNGRADE, from the next renewal).
Some customers are family members (the transactions are ``FAMILY_SHARED``: the purchaser paid, not
them), whose access the purchaser may withdraw (REVOKE, ``FAMILY_REVOKE``). Half the histories link
the customer only through the app's ``POST /purchases`` call, which is delivered with the
notifications (so it may come after them). The book is what Apple would say at the end: the
subscription's status and plan, each transaction paid, what was refunded of it.
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
PLUS = "com.example.premium.plus.monthly"
YEARLY = "com.example.premium.yearly"
PRICE = 9990  # milliunits
DAY = 86_400_000
MONTH = 30 * DAY
# One subscription group: product -> (our plan, price in milliunits, duration).
GROUP = {
    PRODUCT: ("premium-monthly", PRICE, MONTH),
    PLUS: ("premium-plus-monthly", 19990, MONTH),
    YEARLY: ("premium-yearly", 99990, 365 * DAY),
}
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
    family: bool = False  # a family member: shared access, paid by the purchaser
    state: str = "pending"  # in our words: what Apple's status maps to
    plan: str = "premium-monthly"
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
        self.book.family = rng.random() < 0.15
        self.deliveries: list[Delivery] = []
        self.auto_renew = True
        self.product = self.next_product = PRODUCT  # in effect; at the next renewal
        self.tx: dict | None = None
        self.last = 0  # when the last notification was signed
        self.n = 0

    # --- what Apple signs ----------------------------------------------------------

    def _transaction(self, purchase_ms: int, *, reason: str = "") -> dict:
        self.n += 1
        _plan, price, duration = GROUP[self.product]
        tx = apple.transaction(
            transaction_id=f"{self.ns}{self.n:04d}",
            original_transaction_id=self.book.otid,
            web_order_line_item_id=f"{self.ns}{self.n:04d}9",
            bundle_id=BUNDLE_ID,
            product_id=self.product,
            purchase_ms=purchase_ms,
            original_purchase_ms=START,
            expires_ms=purchase_ms + duration,
            signed_ms=purchase_ms,
            price=price,
            currency="USD",
            app_account_token=self.book.account_token,
            reason=reason or ("PURCHASE" if self.n == 1 else "RENEWAL"),
        )
        if self.book.family:
            tx["inAppOwnershipType"] = "FAMILY_SHARED"
        return tx

    def _renewal(self, at: int, **extra) -> dict:
        return apple.renewal_info(
            original_transaction_id=self.book.otid,
            product_id=self.product,
            auto_renew_product_id=self.next_product,
            signed_ms=at,
            recent_start_ms=START,
            renewal_ms=self.tx["expiresDate"],
            renewal_price=GROUP[self.next_product][1],
            currency="USD",
            auto_renew=self.auto_renew,
            **extra,
        )

    def notify(self, ntype: str, at: int, subtype: str = "", tx: dict | None = None, **renewal) -> None:
        # Apple's clock never runs back: a notification is signed after the one before it.
        at = self.last = max(at, self.last + 1000)
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

    def pay(self, ntype: str, subtype: str, purchase_ms: int, *, reason: str = "") -> None:
        if ntype == "DID_RENEW":
            self.product = self.next_product  # a downgrade or crossgrade takes effect at the renewal
        self.tx = self._transaction(purchase_ms, reason=reason)
        if not self.book.family:  # a family member's transactions were paid by the purchaser
            self.book.payments[self.tx["transactionId"]] = GROUP[self.product][1] // 10
        self.book.plan = GROUP[self.product][0]
        self.notify(ntype, purchase_ms + 1000, subtype)
        self.book.state = "active" if self.auto_renew else "canceled"

    def change_plan(self) -> None:
        """DID_CHANGE_RENEWAL_PREF within the group: an upgrade is charged and in effect at once (a new
        transaction); a downgrade or a crossgrade to another duration waits for the next renewal."""
        at = self.tx["purchaseDate"] + 10 * DAY
        if self.product == PRODUCT and self.next_product == PRODUCT and self.rng.random() < 0.6:
            self.product = self.next_product = PLUS
            self.pay("DID_CHANGE_RENEWAL_PREF", "UPGRADE", at, reason="PURCHASE")
            return
        self.next_product = PRODUCT if self.product != PRODUCT else YEARLY
        self.notify("DID_CHANGE_RENEWAL_PREF", at, "DOWNGRADE")
        if self.rng.random() < 0.3:  # changed their mind: back to what they have (no subtype)
            self.next_product = self.product
            self.notify("DID_CHANGE_RENEWAL_PREF", at + DAY)

    def run(self) -> None:
        rng, book = self.rng, self.book
        self.pay("SUBSCRIBED", "INITIAL_BUY", START)
        if book.linked_by_purchase_call:
            self.purchase_call(self.tx)
        for _month in range(rng.randint(0, 5)):
            end = self.tx["expiresDate"]
            move = rng.choices(
                ["renew", "grace", "cancel", "refund", "change"],
                weights=[5, 2, 2, 2, 2] if self.auto_renew else [0, 0, 1, 1, 0],
            )[0]
            if move == "renew":
                self.pay("DID_RENEW", "", end)
            elif move == "change":
                self.change_plan()
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
        if book.family:
            self.family_revoke()
            return
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

    def family_revoke(self) -> None:
        """The purchaser stops sharing (or was refunded): Apple revokes the family member's access."""
        at = self.tx["purchaseDate"] + 5 * DAY
        revoked = {**self.tx, "revocationDate": at, "revocationReason": 0, "revocationType": "FAMILY_REVOKE"}
        self.notify("REVOKE", at + 1000, tx=revoked)
        self.book.state = "revoked"


def app_store_history(rng: random.Random, ns: str, *, pki: ApplePKI, api_key: str) -> tuple[AppleBook, list[Delivery]]:
    sim = _Apple(rng, ns, pki, api_key)
    sim.run()
    return sim.book, sim.deliveries
