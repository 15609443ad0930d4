"""The demo's webhook inbox: the provider events that would have produced the demo subscriptions.

For each demo subscription (subscriptions/demo/subscriptions.py): one event per
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

Builds the rows only (as dicts of columns); subscriptions/demo/subscriptions.py inserts them
with ``ON CONFLICT (provider, event_id) DO NOTHING``, so the seed stays idempotent. The
payloads come from the provider packages' ``payloads`` builders, the shapes the webhook
tests post and check against recorded payloads.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings

from monetization.models import WebhookEvent
from monetization.money import minor_from_money
from monetization.providers.app_store import payloads as apple
from monetization.providers.google_play import NOTIFICATION_TYPES
from monetization.providers.google_play import payloads as play
from monetization.providers.stripe import payloads as stripe
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


def _stripe_event(event_id: str, event_type: str, at: datetime, obj: dict, previous: dict | None = None) -> dict:
    return stripe.event(event_id=event_id, event_type=event_type, created=_ts(at), obj=obj, previous=previous)


def _play_push(event_id: str, notification: dict, published: datetime) -> tuple[dict, str]:
    """The stored payload, and the body as Pub/Sub pushed it (not signed: it is kept as it came)."""
    push = play.pubsub_push(
        notification=notification, message_id=event_id, published=published, subscription=PLAY_PUSH_SUBSCRIPTION
    )
    return play.stored_push(push, notification), json.dumps(push)


def _event(**fields) -> dict:
    """One inbox row, as a dict of its columns (subscriptions/demo/subscriptions.py inserts them in one statement)."""
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
        """The provider reference of payment ``n`` (as subscriptions/demo/subscriptions.py names it)."""
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
        customer = self.ctx.stripe_customer(self.customer)
        return stripe.subscription(
            sub_id=self.psid,
            customer=customer,
            status=status,
            created=_ts(self.anchor),
            period_start=_ts(start),
            period_end=_ts(end),
            price_id=self.product_id,
            product="prod_R" + _hex("prod", self.plan.product_id)[:12],
            unit_amount=minor_from_money(self.amount),
            currency=currency,
            interval=self.plan.interval,
            item_id=_stripe_id("si", self.psid),
            external_id=self.customer.external_id,
            latest_invoice=self.ref(n),
            default_payment_method=_stripe_id("pm", customer),
            billing_cycle_anchor=_ts(trial_end or self.anchor),
            trial_start=_ts(self.anchor) if trial_end else None,
            trial_end=_ts(trial_end) if trial_end else None,
            **changes,
        )

    def _stripe_invoice(self, n: int, at: datetime, payment=None) -> dict:
        """Invoice ``n`` (its id is the payment's reference); without a payment, the $0 one opening a trial."""
        _n, start, end = self.period(at)
        if payment is None:
            total = tax = fee = 0
            paid = True
        else:
            total, tax, fee = (minor_from_money(m) for m in (payment.amount, payment.tax, payment.fee))
            paid = payment.status == "succeeded"
        ref = self.ref(n)
        # As if the charge came expanded: the fee is booked from its balance transaction.
        charge = (
            stripe.expanded_charge(
                charge_id=_stripe_id("ch", ref), balance_transaction_id=_stripe_id("txn", ref), amount=total, fee=fee
            )
            if paid and total
            else None
        )
        return stripe.invoice(
            invoice_id=ref,
            customer=self.ctx.stripe_customer(self.customer),
            sub_id=self.psid,
            total=total,
            created=_ts(at),
            period_start=_ts(start),
            period_end=_ts(end),
            price_id=self.product_id,
            product="prod_R" + _hex("prod", self.plan.product_id)[:12],
            line_id=_stripe_id("il", ref),
            number=f"{_hex('number', self.psid)[:8].upper()}-{n + 1:04d}",
            currency=str(self.amount.currency).lower(),
            paid=paid,
            tax=tax,
            tax_rate=_stripe_id("txr", self.customer.country),
            billing_reason="subscription_create" if n == 0 else "subscription_cycle",
            external_id=self.customer.external_id,
            customer_email=self.customer.email,
            charge=charge,
        )

    def _stripe_refund(self, at: datetime) -> dict:
        """The charge of the period being refunded in full (Stripe has no "revoked": the applier revokes)."""
        n, _start, _end = self.period(at)
        payment, ref = self.payments.get(n), self.ref(n)
        amount = minor_from_money(payment.amount) if payment else 0
        customer = self.ctx.stripe_customer(self.customer)
        return stripe.refunded_charge(
            charge_id=_stripe_id("ch", ref),
            customer=customer,
            amount=amount,
            refunded=amount,
            created=_ts(payment.occurred_at if payment else at),
            payment_intent=_stripe_id("pi", ref),
            payment_method=_stripe_id("pm", customer),
            balance_transaction=_stripe_id("txn", ref),
            currency=str(self.amount.currency).lower(),
        )

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
        transaction = apple.transaction(
            transaction_id=self.ref(n),  # the payment's reference, as the applier records it
            original_transaction_id=self.psid,
            web_order_line_item_id=str(int(_hex("wol", self.psid, n)[:13], 16)),
            bundle_id=self.ctx.bundle_id,
            product_id=self.product_id,
            purchase_ms=_ms(start),
            original_purchase_ms=_ms(self.anchor),
            expires_ms=_ms(end),
            signed_ms=_ms(at),
            price=0 if trial or payment is None else int(payment.amount.amount * 1000),  # milliunits
            currency=str(self.amount.currency),
            storefront=STOREFRONTS.get(self.customer.country, "USA"),
            reason="PURCHASE" if n == 0 else "RENEWAL",
            app_account_token=self.ctx.identities.get((self.customer.pk, "app_account_token")) or "",
        )
        if trial:
            transaction = apple.free_trial(transaction)
        if revoked:
            transaction = apple.revoked(transaction, at_ms=_ms(at))
        renewal_info = apple.renewal_info(
            original_transaction_id=self.psid,
            product_id=self.product_id,
            signed_ms=_ms(at),
            recent_start_ms=_ms(self.anchor),
            renewal_ms=_ms(end),
            renewal_price=int(self.amount.amount * 1000),
            currency=str(self.amount.currency),
            **(renewal or {}),
        )
        notification = apple.notification(
            notification_type=ntype,
            subtype=subtype,
            uuid=event_id,
            signed_ms=_ms(at),
            app_apple_id=self.ctx.apple_id,
            bundle_id=self.ctx.bundle_id,
            status=status,
        )
        return apple.decoded(notification, transaction, renewal_info)

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
                options["renewal"] = {"auto_renew": False, "expiration_intent": 1}
            elif transition == "enter_grace_period":
                grace_end = self.f.get("grace_end") or at
                options["renewal"] = {
                    "in_billing_retry": True,
                    "grace_expires_ms": _ms(grace_end),
                    "expiration_intent": 2,
                }
            elif transition == "put_on_hold":
                options["renewal"] = {"in_billing_retry": True, "expiration_intent": 2}
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
        notification = play.developer_notification(
            package_name=self.ctx.package_name,
            event_ms=_ms(at),
            code=PLAY_CODES[name],
            token=self.psid,
            product_id=self.product_id,
        )
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
    apple_test = apple.decoded(
        apple.notification(
            notification_type="TEST",
            uuid=apple_uuid,
            signed_ms=_ms(occurred),
            app_apple_id=ctx.apple_id,
            bundle_id=ctx.bundle_id,
            status=None,
        ),
        None,
        None,
    )
    ignored("app_store", apple_uuid, "TEST", occurred, received, apple_test)
    occurred, received = when(9.4)
    message_id = str(int(_hex(ctx.seed, "play-test")[:11], 16))
    play_test = play.developer_notification(package_name=ctx.package_name, event_ms=_ms(occurred), test=True)
    payload, body = _play_push(message_id, play_test, occurred)
    ignored("google_play", message_id, "TEST", occurred, received, payload, body)

    # A subscription made in the Stripe dashboard, outside this back office: its invoice.paid names a
    # subscription we never hear of. It failed once the retries ran out; a replay fails the same way.
    if web:
        customer = web[-1]
        sub_id = _stripe_id("sub", ctx.seed, "dashboard")
        event_id = _stripe_id("evt", ctx.seed, "dashboard-invoice")
        occurred, received = when(5.2)
        invoice_id = _stripe_id("in", ctx.seed, "dashboard")
        invoice = stripe.invoice(
            invoice_id=invoice_id,
            customer=ctx.stripe_customer(customer),
            sub_id=sub_id,
            total=2900,
            created=_ts(occurred),
            period_start=_ts(occurred),
            period_end=_ts(occurred + timedelta(days=30)),
            price_id=_stripe_id("price", ctx.seed, "dashboard"),
            product=_stripe_id("prod", ctx.seed, "dashboard"),
            line_id=_stripe_id("il", invoice_id),
            number=f"{_hex('number', sub_id)[:8].upper()}-0001",
            billing_reason="subscription_create",
            customer_email=customer.email,
        )
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
