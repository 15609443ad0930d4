"""Recording payments the providers tell us about, and posting them to the ledger."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.db import IntegrityError, transaction
from djmoney.money import Money

from monetization import clock
from monetization.commission import commission_for, provider_remits_tax, store_tax
from monetization.errors import InvalidInput
from monetization.models import Customer, Payment
from monetization.services.finance_snapshots import finance_days_touch
from monetization.services.ledger import Posting, journal_post, payment_legs
from monetization.services.outbox import outbox_payment_succeeded
from monetization.services.revenue_recognition import deferral_create

# The revenue account a payment feeds when its caller names none.
DEFAULT_REVENUE_STREAM = "subscriptions"


def payment_post_to_ledger(
    payment: Payment, *, revenue_stream: str = DEFAULT_REVENUE_STREAM, service_months: int = 1
) -> None:
    """Post a succeeded payment's capture (exactly once, keyed by the payment).

    A payment for more than one month is captured into deferred revenue and recognized month by month
    (``revenue_recognition``); one for a month (or less) is revenue at once.
    """
    deferred = service_months > 1
    _entry, posted = journal_post(
        Posting(
            key=f"payment:{payment.pk}:capture",
            kind="payment",
            legs=payment_legs(
                provider=payment.provider,
                amount=payment.amount,
                fee=payment.fee,
                tax=payment.tax,
                stream=revenue_stream,
                deferred=deferred,
                commission=payment.commission,
                tax_remitted_by_provider=provider_remits_tax(payment.provider),
            ),
            memo=f"{payment.get_kind_display()} {payment.provider_reference}",
            customer=payment.customer,
            source_type="monetization.payment",
            source_id=str(payment.pk),
            posted_at=payment.occurred_at,
        )
    )
    if posted and deferred:
        deferral_create(payment=payment, stream=revenue_stream, service_months=service_months)


def payment_record(
    *,
    customer: Customer,
    provider: str,
    provider_reference: str,
    amount: Money,
    fee: Money | None = None,
    tax: Money | None = None,
    commission: Money | None = None,
    past_first_year: bool = False,
    kind: str = Payment.Kind.RENEWAL,
    succeeded: bool = True,
    failure_code: str = "",
    occurred_at: datetime | None = None,
    revenue_stream: str = DEFAULT_REVENUE_STREAM,
    service_months: int = 1,
    link: Callable[[Payment], None] | None = None,
    on_succeeded: Callable[[Payment], None] | None = None,
) -> tuple[Payment, bool]:
    """Record a payment once per (provider, reference); post it to the ledger when it succeeded.

    Idempotent: a repeated call returns the existing payment (created=False).
    A pending payment that later succeeds or fails is moved on, never duplicated.

    The core knows no product: the caller says which revenue account the payment feeds and how
    many months it pays for (``service_months``: more than one defers its revenue),
    and may pass ``link(payment)``, called once when the row is created, to record what
    the payment paid for (a row of its own pointing at the payment), and
    ``on_succeeded(payment)``, called once when the payment becomes succeeded, right after
    its capture is posted. Both run in this transaction: a callback that raises rolls the
    payment back with it, so a redelivered webhook retries all of it.

    Net revenue is booked as the provider keeps it: a store's tax (the price includes it, at
    the customer's country's rate, ``STORE_TAX_RATES``) and commission (at the rate in force
    when the payment happened, reduced ``past_first_year`` of the subscriber's paid service)
    are computed when the caller does not say them (``monetization.commission``).
    """
    currency = str(amount.currency)
    occurred_at = occurred_at or clock.now()
    fee = fee if fee is not None else Money(0, currency)
    if amount.amount <= 0:
        raise InvalidInput("A payment amount must be positive.")
    if tax is None:
        tax = store_tax(provider=provider, amount=amount, country=customer.country, at=occurred_at)
    if commission is None:
        commission = commission_for(
            provider=provider, amount=amount, tax=tax, at=occurred_at, past_first_year=past_first_year
        )
    if {str(fee.currency), str(tax.currency), str(commission.currency)} != {currency}:
        raise InvalidInput("Fee, tax and commission must be in the payment's currency.")
    if fee.amount < 0 or tax.amount < 0 or commission.amount < 0 or fee + tax + commission > amount:
        raise InvalidInput("Fee, tax and commission must be positive and within the amount.")
    # Atomic on its own (a savepoint inside a caller's transaction): a failing payment hook takes the payment,
    # its ledger entry and its event back with it, and the caller's transaction stays usable.
    with transaction.atomic():
        payment = (
            Payment.objects.select_for_update().filter(provider=provider, provider_reference=provider_reference).first()
        )
        created = False
        moved = False  # to succeeded, by this call
        if payment is None:
            fresh = Payment(
                customer=customer,
                provider=provider,
                provider_reference=provider_reference,
                kind=kind,
                amount=amount,
                fee=fee,
                tax=tax,
                commission=commission,
                refunded=Money(0, currency),
                occurred_at=occurred_at,
            )
            # Written in its final status at once (one statement, not an insert and then an update).
            if succeeded:
                fresh.succeed()
            elif failure_code:
                fresh.fail(code=failure_code)
            try:
                with transaction.atomic():
                    fresh.save(force_insert=True)
                payment, created, moved = fresh, True, succeeded
            except IntegrityError:
                payment = Payment.objects.select_for_update().get(
                    provider=provider, provider_reference=provider_reference
                )
        if created and link is not None:
            link(payment)
        if created:
            finance_days_touch(occurred_at)  # a payment recorded late changes days already snapshotted
        if payment.status == Payment.Status.PENDING:
            if succeeded:
                payment.succeed()
                payment.save(update_fields=["status"])
                moved = True
            elif failure_code:
                payment.fail(code=failure_code)
                payment.save(update_fields=["status", "failure_code"])
        if moved:
            payment_post_to_ledger(payment, revenue_stream=revenue_stream, service_months=service_months)
            outbox_payment_succeeded(payment)
            if on_succeeded is not None:
                on_succeeded(payment)
    return payment, created
