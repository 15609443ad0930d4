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
from monetization.services.outbox import outbox_payment_succeeded

# The revenue account a payment feeds when its caller names none.
DEFAULT_REVENUE_STREAM = "subscriptions"


def payment_post_to_ledger(payment: Payment, *, revenue_stream: str = DEFAULT_REVENUE_STREAM) -> None:
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
                stream=revenue_stream,
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
    succeeded: bool = True,
    failure_code: str = "",
    occurred_at: datetime | None = None,
    revenue_stream: str = DEFAULT_REVENUE_STREAM,
    link: Callable[[Payment], None] | None = None,
    on_succeeded: Callable[[Payment], None] | None = None,
) -> tuple[Payment, bool]:
    """Record a payment once per (provider, reference); post it to the ledger when it succeeded.

    Idempotent: a repeated call returns the existing payment (created=False).
    A pending payment that later succeeds or fails is moved on, never duplicated.

    The core knows no product: the caller says which revenue account the payment feeds,
    and may pass ``link(payment)``, called once when the row is created, to record what
    the payment paid for (a row of its own pointing at the payment), and
    ``on_succeeded(payment)``, called once when the payment becomes succeeded, right after
    its capture is posted. Both run in this transaction: a callback that raises rolls the
    payment back with it, so a redelivered webhook retries all of it.
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
        if created and link is not None:
            link(payment)
        if payment.status == Payment.Status.PENDING:
            if succeeded:
                payment.succeed()
                payment.save(update_fields=["status"])
                payment_post_to_ledger(payment, revenue_stream=revenue_stream)
                outbox_payment_succeeded(payment)
                if on_succeeded is not None:
                    on_succeeded(payment)
            elif failure_code:
                payment.fail(code=failure_code)
                payment.save(update_fields=["status", "failure_code"])
    return payment, created
