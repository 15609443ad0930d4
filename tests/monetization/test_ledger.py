from decimal import Decimal

import pytest
from django.db import DatabaseError, IntegrityError, transaction
from djmoney.money import Money

from monetization.models import AuditEvent, JournalEntry, JournalLine
from monetization.services.audit import audit_record
from monetization.services.ledger import (
    LedgerUnbalanced,
    Leg,
    Posting,
    journal_post,
    journal_post_many,
    ledger_report,
    payment_legs,
)

pytestmark = pytest.mark.django_db


def _payment_posting(key: str, amount="8.00", fee="0.53", tax="1.20", currency="USD") -> Posting:
    return Posting(
        key=key,
        kind="payment",
        legs=payment_legs(
            provider="stripe", amount=Money(amount, currency), fee=Money(fee, currency), tax=Money(tax, currency)
        ),
    )


def test_payment_posting_balances_and_is_exactly_once():
    entry, created = journal_post(_payment_posting("payment:1"))
    again, created_again = journal_post(_payment_posting("payment:1"))
    assert created and not created_again and again.pk == entry.pk
    assert JournalLine.objects.filter(entry=entry).count() == 4
    report = ledger_report()
    assert report.balanced and report.entries == 1
    assert report.trial_balance == {"USD": Decimal("0")}


def test_unbalanced_posting_is_refused_before_writing():
    with pytest.raises(LedgerUnbalanced):
        journal_post(Posting(key="bad", kind="x", legs=[Leg("cash:stripe", Money("1", "USD"))]))
    assert not JournalEntry.objects.exists()


def test_amount_finer_than_minor_unit_is_refused():
    with pytest.raises(LedgerUnbalanced):
        journal_post(
            Posting(
                key="jpy",
                kind="x",
                legs=[Leg("cash:stripe", Money("1.5", "JPY")), Leg("revenue:subscriptions", Money("-1.5", "JPY"))],
            )
        )


def test_database_refuses_unbalanced_lines_written_behind_the_service():
    entry = JournalEntry.objects.create(key="raw", kind="raw")
    with pytest.raises(IntegrityError), transaction.atomic():
        JournalLine.objects.create(entry=entry, account="cash:stripe", amount=Decimal("1"), currency="USD")


def test_ledger_rows_cannot_be_updated_or_deleted():
    entry, _ = journal_post(_payment_posting("payment:2"))
    with pytest.raises(DatabaseError), transaction.atomic():
        JournalLine.objects.filter(entry=entry).update(amount=0)
    with pytest.raises(DatabaseError), transaction.atomic():
        JournalEntry.objects.filter(pk=entry.pk).delete()
    assert JournalLine.objects.filter(entry=entry).count() == 4


def test_audit_events_cannot_be_updated_or_deleted():
    event = audit_record(action="test.action", object_type="x.y", object_id=1, reason="why")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(reason="rewritten")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    event.refresh_from_db()
    assert event.reason == "why"


def test_post_many_skips_keys_already_posted():
    journal_post(_payment_posting("p:1"))
    with transaction.atomic():
        posted = journal_post_many([_payment_posting(f"p:{i}", currency="EUR") for i in range(1, 6)])
    assert posted == 4
    assert JournalEntry.objects.count() == 5
    assert ledger_report().balanced


def test_post_many_batches_never_split_an_entry():
    """Entries of 3 and 4 lines with a 5-line batch: the balance trigger sees whole entries per INSERT."""
    postings = [_payment_posting(f"b:{i}", tax="0" if i % 2 else "1.20") for i in range(7)]
    with transaction.atomic():
        posted = journal_post_many(postings, batch_size=5)
    assert posted == 7
    assert JournalLine.objects.count() == 4 * 4 + 3 * 3
    assert ledger_report().balanced
