"""The demo's webhook inbox: the provider events that would have produced the demo subscriptions.

For each demo subscription (subscriptions/demo.py): one event per
provider-caused step of its history and one per payment, stored as the real
adapters store them (same event types, payload shapes and subscription refs)
and left as the real appliers would have left them (applied, with their note).
A history step's event id is the one its audit row already names
(``<provider>:demo-<sub_id>-<i>``), so the customer's timeline and the inbox
agree; a payment's event is ``demo-<sub_id>-pay-<n>``. The App Store's
``SUBSCRIBED`` and Play's ``SUBSCRIPTION_PURCHASED`` both start the
subscription and record its first payment, as on the stores.

Then the rest of a day in the inbox: events stored as ignored (Stripe
``customer.updated`` and ``payment_method.attached``, $0 trial invoices, the
stores' TEST notifications), and failed ones for Support to replay from the
admin: two Stripe ``invoice.paid`` of subscriptions started this morning, which
arrived before their subscription and ran out of retries (their payment is not
recorded yet: a replay records it), and one for a subscription made outside
this back office (a replay fails the same way).

Builds the rows only (as dicts of columns); subscriptions/demo.py inserts them
with ``ON CONFLICT (provider, event_id) DO NOTHING``, so the seed stays idempotent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings

from monetization.models import WebhookEvent
from monetization.providers.google_play.adapter import NOTIFICATION_TYPES
from monetization.providers.stripe.adapter import minor_from_money
from subscriptions.models import Subscription
from subscriptions.periods import add_interval

S = Subscription.State
APPLIED, IGNORED, FAILED = (
    str(s.value) for s in (WebhookEvent.Status.APPLIED, WebhookEvent.Status.IGNORED, WebhookEvent.Status.FAILED)
)
PLAY_CODES = {name: code for code, name in NOTIFICATION_TYPES.items()}
PLAY_STEPS = {
    "start_trial": "SUBSCRIPTION_PURCHASED",
    "activate": "SUBSCRIPTION_PURCHASED",
    "cancel": "SUBSCRIPTION_CANCELED",
    "enter_grace_period": "SUBSCRIPTION_IN_GRACE_PERIOD",
    "put_on_hold": "SUBSCRIPTION_ON_HOLD",
    "pause": "SUBSCRIPTION_PAUSED",
    "expire": "SUBSCRIPTION_EXPIRED",
    "revoke": "SUBSCRIPTION_REVOKED",
}
PLAY_PUSH_SUBSCRIPTION = "projects/backoffice-demo/subscriptions/play-rtdn-push"
# App Store (type, subtype) per history step.
APPLE_STEPS = {
    "start_trial": ("SUBSCRIBED", "INITIAL_BUY"),
    "activate": ("SUBSCRIBED", "INITIAL_BUY"),
    "cancel": ("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED"),
    "enter_grace_period": ("DID_FAIL_TO_RENEW", "GRACE_PERIOD"),
    "put_on_hold": ("DID_FAIL_TO_RENEW", ""),
    "expire": ("EXPIRED", "VOLUNTARY"),
    "revoke": ("REFUND", ""),
}
# App Store notification data.status: 1 active, 2 expired, 3 billing retry, 4 grace period, 5 revoked.
APPLE_STATUS = {S.ON_HOLD: 3, S.IN_GRACE_PERIOD: 4, S.EXPIRED: 2, S.REVOKED: 5}
STOREFRONTS = {
    "US": "USA",
    "GB": "GBR",
    "DE": "DEU",
    "FR": "FRA",
    "ES": "ESP",
    "IT": "ITA",
    "JP": "JPN",
    "IN": "IND",
    "BR": "BRA",
    "CA": "CAN",
    "AU": "AUS",
}
STRIPE_FEEDBACK = {"too_expensive": "too_expensive", "price_increase": "too_expensive"}
REPLAYABLE = 2  # Stripe invoice.paid events left failed, whose payment a replay records


def _hex(*parts) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


def _stripe_id(prefix: str, *parts) -> str:
    return f"{prefix}_1Q{_hex(prefix, *parts)[:22]}"


def _ts(at: datetime) -> int:
    return int(at.timestamp())


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _zulu(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def _stripe_event(event_id: str, event_type: str, at: datetime, obj: dict, previous: dict | None = None) -> dict:
    data: dict = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {
        "id": event_id,
        "object": "event",
        "api_version": settings.STRIPE_API_VERSION,
        "created": _ts(at),
        "data": data,
        "livemode": True,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def _play_push(event_id: str, notification: dict, published: datetime) -> tuple[dict, str]:
    """The stored payload, and the body as Pub/Sub pushed it (not signed: it is kept as it came)."""
    message = {
        "attributes": {},
        "messageId": event_id,
        "message_id": event_id,
        "publishTime": _zulu(published),
        "publish_time": _zulu(published),
    }
    data = base64.b64encode(json.dumps(notification).encode()).decode()
    body = json.dumps({"message": {**message, "data": data}, "subscription": PLAY_PUSH_SUBSCRIPTION})
    return {"message": message, "notification": notification}, body


def _event(**fields) -> dict:
    """One inbox row, as a dict of its columns (subscriptions/demo.py inserts them in one statement)."""
    row = {"subscription_ref": "", "raw_body": "", "attempts": 0, "last_error": "", "note": "", "applied_at": None}
    row.update(fields)
    row["note"] = row["note"][:200]
    return row


def _fail(row: dict, error: str) -> dict:
    """As left once the retries ran out: the first attempt and WEBHOOK_APPLY_MAX_RETRIES more."""
    row.update(
        status=FAILED, attempts=1 + settings.WEBHOOK_APPLY_MAX_RETRIES, last_error=error, applied_at=None, note=""
    )
    return row


@dataclass
class Context:
    """What the builders need besides one subscription's rows."""

    now: datetime
    seed: int
    identities: dict  # (customer_id, kind) -> value
    skus: dict  # (plan_id, platform) -> store product id (Stripe: price id)
    payment_ids: dict = field(default_factory=dict)  # provider_reference -> pk
    withheld: set = field(default_factory=set)  # references of payments left for a replay to record
    bundle_id: str = field(default_factory=lambda: settings.APP_STORE_BUNDLE_ID or "com.example.backoffice")
    package_name: str = field(default_factory=lambda: settings.GOOGLE_PLAY_PACKAGE_NAME or "com.example.backoffice")
    apple_id: int = field(default_factory=lambda: settings.APP_STORE_APP_APPLE_ID or 1234567890)

    def stripe_customer(self, customer) -> str:
        return self.identities.get((customer.pk, "customer_id")) or _stripe_id("cus", customer.external_id)


