"""Payments of subscriptions: recorded in the money core, linked here, and what follows from them.

The core records a payment and posts it (``payment_record``); this module tells it
which revenue account the subscription's product feeds, links the payment to the
subscription (:class:`~subscriptions.models.SubscriptionPayment`) in the same
transaction, and lets the apps above react as it succeeds (:data:`payment_hooks`).
A refund that should end access ends it through :func:`subscription_refund_access`,
a refund-succeeded hook of the core.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Min, Q
from django_fsm import can_proceed
from djmoney.money import Money

from monetization import clock
from monetization.bulk import bulk_insert_rows
from monetization.commission import commission_reduced_after_first_year
from monetization.models import Customer, Payment, Refund
from monetization.providers.base import InvoiceReport
from monetization.registry import Registry
from monetization.services.payments import PaymentToRecord, payments_record
from subscriptions.models import Plan, Subscription, SubscriptionPayment
from subscriptions.services.lifecycle import Cause, subscription_change_state

# A payment that was taken, even if refunded since, counts as paid service.
PAID_STATUSES = (Payment.Status.SUCCEEDED, Payment.Status.PARTIALLY_REFUNDED, Payment.Status.REFUNDED)

# Which revenue account a payment feeds, by product kind.
REVENUE_STREAM_BY_PRODUCT_KIND = {
    "consumer": "subscriptions",
    "organization": "organizations",
    "creator": "creator_subscriptions",
}

# Other apps react to a subscription's payment as it succeeds (a creator's share of a fan
# payment, an organization's billing period): payment_hooks.register(name, fn(payment,
# subscription)) from AppConfig.ready(). Hooks run inside the payment's transaction, right
# after the capture is posted, exactly when the payment becomes succeeded (never again on a
# repeated call); a hook that raises rolls the payment back with it, so a redelivered webhook
# retries both. Hooks must be idempotent themselves (journal keys, unique rows): a replay can
# reach them by other paths.
PaymentHook = Callable[[Payment, Subscription], None]
payment_hooks: Registry[PaymentHook] = Registry("subscription payment hook")

# Apps that keep invoices of their own (an organization's) follow the provider's invoice of a
# subscription as it stands (open with a failed charge, paid, void, uncollectible):
# invoice_hooks.register(name, fn(subscription, report, cause) -> note or None). They run in the
# event's transaction before its payment is recorded, so the payment finds its invoice by id.
# Idempotent: a redelivered event reaches them again.
InvoiceHook = Callable[[Subscription, InvoiceReport, Cause], "str | None"]
invoice_hooks: Registry[InvoiceHook] = Registry("subscription invoice hook")


def invoice_hooks_run(subscription: Subscription, report: InvoiceReport, cause: Cause) -> list[str]:
    return [note for hook in invoice_hooks if (note := hook(subscription, report, cause))]


def revenue_stream(subscription: Subscription) -> str:
    # Loads (and keeps on the instance) plan and product: the payment hooks read them for free.
    return REVENUE_STREAM_BY_PRODUCT_KIND.get(subscription.plan.product.kind, "subscriptions")


@dataclass(frozen=True)
class SubscriptionPaymentToRecord:
    """One payment of a subscription, as :func:`subscription_payments_record` takes it."""

    subscription: Subscription
    customer: Customer
    provider: str
    provider_reference: str
    amount: Money
    fee: Money | None = None
    tax: Money | None = None
    kind: str = Payment.Kind.RENEWAL
    succeeded: bool = True
    failure_code: str = ""
    occurred_at: datetime | None = None
    plan: Plan | None = None
    # When the subscriber's paid service began, when the provider signs it with the payment (App
    # Store): the store's reduced commission past the first year counts from it, whatever order
    # payments are booked in. None: counted from the subscription's payments booked so far.
    paid_service_since: datetime | None = None


def subscription_payment_record(
    *,
    subscription: Subscription,
    customer: Customer,
    provider: str,
    provider_reference: str,
    amount: Money,
    fee: Money | None = None,
    tax: Money | None = None,
    kind: str = Payment.Kind.RENEWAL,
    succeeded: bool = True,
    failure_code: str = "",
    occurred_at: datetime | None = None,
    plan: Plan | None = None,
    paid_service_since: datetime | None = None,
) -> tuple[Payment, bool]:
    """Record a payment of ``subscription`` once per (provider, reference), linked to it, hooks run.

    ``plan`` is the plan the payment bought when the provider says (else the subscription's): its
    months are the service period the revenue is recognized over.

    ``paid_service_since`` is when the subscriber's paid service began, when the provider signs it
    with the payment (App Store): the store's reduced commission past the first year counts from it.
    Without it, the year counts from the subscription's first payment booked so far, which is only
    right when payments are booked in the order they were taken.

    Idempotent like ``payment_record``: a repeated call returns the existing payment
    (created=False), links nothing twice and runs no hook again. A batch of one of
    :func:`subscription_payments_record`.
    """
    return subscription_payments_record(
        [
            SubscriptionPaymentToRecord(
                subscription=subscription,
                customer=customer,
                provider=provider,
                provider_reference=provider_reference,
                amount=amount,
                fee=fee,
                tax=tax,
                kind=kind,
                succeeded=succeeded,
                failure_code=failure_code,
                occurred_at=occurred_at,
                plan=plan,
                paid_service_since=paid_service_since,
            )
        ]
    )[0]


def _first_paid(records: Sequence[SubscriptionPaymentToRecord]) -> dict[tuple[int, str], datetime]:
    """When each subscription's first successful payment (of its provider) happened, for the records whose
    provider's commission drops after a subscriber's first year (one indexed read for them all)."""
    asked = {
        (r.subscription.pk, r.provider)
        for r in records
        if r.paid_service_since is None
        and commission_reduced_after_first_year(r.provider, r.occurred_at or clock.now())
    }
    if not asked:
        return {}
    match = Q()
    for subscription_id, provider in asked:
        match |= Q(subscription_id=subscription_id, payment__provider=provider)
    return {
        (row["subscription_id"], row["payment__provider"]): row["first"]
        for row in SubscriptionPayment.objects.filter(match, payment__status__in=PAID_STATUSES)
        .values("subscription_id", "payment__provider")
        .annotate(first=Min("payment__occurred_at"))
    }


def subscription_payments_record(records: Sequence[SubscriptionPaymentToRecord]) -> list[tuple[Payment, bool]]:
    """Record many subscriptions' payments (``payments_record``): each linked to its subscription, hooks run.

    Returns (payment, created) per record, in order. A few statements for the batch, whatever its size.
    """
    # The stores reduce their commission once a subscriber has a year of paid service: counted from
    # when the provider says paid service began, else from the subscription's first successful
    # payment booked (earlier ones of this batch included).
    first_paid = _first_paid(records)
    to_record = []
    for record in records:
        at = record.occurred_at or clock.now()
        key = (record.subscription.pk, record.provider)
        first = first_paid.get(key)
        since = record.paid_service_since or first
        past_first_year = since is not None and since <= at - timedelta(days=365)
        if (
            record.paid_service_since is None
            and record.succeeded
            and (first is None or at < first)
            and commission_reduced_after_first_year(record.provider, at)
        ):
            first_paid[key] = at
        to_record.append(
            PaymentToRecord(
                customer=record.customer,
                provider=record.provider,
                provider_reference=record.provider_reference,
                amount=record.amount,
                fee=record.fee,
                tax=record.tax,
                past_first_year=past_first_year,
                kind=record.kind,
                succeeded=record.succeeded,
                failure_code=record.failure_code,
                occurred_at=record.occurred_at,
                revenue_stream=revenue_stream(record.subscription),
                service_months=plan_months(record.plan or record.subscription.plan),
            )
        )

    def link(created: list[tuple[int, Payment]]) -> None:
        bulk_insert_rows(
            [
                SubscriptionPayment(payment=payment, subscription=records[index].subscription)
                for index, payment in created
            ]
        )

    def succeeded_now(index: int, payment: Payment) -> None:
        for hook in payment_hooks:
            hook(payment, records[index].subscription)

    return payments_record(to_record, link=link, on_succeeded=succeeded_now)


def plan_months(plan: Plan) -> int:
    """How many months one payment of ``plan`` pays for (its revenue is recognized over them)."""
    return plan.interval_count * (12 if plan.interval == plan.Interval.YEAR else 1)


def payment_subscription(payment_id: int) -> Subscription | None:
    """The subscription a payment paid for, if any (one indexed lookup)."""
    link = SubscriptionPayment.objects.select_related("subscription").filter(payment_id=payment_id).first()
    return link.subscription if link is not None else None


def refund_access_change(payment_id: int, revoke_access: str) -> tuple[Subscription | None, str]:
    """What a refund of this payment does to the access it paid for: the subscription and the transition
    ("revoke": ends now, "cancel": ends at the period end, "": nothing). The refund hook takes this
    decision and the refund preview shows it."""
    if revoke_access == Refund.RevokeAccess.NONE:
        return None, ""
    sub = payment_subscription(payment_id)
    if sub is None:
        return None, ""
    if revoke_access == Refund.RevokeAccess.NOW and can_proceed(sub.revoke):
        return sub, "revoke"
    if revoke_access == Refund.RevokeAccess.AT_PERIOD_END and can_proceed(sub.cancel):
        return sub, "cancel"
    return sub, ""


def subscription_refund_access(refund: Refund, actor) -> None:
    """Refund-succeeded hook: a refund asked to end access (now, or at the period end) ends it.

    Runs in the transaction that books the refund, so the booking and the access change
    commit together. A change the subscription's state no longer allows is skipped.
    """
    sub, transition = refund_access_change(refund.payment_id, refund.revoke_access)
    if not transition:
        return
    cause = (
        Cause.staff_consequence(actor, f"refund #{refund.pk}", authorized_by="monetization.request_refund")
        if actor is not None
        else Cause.task("refund", reason=f"refund #{refund.pk}")
    )
    if transition == "revoke":
        subscription_change_state(subscription=sub, transition="revoke", cause=cause, action="subscription.revoke")
    else:
        subscription_change_state(
            subscription=sub, transition="cancel", cause=cause, transition_kwargs={"reason": "refunded"}
        )
