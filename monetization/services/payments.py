"""Recording payments the providers tell us about, and posting them to the ledger."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.db import IntegrityError, transaction
from djmoney.money import Money

from monetization import clock
from monetization.errors import InvalidInput
from monetization.models import Customer, Payment
from monetization.services.ledger import Posting, journal_post, payment_legs

# Which revenue account a payment feeds, by product kind.
REVENUE_STREAM_BY_PRODUCT_KIND = {
    "consumer": "subscriptions",
    "organization": "organizations",
    "creator": "creator_subscriptions",
}


# Other apps react to a payment as it succeeds (a creator's share of a fan payment, an
# organization's billing period): register_payment_hook(fn(payment)) from AppConfig.ready().
# Hooks run inside payment_record's transaction, right after the capture is posted, exactly
# when the payment becomes succeeded (never again on a repeated call); a hook that raises
# rolls the payment back with it, so a redelivered webhook retries both. Hooks must be
# idempotent themselves (journal keys, unique rows): a replay can reach them by other paths.
PaymentHook = Callable[[Payment], None]
_payment_hooks: dict[str, PaymentHook] = {}


def register_payment_hook(fn: PaymentHook, *, name: str | None = None) -> PaymentHook:
    """Call ``fn(payment)`` whenever a payment is recorded as succeeded. Re-registering a name replaces it."""
    _payment_hooks[name or f"{fn.__module__}.{fn.__qualname__}"] = fn
    return fn


def unregister_payment_hook(name: str) -> None:
    _payment_hooks.pop(name, None)


def _run_payment_hooks(payment: Payment) -> None:
    for hook in list(_payment_hooks.values()):
        hook(payment)


def _stream_for(payment: Payment) -> str:
    if payment.subscription_id is None:
        return "subscriptions"
    kind = payment.subscription.plan.product.kind
    return REVENUE_STREAM_BY_PRODUCT_KIND.get(kind, "subscriptions")


def payment_post_to_ledger(payment: Payment) -> None:
    """Post a succeeded payment's capture (exactly once, keyed by the payment)."""
    journal_post(
        Posting(
            key=f"payment:{payment.pk}:capture",
            kind="payment",
            legs=payment_legs(
                provider=payment.provider,
                amount=payment.amount,
                fee=payment.fee,
                tax=payment.tax,
                stream=_stream_for(payment),
            ),
            memo=f"{payment.get_kind_display()} {payment.provider_reference}",
            customer=payment.customer,
            source_type="monetization.payment",
            source_id=str(payment.pk),
            posted_at=payment.occurred_at,
        )
    )


def payment_record(
    *,
    customer: Customer,
    provider: str,
    provider_reference: str,
    amount: Money,
    fee: Money | None = None,
    tax: Money | None = None,
    kind: str = Payment.Kind.RENEWAL,
    subscription=None,
    succeeded: bool = True,
    failure_code: str = "",
    occurred_at: datetime | None = None,
) -> tuple[Payment, bool]:
    """Record a payment once per (provider, reference); post it to the ledger when it succeeded.

    Idempotent: a repeated call returns the existing payment (created=False).
    A pending payment that later succeeds or fails is moved on, never duplicated.
    """
    currency = str(amount.currency)
    fee = fee if fee is not None else Money(0, currency)
    tax = tax if tax is not None else Money(0, currency)
    if amount.amount <= 0:
        raise InvalidInput("A payment amount must be positive.")
    if {str(fee.currency), str(tax.currency)} != {currency}:
        raise InvalidInput("Fee and tax must be in the payment's currency.")
    with transaction.atomic():
        payment = (
            Payment.objects.select_for_update().filter(provider=provider, provider_reference=provider_reference).first()
        )
        created = False
        if payment is None:
            try:
                with transaction.atomic():
                    payment = Payment.objects.create(
                        customer=customer,
                        subscription=subscription,
                        provider=provider,
                        provider_reference=provider_reference,
                        kind=kind,
                        amount=amount,
                        fee=fee,
                        tax=tax,
                        refunded=Money(0, currency),
                        occurred_at=occurred_at or clock.now(),
                    )
                created = True
            except IntegrityError:
                payment = Payment.objects.select_for_update().get(
                    provider=provider, provider_reference=provider_reference
                )
        if payment.status == Payment.Status.PENDING:
            if succeeded:
                payment.succeed()
                payment.save(update_fields=["status"])
                payment_post_to_ledger(payment)
                _run_payment_hooks(payment)
            elif failure_code:
                payment.fail(code=failure_code)
                payment.save(update_fields=["status", "failure_code"])
    return payment, created