def start_replayable(todo, now: datetime) -> set[str]:
    """Two web subscriptions started this morning whose first ``invoice.paid`` is left failed in the inbox.

    Their ``invoice.paid`` arrived before ``customer.subscription.created`` (which Stripe delivered
    again 11 minutes later, after a 5xx) and ran out of retries: the payment is not recorded, and a
    replay from the admin records it. Rewrites their rows in ``todo`` (the first new active web
    subscriptions) and returns the provider references of the payments to leave out.
    """
    refs: set[str] = set()
    for k, (fields, _paid, _history, state) in enumerate(todo):
        if len(refs) >= REPLAYABLE:
            break
        if fields["provider"] != "stripe" or state != S.ACTIVE:
            continue
        started = (now - timedelta(hours=3 + 4 * len(refs), minutes=17 * k % 60)).replace(microsecond=0)
        fields.update(
            started_at=started,
            current_period_start=started,
            current_period_end=add_interval(started, fields["plan"].interval),
        )
        todo[k] = (fields, [("succeeded", started, 0)], [("activate", S.PENDING, S.ACTIVE, started, "provider")], state)
        refs.add(f"demo-{fields['provider_subscription_id'][:60]}-0")
    return refs


class _Sub:
    """One demo subscription as its provider saw it: ids, periods, its state at any moment, its events."""

    def __init__(self, fields, sub_id, state, amount, payments, history, ctx: Context):
        self.f, self.id, self.state, self.amount, self.history, self.ctx = fields, sub_id, state, amount, history, ctx
        self.payments = {int(p.provider_reference.rsplit("-", 1)[1]): p for p in payments}
        self.provider = fields["provider"]
        self.psid = fields["provider_subscription_id"]
        self.customer = fields["customer"]
        self.plan = fields["plan"]
        self.product_id = ctx.skus.get((self.plan.id, fields["platform"]), self.plan.code)
        self.anchor = fields["started_at"]
        self.rng = random.Random(f"{ctx.seed}:inbox:{self.psid}")

    def ref(self, n: int) -> str:
        """The provider reference of payment ``n`` (as subscriptions/demo.py names it)."""
        return f"demo-{self.psid[:60]}-{n}"

    def period(self, at: datetime) -> tuple[int, datetime, datetime]:
        """The paid (or trial) period ``at`` falls in: (n, start, end)."""
        if self.state in (S.TRIALING, S.PENDING):
            return 0, self.anchor, self.f.get("trial_end") or self.f["current_period_end"]
        n = max([k for k, p in self.payments.items() if p.occurred_at <= at], default=0)
        interval, day = self.plan.interval, self.anchor.day
        return (
            n,
            add_interval(self.anchor, interval, n, anchor_day=day),
            add_interval(self.anchor, interval, n + 1, anchor_day=day),
        )

    def state_at(self, at: datetime) -> str:
        state = S.ACTIVE
        for _t, _before, after, step_at, _actor in self.history:
            if step_at <= at:
                state = after
        return state

    def steps(self):
        """The provider-caused history steps: (index, transition, after, at)."""
        for i, (transition, _before, after, at, actor) in enumerate(self.history):
            if actor == "provider":
                yield i, transition, after, at

    def starts_with_payment(self) -> bool:
        """Whether the store's start notification also recorded payment 0 (App Store, Play)."""
        return 0 in self.payments and any(t == "activate" for _i, t, _a, _at in self.steps())

    def paid_note(self, n: int, stripe: bool = False) -> str:
        pk = self.ctx.payment_ids.get(self.ref(n))
        return f"payment {pk} recorded" if stripe else f"payment {pk}"

    def row(self, *, event_id, event_type, at, payload, raw_body="", note="", ref=None, late=0.0) -> dict:
        """Applied on arrival: occurred (to the provider's precision), received seconds (or ``late`` s) later."""
        precision = 0 if self.provider == "stripe" else at.microsecond // 1000 * 1000
        occurred = at.replace(microsecond=precision)
        received = occurred + timedelta(seconds=late + self.rng.uniform(0.4, 9))
        return _event(
            provider=self.provider,
            event_id=event_id,
            event_type=event_type,
            subscription_ref=self.psid if ref is None else ref,
            occurred_at=occurred,
            received_at=received,
            payload=payload,
            raw_body=raw_body,
            status=APPLIED,
            attempts=1,
            applied_at=received + timedelta(milliseconds=self.rng.randint(25, 1800)),
            note=note,
        )

    def events(self) -> list[dict]:
        return {"stripe": self._stripe, "app_store": self._app_store, "google_play": self._google_play}[self.provider]()

    # --- Stripe: customer.subscription.*, invoice.paid / payment_failed, charge.refunded ---------------

    def _stripe_subscription(self, at: datetime, status: str, **changes) -> dict:
        f, currency = self.f, str(self.amount.currency).lower()
        n, start, end = self.period(at)
        trial_end = f.get("trial_end")
        item = {
            "id": _stripe_id("si", self.psid),
            "object": "subscription_item",
            "created": _ts(self.anchor),
            "current_period_end": _ts(end),
            "current_period_start": _ts(start),
            "metadata": {},
            "price": {
                "id": self.product_id,
                "object": "price",
                "active": True,
                "currency": currency,
                "product": "prod_R" + _hex("prod", self.plan.product_id)[:12],
                "recurring": {"interval": self.plan.interval, "interval_count": 1, "usage_type": "licensed"},
                "type": "recurring",
                "unit_amount": minor_from_money(self.amount),
            },
            "quantity": 1,
            "subscription": self.psid,
        }
        obj = {
            "id": self.psid,
            "object": "subscription",
            "billing_cycle_anchor": _ts(trial_end or self.anchor),
            "cancel_at": None,
            "cancel_at_period_end": False,
            "canceled_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
            "collection_method": "charge_automatically",
            "created": _ts(self.anchor),
            "currency": currency,
            "customer": self.ctx.stripe_customer(self.customer),
            "default_payment_method": _stripe_id("pm", self.ctx.stripe_customer(self.customer)),
            "ended_at": None,
            "items": {
                "object": "list",
                "data": [item],
                "has_more": False,
                "total_count": 1,
                "url": f"/v1/subscription_items?subscription={self.psid}",
            },
            "latest_invoice": self.ref(n),
            "livemode": True,
            "metadata": {"external_id": self.customer.external_id},
            "pause_collection": None,
            "start_date": _ts(self.anchor),
            "status": status,
            "trial_end": _ts(trial_end) if trial_end else None,
            "trial_start": _ts(self.anchor) if trial_end else None,
        }
        obj.update(changes)
        return obj

    def _stripe_invoice(self, n: int, at: datetime, payment=None) -> dict:
        """Invoice ``n`` (its id is the payment's reference); without a payment, the $0 one opening a trial."""
        _n, start, end = self.period(at)
        currency = str(self.amount.currency).lower()
        if payment is None:
            total = tax = fee = 0
            paid = True
        else:
            total, tax, fee = (minor_from_money(m) for m in (payment.amount, payment.tax, payment.fee))
            paid = payment.status == "succeeded"
        ref = self.ref(n)
        invoice = {
            "id": ref,
            "object": "invoice",
            "account_country": "US",
            "amount_due": total,
            "amount_paid": total if paid else 0,
            "amount_remaining": 0 if paid else total,
            "attempt_count": 1 if total else 0,
            "attempted": bool(total),
            "billing_reason": "subscription_create" if n == 0 else "subscription_cycle",
            "collection_method": "charge_automatically",
            "created": _ts(at),
            "currency": currency,
            "customer": self.ctx.stripe_customer(self.customer),
            "customer_email": self.customer.email,
            "lines": {
                "object": "list",
                "data": [
                    {
                        "id": _stripe_id("il", ref),
                        "object": "line_item",
                        "amount": total,
                        "currency": currency,
                        "period": {"end": _ts(end), "start": _ts(start)},
                        "pricing": {
                            "price_details": {"price": self.product_id},
                            "type": "price_details",
                            "unit_amount_decimal": str(total),
                        },
                        "quantity": 1,
                    }
                ],
                "has_more": False,
                "total_count": 1,
            },
            "livemode": True,
            "next_payment_attempt": None,
            "number": f"{_hex('number', self.psid)[:8].upper()}-{n + 1:04d}",
            "parent": {
                "quote_details": None,
                "subscription_details": {
                    "metadata": {"external_id": self.customer.external_id},
                    "subscription": self.psid,
                },
                "type": "subscription_details",
            },
            "period_end": _ts(at),
            "period_start": _ts(at),
            "status": "paid" if paid else "open",
            "status_transitions": {"finalized_at": _ts(at), "paid_at": _ts(at) if paid else None, "voided_at": None},
            "subtotal": total,
            "total": total,
            "total_taxes": [
                {
                    "amount": tax,
                    "tax_behavior": "inclusive",
                    "tax_rate_details": {"tax_rate": _stripe_id("txr", self.customer.country)},
                    "taxability_reason": "standard_rated",
                    "taxable_amount": total - tax,
                    "type": "tax_rate_details",
                }
            ]
            if tax
            else [],
        }
        if paid and total:
            # As if the charge came expanded: the applier books the processing fee from it.
            invoice["charge"] = {
                "id": _stripe_id("ch", ref),
                "object": "charge",
                "balance_transaction": {
                    "id": _stripe_id("txn", ref),
                    "object": "balance_transaction",
                    "fee": fee,
                    "net": total - fee,
                },
            }
        return invoice

    def _stripe_refund(self, at: datetime) -> dict:
        """The charge of the period being refunded in full (Stripe has no "revoked": the applier revokes)."""
        n, _start, _end = self.period(at)
        payment, ref = self.payments.get(n), self.ref(n)
        amount = minor_from_money(payment.amount) if payment else 0
        return {
            "id": _stripe_id("ch", ref),
            "object": "charge",
            "amount": amount,
            "amount_captured": amount,
            "amount_refunded": amount,
            "balance_transaction": _stripe_id("txn", ref),
            "captured": True,
            "created": _ts(payment.occurred_at if payment else at),
            "currency": str(self.amount.currency).lower(),
            "customer": self.ctx.stripe_customer(self.customer),
            "livemode": True,
            "paid": True,
            "payment_intent": _stripe_id("pi", ref),
            "payment_method": _stripe_id("pm", self.ctx.stripe_customer(self.customer)),
            "refunded": True,
            "status": "succeeded",
        }

    def _stripe_step(self, transition: str, after: str, at: datetime) -> tuple[str, dict, dict | None, str]:
        """(type, object, previous_attributes, note) of the event behind one history step."""
        note = f"subscription {self.id} {after}"
        if transition in ("start_trial", "activate"):
            status = "trialing" if transition == "start_trial" else "active"
            return "customer.subscription.created", self._stripe_subscription(at, status), None, note
        if transition == "cancel":
            _n, _start, end = self.period(at)
            obj = self._stripe_subscription(
                at,
                "active",
                cancel_at=_ts(end),
                cancel_at_period_end=True,
                canceled_at=_ts(at),
                cancellation_details={
                    "comment": None,
                    "feedback": STRIPE_FEEDBACK.get(self.f.get("cancel_reason", "")),
                    "reason": "cancellation_requested",
                },
            )
            previous = {"cancel_at": None, "cancel_at_period_end": False, "canceled_at": None}
            return "customer.subscription.updated", obj, previous, note
        if transition == "pause":
            obj = self._stripe_subscription(at, "paused", pause_collection={"behavior": "void", "resumes_at": None})
            return "customer.subscription.updated", obj, {"pause_collection": None, "status": "active"}, note
        if transition == "enter_grace_period":
            return (
                "customer.subscription.updated",
                self._stripe_subscription(at, "past_due"),
                {"status": "active"},
                note,
            )
        if transition == "put_on_hold":
            return (
                "customer.subscription.updated",
                self._stripe_subscription(at, "unpaid"),
                {"status": "past_due"},
                note,
            )
        if transition == "expire":
            obj = self._stripe_subscription(at, "canceled", ended_at=_ts(at))
            return "customer.subscription.deleted", obj, None, note
        if transition == "revoke":
            # The demo books no Refund rows for its revoked subscriptions: "0 booked", as the applier would say.
            note = f"full refund (0 booked): subscription {self.id} revoked"
            return "charge.refunded", self._stripe_refund(at), {"amount_refunded": 0, "refunded": False}, note
        return "customer.subscription.updated", self._stripe_subscription(at, "active"), None, note

    def _stripe(self) -> list[dict]:
        rows = []
        for i, transition, after, at in self.steps():
            event_id = f"demo-{self.id}-{i}"
            event_type, obj, previous, note = self._stripe_step(transition, after, at)
            payload = _stripe_event(event_id, event_type, at, obj, previous)
            # Delivered late (Stripe retried it) when its first invoice.paid came first and failed.
            late = 660.0 if transition == "activate" and self.ref(0) in self.ctx.withheld else 0.0
            ref = "" if event_type == "charge.refunded" else self.psid  # the adapter takes refs from subs/invoices
            raw = json.dumps(payload)
            rows.append(
                self.row(
                    event_id=event_id,
                    event_type=event_type,
                    at=at,
                    payload=payload,
                    raw_body=raw,
                    note=note,
                    ref=ref,
                    late=late,
                )
            )
            if transition == "start_trial":
                # A trial opens with a $0 invoice: paid, and ignored by the applier.
                zero_id, zero_at = f"demo-{self.id}-pay-0", at + timedelta(seconds=2)
                payload = _stripe_event(zero_id, "invoice.paid", zero_at, self._stripe_invoice(0, zero_at))
                row = self.row(
                    event_id=zero_id,
                    event_type="invoice.paid",
                    at=zero_at,
                    payload=payload,
                    raw_body=json.dumps(payload),
                    note="zero-amount invoice (trial or credit)",
                )
                row["status"] = IGNORED
                rows.append(row)
        for n, payment in sorted(self.payments.items()):
            ok = payment.status == "succeeded"
            event_type = "invoice.paid" if ok else "invoice.payment_failed"
            event_id, at = f"demo-{self.id}-pay-{n}", payment.occurred_at + timedelta(seconds=3)
            payload = _stripe_event(event_id, event_type, at, self._stripe_invoice(n, at, payment))
            note = self.paid_note(n, stripe=True) if ok else f"payment failure recorded on subscription {self.id}"
            row = self.row(
                event_id=event_id,
                event_type=event_type,
                at=at,
                payload=payload,
                raw_body=json.dumps(payload),
                note=note,
            )
            if payment.provider_reference in self.ctx.withheld:
                _fail(row, f"RetryableApplyError: subscription {self.psid} not known yet")
            rows.append(row)
        return rows

    # --- App Store: Server Notifications V2, decoded (notification, transaction, renewal) -----------------
    # raw_body stays empty: the real one is Apple's signed JWS ({"signedPayload": ...}), which only Apple can sign.

    def _apple_payload(self, event_id, ntype, subtype, at, *, status=1, trial=False, revoked=False, renewal=None):
        n, start, end = self.period(at)
        payment = self.payments.get(n)
        transaction = {
            "transactionId": self.ref(n),  # the payment's reference, as the applier records it
            "originalTransactionId": self.psid,
            "webOrderLineItemId": str(int(_hex("wol", self.psid, n)[:13], 16)),
            "bundleId": self.ctx.bundle_id,
            "productId": self.product_id,
            "subscriptionGroupIdentifier": "21345678",
            "purchaseDate": _ms(start),
            "originalPurchaseDate": _ms(self.anchor),
            "expiresDate": _ms(end),
            "quantity": 1,
            "type": "Auto-Renewable Subscription",
            "inAppOwnershipType": "PURCHASED",
            "signedDate": _ms(at),
            "environment": "Production",
            "transactionReason": "PURCHASE" if n == 0 else "RENEWAL",
            "storefront": STOREFRONTS.get(self.customer.country, "USA"),
            "price": 0 if trial or payment is None else int(payment.amount.amount * 1000),  # milliunits
            "currency": str(self.amount.currency),
        }
        token = self.ctx.identities.get((self.customer.pk, "app_account_token"))
        if token:
            transaction["appAccountToken"] = token
        if trial:
            transaction.update(offerType=1, offerDiscountType="FREE_TRIAL", offerPeriod="P1M")
        if revoked:
            transaction.update(revocationDate=_ms(at), revocationReason=0)
        renewal_info = {
            "originalTransactionId": self.psid,
            "autoRenewProductId": self.product_id,
            "productId": self.product_id,
            "autoRenewStatus": 1,
            "isInBillingRetryPeriod": False,
            "signedDate": _ms(at),
            "environment": "Production",
            "recentSubscriptionStartDate": _ms(self.anchor),
            "renewalDate": _ms(end),
            "renewalPrice": int(self.amount.amount * 1000),
            "currency": str(self.amount.currency),
            **(renewal or {}),
        }
        notification = {
            "notificationType": ntype,
            **({"subtype": subtype} if subtype else {}),
            "notificationUUID": event_id,
            "data": {
                "appAppleId": self.ctx.apple_id,
                "bundleId": self.ctx.bundle_id,
                "bundleVersion": "42",
                "environment": "Production",
                "status": status,
            },
            "version": "2.0",
            "signedDate": _ms(at),
        }
        return {"notification": notification, "transaction": transaction, "renewal": renewal_info}

    def _app_store(self) -> list[dict]:
        rows = []
        for i, transition, after, at in self.steps():
            ntype, subtype = APPLE_STEPS.get(transition, ("DID_CHANGE_RENEWAL_PREF", ""))
            options: dict = {"status": APPLE_STATUS.get(after, 1)}
            note = f"subscription {self.id} {after}"
            if transition == "start_trial":
                options["trial"] = True
            elif transition == "activate" and self.starts_with_payment():
                note += f"; {self.paid_note(0)}"  # SUBSCRIBED records the first payment too
            elif transition in ("cancel", "expire"):
                options["renewal"] = {"autoRenewStatus": 0, "expirationIntent": 1}
            elif transition == "enter_grace_period":
                grace_end = self.f.get("grace_end") or at
                options["renewal"] = {
                    "isInBillingRetryPeriod": True,
                    "gracePeriodExpiresDate": _ms(grace_end),
                    "expirationIntent": 2,
                }
            elif transition == "put_on_hold":
                options["renewal"] = {"isInBillingRetryPeriod": True, "expirationIntent": 2}
            elif transition == "revoke":
                options["revoked"] = True
            event_id = f"demo-{self.id}-{i}"
            payload = self._apple_payload(event_id, ntype, subtype, at, **options)
            event_type = f"{ntype}.{subtype}" if subtype else ntype
            rows.append(self.row(event_id=event_id, event_type=event_type, at=at, payload=payload, note=note))
        covered = self.starts_with_payment()
        for n, payment in sorted(self.payments.items()):
            if payment.status != "succeeded" or (n == 0 and covered):
                continue  # (the demo has no failed App Store charges: billing retry is DID_FAIL_TO_RENEW)
            at = payment.occurred_at + timedelta(seconds=2)
            event_id = f"demo-{self.id}-pay-{n}"
            ntype, subtype = ("DID_RENEW", "") if n else ("SUBSCRIBED", "INITIAL_BUY")
            payload = self._apple_payload(event_id, ntype, subtype, at)
            note = f"subscription {self.id} {self.state_at(at)}; {self.paid_note(n)}"
            event_type = f"{ntype}.{subtype}" if subtype else ntype
            rows.append(self.row(event_id=event_id, event_type=event_type, at=at, payload=payload, note=note))
        return rows

    # --- Google Play: RTDN pushed by Pub/Sub (the applier reads the purchase back from the API) ----------

    def _play_row(self, event_id: str, name: str, at: datetime, note: str) -> dict:
        notification = {
            "version": "1.0",
            "packageName": self.ctx.package_name,
            "eventTimeMillis": str(_ms(at)),
            "subscriptionNotification": {
                "version": "1.0",
                "notificationType": PLAY_CODES[name],
                "purchaseToken": self.psid,
                "subscriptionId": self.product_id,
            },
        }
        published = at + timedelta(milliseconds=self.rng.randint(40, 900))
        payload, body = _play_push(event_id, notification, published)
        return self.row(event_id=event_id, event_type=name, at=at, payload=payload, raw_body=body, note=note)

    def _google_play(self) -> list[dict]:
        rows = []
        for i, transition, after, at in self.steps():
            note = f"subscription {self.id} {after}"
            if transition == "activate" and self.starts_with_payment():
                note += f"; {self.paid_note(0)}"  # PURCHASED: the applier records the first order
            name = PLAY_STEPS.get(transition, "SUBSCRIPTION_RECOVERED")
            rows.append(self._play_row(f"demo-{self.id}-{i}", name, at, note))
        covered = self.starts_with_payment()
        for n, payment in sorted(self.payments.items()):
            if payment.status != "succeeded" or (n == 0 and covered):
                continue
            at = payment.occurred_at + timedelta(seconds=2)
            name = "SUBSCRIPTION_RENEWED" if n else "SUBSCRIPTION_PURCHASED"
            note = f"subscription {self.id} {self.state_at(at)}; {self.paid_note(n)}"
            rows.append(self._play_row(f"demo-{self.id}-pay-{n}", name, at, note))
        return rows


