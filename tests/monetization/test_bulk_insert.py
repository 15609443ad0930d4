"""bulk_insert_rows writes what bulk_create would, in one statement whose rows are one JSON parameter."""

import datetime
import decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from djmoney.money import Money

from monetization.bulk import bulk_insert_rows
from monetization.models import AuditEvent, Customer, JournalEntry, Payment

pytestmark = pytest.mark.django_db

AT = datetime.datetime(2026, 12, 1, 15, 0, 1, 123456, tzinfo=datetime.UTC)
ELSEWHERE = datetime.datetime(2026, 12, 1, 16, 0, 1, 5, tzinfo=ZoneInfo("Europe/Paris"))


def _rows(model, objs, exclude=("id",)):
    columns = [f.column for f in model._meta.concrete_fields if f.column not in exclude]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(columns)} FROM {model._meta.db_table} WHERE id = ANY(%s) ORDER BY id",
            [[o.pk for o in objs]],
        )
        return cursor.fetchall()


def _audits(customer):
    return [
        AuditEvent(
            occurred_at=AT if i else ELSEWHERE,
            actor_kind="provider",
            actor_label="stripe:evt_é\"\\'x",
            action="payment.succeed",
            object_type="monetization.payment",
            object_id=str(i),
            customer=customer if i else None,
            before=None if i else {"a": [1, 2.5, None, 'x"y\\z☃'], "n": {"k": True}},
            after={"payment": {"amount": "9.99", "currency": "USD"}, "i": i, "u": "\x01\ttab"},
            reason="" if i else "why,{}",
        )
        for i in range(3)
    ]


def test_the_same_rows_as_bulk_create_in_one_statement_keys_in_order():
    customer = Customer.objects.create(external_id="bulk-insert", handle="bulk")
    expected = AuditEvent.objects.bulk_create(_audits(customer))
    written = _audits(customer)
    with CaptureQueriesContext(connection) as queries:
        assert bulk_insert_rows(written) is written
    assert len(queries) == 1
    assert _rows(AuditEvent, written) == _rows(AuditEvent, expected)
    assert [AuditEvent.objects.get(pk=e.pk).object_id for e in written] == ["0", "1", "2"]
    assert all(not e._state.adding for e in written)


def test_money_decimals_and_foreign_keys():
    customer = Customer.objects.create(external_id="bulk-insert-money", handle="money")

    def payments(tag):
        made = []
        for i in range(3):
            payment = Payment(
                customer=customer,
                provider="stripe",
                provider_reference=f"in_{tag}_{i}",
                kind="renewal",
                amount=Money(decimal.Decimal("9.99"), "EUR"),
                fee=Money(decimal.Decimal("0.59"), "EUR"),
                tax=Money(0, "EUR"),
                commission=Money(decimal.Decimal("1.2345"), "EUR"),
                refunded=Money(0, "EUR"),
                occurred_at=ELSEWHERE if i else AT,
                created_at=AT,
            )
            payment.succeed()
            made.append(payment)
        return made

    expected, written = Payment.objects.bulk_create(payments("a")), bulk_insert_rows(payments("b"))
    reference = [f.column for f in Payment._meta.concrete_fields].index("provider_reference") - 1
    assert [r[:reference] + r[reference + 1 :] for r in _rows(Payment, written)] == [
        r[:reference] + r[reference + 1 :] for r in _rows(Payment, expected)
    ]
    assert Payment.objects.get(pk=written[1].pk).amount == Money("9.99", "EUR")

    def entries(tag):
        return [
            JournalEntry(
                key=f"bulk:{tag}:{i}", kind="payment", memo="mé", customer=customer if i else None, posted_at=AT
            )
            for i in range(2)
        ]

    expected, written = JournalEntry.objects.bulk_create(entries("a")), bulk_insert_rows(entries("b"))
    assert [r[1:] for r in _rows(JournalEntry, written)] == [r[1:] for r in _rows(JournalEntry, expected)]


def test_nothing_to_write_is_no_statement():
    with CaptureQueriesContext(connection) as queries:
        assert bulk_insert_rows([]) == []
    assert not queries
