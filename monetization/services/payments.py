"""Recording payments the providers tell us about, and posting them to the ledger."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Q
from djmoney.money import Money

from monetization import clock
from monetization.bulk import bulk_insert_rows
from monetization.commission import commission_for, provider_remits_tax, store_tax
from monetization.errors import InvalidInput
from monetization.models import AuditEvent, Customer, Payment
from monetization.services.audit import audit_event_build, audit_events_write
from monetization.services.finance_snapshots import finance_days_touch
from monetization.services.ledger import Posting, journal_post, journal_post_many, payment_legs
from monetization.services.revenue_recognition import deferral_create

# The revenue account a payment feeds when its caller names none.
DEFAULT_REVENUE_STREAM = "subscriptions"


def _capture_posting(payment: Payment, *, revenue_stream: str, service_months: int) -> Posting:
    """The journal entry of a succeeded payment's capture, keyed by the payment (posted once).

    A payment for more than one month is captured into deferred revenue and recognized month by month
    (``revenue_recognition``); one for a month (or less) is revenue at once.
    """
    return Posting(
        key=f"payment:{payment.pk}:capture",
        kind="payment",
        legs=payment_legs(
            provider=payment.provider,
            amount=payment.amount,
            fee=payment.fee,
            tax=payment.tax,
            stream=revenue_stream,
            deferred=service_months > 1,
            commission=payment.commission,
            tax_remitted_by_provider=provider_remits_tax(payment.provider),
        ),
        memo=f"{payment.get_kind_display()} {payment.provider_reference}",
        customer=payment.customer,
        source_type="monetization.payment",
        source_id=str(payment.pk),
        posted_at=payment.occurred_at,
    )


def payments_succeeded_audit(payments: Sequence[Payment]) -> None:
    """Captured payments, one audit row each in one INSERT: the row is the PAYMENT_SUCCEEDED event (the
    outbox relay publishes it, its ``after`` as the event's data)."""
    events = []
    for payment in payments:
        event = audit_event_build(
            action="payment.succeed",
            obj=payment,
            actor_kind=AuditEvent.ActorKind.PROVIDER,
            actor_label=f"{payment.provider}:{payment.provider_reference}",
            after={
                "kind": payment.kind,
                "payment": {"amount": str(payment.amount.amount), "currency": str(payment.amount.currency)},
            },
        )
        event.customer_id = payment.customer_id  # the id alone: no look-up of the customer per payment
        events.append(event)
    audit_events_write(events)


def payment_post_to_ledger(
    payment: Payment, *, revenue_stream: str = DEFAULT_REVENUE_STREAM, service_months: int = 1
) -> None:
    """Post a succeeded payment's capture (exactly once, keyed by the payment)."""
    _entry, posted = journal_post(
        _capture_posting(payment, revenue_stream=revenue_stream, service_months=service_months)
    )
    if posted and service_months > 1:
        deferral_create(payment=payment, stream=revenue_stream, service_months=service_months)


@dataclass(frozen=True)
class PaymentToRecord:
    """One payment a provider told us about, as :func:`payments_record` takes it (see :func:`payment_record`)."""

    customer: Customer
    provider: str
    provider_reference: str
    amount: Money
    fee: Money | None = None
    tax: Money | None = None
    commission: Money | None = None
    past_first_year: bool = False
    kind: str = Payment.Kind.RENEWAL
    succeeded: bool = True
    failure_code: str = ""
    occurred_at: datetime | None = None
    revenue_stream: str = DEFAULT_REVENUE_STREAM
    service_months: int = 1

    @property
    def key(self) -> tuple[str, str]:
        return (self.provider, self.provider_reference)


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

    A batch of one of :func:`payments_record`.
    """
    record = PaymentToRecord(
        customer=customer,
        provider=provider,
        provider_reference=provider_reference,
        amount=amount,
        fee=fee,
        tax=tax,
        commission=commission,
        past_first_year=past_first_year,
        kind=kind,
        succeeded=succeeded,
        failure_code=failure_code,
        occurred_at=occurred_at,
        revenue_stream=revenue_stream,
        service_months=service_months,
    )
    return payments_record(
        [record],
        link=(lambda created: link(created[0][1])) if link is not None else None,
        on_succeeded=(lambda _index, payment: on_succeeded(payment)) if on_succeeded is not None else None,
    )[0]


def _payment_new(record: PaymentToRecord) -> Payment:
    """The row of a payment not recorded yet, in its final status, its tax and commission computed; validated."""
    amount, provider = record.amount, record.provider
    currency = str(amount.currency)
    occurred_at = record.occurred_at or clock.now()
    fee = record.fee if record.fee is not None else Money(0, currency)
    if amount.amount <= 0:
        raise InvalidInput("A payment amount must be positive.")
    tax = record.tax
    if tax is None:
        tax = store_tax(provider=provider, amount=amount, country=record.customer.country, at=occurred_at)
    commission = record.commission
    if commission is None:
        commission = commission_for(
            provider=provider, amount=amount, tax=tax, at=occurred_at, past_first_year=record.past_first_year
        )
    if {str(fee.currency), str(tax.currency), str(commission.currency)} != {currency}:
        raise InvalidInput("Fee, tax and commission must be in the payment's currency.")
    if fee.amount < 0 or tax.amount < 0 or commission.amount < 0 or fee + tax + commission > amount:
        raise InvalidInput("Fee, tax and commission must be positive and within the amount.")
    payment = Payment(
        customer=record.customer,
        provider=provider,
        provider_reference=record.provider_reference,
        kind=record.kind,
        amount=amount,
        fee=fee,
        tax=tax,
        commission=commission,
        refunded=Money(0, currency),
        occurred_at=occurred_at,
    )
    # Written in its final status at once (one statement, not an insert and then an update).
    if record.succeeded:
        payment.succeed()
    elif record.failure_code:
        payment.fail(code=record.failure_code)
    return payment


def _payments_locked(keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Payment]:
    """The recorded payments of these (provider, reference) keys, locked (one query)."""
    by_provider: dict[str, list[str]] = {}
    for provider, reference in keys:
        by_provider.setdefault(provider, []).append(reference)
    if not by_provider:
        return {}
    match = Q()
    for provider, references in by_provider.items():
        match |= Q(provider=provider, provider_reference__in=references)
    return {
        (p.provider, p.provider_reference): p
        for p in Payment.objects.select_for_update().filter(match).select_related("customer").order_by("pk")
    }


def payments_record(
    records: Sequence[PaymentToRecord],
    *,
    link: Callable[[list[tuple[int, Payment]]], None] | None = None,
    on_succeeded: Callable[[int, Payment], None] | None = None,
) -> list[tuple[Payment, bool]]:
    """Record many payments, each once per (provider, reference), in a few statements whatever their number.

    What :func:`payment_record` does for one, for a batch (a worker's batch of webhook events): one
    locking read of those already recorded, one insert of the new ones, one insert each of their
    ledger entries, ledger lines and outbox events. Returns (payment, created) per record, in order; a
    reference twice in the batch is created by its first record only. ``link(created)`` gets the
    (record index, payment) pairs of the payments created; ``on_succeeded(index, payment)`` runs for
    each payment that became succeeded, after the captures are posted.

    Atomic on its own (a savepoint inside a caller's transaction): anything that fails (an invalid
    record, a hook) takes every payment of the batch, its ledger entries and events back with it, and
    the caller's transaction stays usable (the webhook batch then applies its events one at a time).
    """
    if not records:
        return []
    # Validated and computed before any write: an invalid record fails the batch before it touches the database.
    fresh_rows = {}
    for index, record in enumerate(records):
        if record.key not in fresh_rows:
            fresh_rows[record.key] = (index, _payment_new(record))
    with transaction.atomic():
        existing = _payments_locked(fresh_rows)
        fresh = {key: row for key, row in fresh_rows.items() if key not in existing}
        if fresh:
            try:
                with transaction.atomic():
                    bulk_insert_rows([payment for _index, payment in fresh.values()])
            except IntegrityError:
                # Recorded meanwhile by a concurrent transaction (now committed): those are known ones.
                existing = _payments_locked(fresh_rows)
                fresh = {key: row for key, row in fresh.items() if key not in existing}
                bulk_insert_rows([payment for _index, payment in fresh.values()])
        results: list[tuple[Payment, bool]] = []
        moved: list[tuple[int, Payment]] = []  # to succeeded, by this call
        for index, record in enumerate(records):
            first_index, payment = fresh.get(record.key, (None, None))
            if payment is not None:
                created = first_index == index
                if created and record.succeeded:
                    moved.append((index, payment))
                results.append((payment, created))
                continue
            payment = existing[record.key]
            if payment.status == Payment.Status.PENDING:
                if record.succeeded:
                    payment.succeed()
                    payment.save(update_fields=["status"])
                    moved.append((index, payment))
                elif record.failure_code:
                    payment.fail(code=record.failure_code)
                    payment.save(update_fields=["status", "failure_code"])
            results.append((payment, False))
        created_pairs = [(index, payment) for index, (payment, created) in enumerate(results) if created]
        if created_pairs:
            if link is not None:
                link(created_pairs)
            # Payments recorded late change days already snapshotted.
            finance_days_touch(*(payment.occurred_at for _index, payment in created_pairs))
        if moved:
            journal_post_many(
                [
                    _capture_posting(
                        payment,
                        revenue_stream=records[index].revenue_stream,
                        service_months=records[index].service_months,
                    )
                    for index, payment in moved
                ]
            )
            for index, payment in moved:
                if records[index].service_months > 1:
                    deferral_create(
                        payment=payment,
                        stream=records[index].revenue_stream,
                        service_months=records[index].service_months,
                    )
            payments_succeeded_audit([payment for _index, payment in moved])
            if on_succeeded is not None:
                for index, payment in moved:
                    on_succeeded(index, payment)
    return results