def subscription_events(*, fields, sub_id, state, amount, payments, history, ctx: Context) -> list[dict]:
    """The events one demo subscription's history and payments came from (``payments``: all of its Payment rows)."""
    return _Sub(fields, sub_id, state, amount, payments, history, ctx).events()


def day_events(planned, ctx: Context) -> list[dict]:
    """The rest of the last day in the inbox: ignored events, and one that fails for good. Deterministic ids."""
    rng = random.Random(f"{ctx.seed}:inbox-day")
    web = [p[0]["customer"] for p in planned if p[0]["provider"] == "stripe"]
    rows: list[dict] = []

    def when(hours_ago: float) -> tuple[datetime, datetime]:
        occurred = (ctx.now - timedelta(hours=hours_ago)).replace(microsecond=0)
        return occurred, occurred + timedelta(seconds=rng.uniform(0.5, 6))

    def ignored(provider, event_id, event_type, occurred, received, payload, raw_body="", ref=""):
        # As webhook_store stores a type no applier handles: ignored on arrival, never attempted.
        rows.append(
            _event(
                provider=provider,
                event_id=event_id,
                event_type=event_type,
                subscription_ref=ref,
                occurred_at=occurred,
                received_at=received,
                payload=payload,
                raw_body=raw_body,
                status=IGNORED,
                attempts=0,
                applied_at=received,
                note="event type not applied",
            )
        )

    # Customers updating their card on the web.
    for k, customer in enumerate(web[:3]):
        cus = ctx.stripe_customer(customer)
        occurred, received = when(2 + 6 * k + rng.random())
        new_pm, old_pm = _stripe_id("pm", cus, "new"), _stripe_id("pm", cus)
        card = {
            "id": new_pm,
            "object": "payment_method",
            "billing_details": {"email": customer.email},
            "card": {"brand": "visa", "country": customer.country, "exp_month": 8, "exp_year": 2030, "last4": "4242"},
            "created": _ts(occurred) - 2,
            "customer": cus,
            "livemode": True,
            "type": "card",
        }
        event_id = _stripe_id("evt", ctx.seed, "payment_method.attached", k)
        payload = _stripe_event(event_id, "payment_method.attached", occurred - timedelta(seconds=2), card)
        ignored(
            "stripe",
            event_id,
            "payment_method.attached",
            occurred - timedelta(seconds=2),
            received - timedelta(seconds=2),
            payload,
            json.dumps(payload),
        )
        obj = {
            "id": cus,
            "object": "customer",
            "created": _ts(customer.created_at),
            "email": customer.email,
            "invoice_settings": {"custom_fields": None, "default_payment_method": new_pm, "footer": None},
            "livemode": True,
            "metadata": {"external_id": customer.external_id},
        }
        event_id = _stripe_id("evt", ctx.seed, "customer.updated", k)
        previous = {"invoice_settings": {"default_payment_method": old_pm}}
        payload = _stripe_event(event_id, "customer.updated", occurred, obj, previous)
        ignored("stripe", event_id, "customer.updated", occurred, received, payload, json.dumps(payload))

    # The stores' test notifications, sent from App Store Connect and the Play Console after a deploy.
    occurred, received = when(9.5)
    apple_uuid = str(uuid.UUID(_hex(ctx.seed, "apple-test")[:32]))
    apple_test = {
        "notification": {
            "notificationType": "TEST",
            "notificationUUID": apple_uuid,
            "data": {"appAppleId": ctx.apple_id, "bundleId": ctx.bundle_id, "environment": "Production"},
            "version": "2.0",
            "signedDate": _ms(occurred),
        },
        "transaction": None,
        "renewal": None,
    }
    ignored("app_store", apple_uuid, "TEST", occurred, received, apple_test)
    occurred, received = when(9.4)
    message_id = str(int(_hex(ctx.seed, "play-test")[:11], 16))
    play_test = {
        "version": "1.0",
        "packageName": ctx.package_name,
        "eventTimeMillis": str(_ms(occurred)),
        "testNotification": {"version": "1.0"},
    }
    payload, body = _play_push(message_id, play_test, occurred)
    ignored("google_play", message_id, "TEST", occurred, received, payload, body)

    # A subscription made in the Stripe dashboard, outside this back office: its invoice.paid names a
    # subscription we never hear of. It failed once the retries ran out; a replay fails the same way.
    if web:
        customer = web[-1]
        sub_id = _stripe_id("sub", ctx.seed, "dashboard")
        event_id = _stripe_id("evt", ctx.seed, "dashboard-invoice")
        occurred, received = when(5.2)
        invoice = {
            "id": _stripe_id("in", ctx.seed, "dashboard"),
            "object": "invoice",
            "amount_due": 2900,
            "amount_paid": 2900,
            "amount_remaining": 0,
            "billing_reason": "subscription_create",
            "currency": "usd",
            "customer": ctx.stripe_customer(customer),
            "customer_email": customer.email,
            "livemode": True,
            "parent": {
                "quote_details": None,
                "subscription_details": {"metadata": {}, "subscription": sub_id},
                "type": "subscription_details",
            },
            "status": "paid",
            "status_transitions": {"finalized_at": _ts(occurred), "paid_at": _ts(occurred), "voided_at": None},
            "total": 2900,
            "total_taxes": [],
        }
        payload = _stripe_event(event_id, "invoice.paid", occurred, invoice)
        row = _event(
            provider="stripe",
            event_id=event_id,
            event_type="invoice.paid",
            subscription_ref=sub_id,
            occurred_at=occurred,
            received_at=received,
            payload=payload,
            raw_body=json.dumps(payload),
        )
        rows.append(_fail(row, f"RetryableApplyError: subscription {sub_id} not known yet"))
    return rows
