"""CSV exports of the Finance lists: streamed, filtered like the list, audited, Finance only."""

import csv
import io

import pytest
from django.http import StreamingHttpResponse
from djmoney.money import Money

from monetization.exports import csv_rows
from monetization.models import AuditEvent, JournalLine, Payment
from monetization.services.payments import payment_record
from tests.monetization.factories import CustomerFactory
from tests.monetization.support_fixtures import make_staff  # noqa: F401 (fixture)
from tests.subscriptions.factories import SubscriptionFactory


@pytest.fixture
def payments(db):
    customer = CustomerFactory(country="GB")
    for i in range(7):
        payment_record(
            customer=customer,
            provider="app_store" if i % 2 else "stripe",
            provider_reference=f"export-{i}",
            amount=Money("9.99", "GBP"),
        )
    return customer


def _read(response) -> list[dict]:
    assert isinstance(response, StreamingHttpResponse)
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_rows_come_in_key_order_across_chunks(payments):
    rows = list(csv_rows(Payment.objects.all(), ["provider_reference", "commission"], chunk=3))
    assert rows[0] == ["provider_reference", "commission"]
    assert [r[0] for r in rows[1:]] == [f"export-{i}" for i in range(7)]


def test_payments_export_is_filtered_like_the_list_and_audited(payments, client, make_staff):
    finance = make_staff("Finance")
    client.force_login(finance)
    listing = client.get("/admin/monetization/payment/", {"provider": "app_store"})
    assert 'href="export.csv?provider=app_store"' in listing.content.decode()
    rows = _read(client.get("/admin/monetization/payment/export.csv", {"provider": "app_store"}))
    assert [r["provider_reference"] for r in rows] == ["export-1", "export-3", "export-5"]
    # Net revenue columns: GB VAT inside the price, Apple's 30% of the rest.
    assert {(r["tax"], r["commission"]) for r in rows} == {("1.6700", "2.5000")}
    event = AuditEvent.objects.get(action="export.csv")
    assert event.actor_id == finance.pk and event.object_type == "monetization.payment"
    assert event.after["filters"] == {"provider": "app_store"}


def test_journal_lines_export(payments, client, make_staff):
    client.force_login(make_staff("Finance"))
    rows = _read(client.get("/admin/monetization/journalline/export.csv"))
    assert len(rows) == JournalLine.objects.count()
    assert {r["account"] for r in rows} >= {"expense:store_commission", "revenue:subscriptions"}


def test_support_cannot_export(payments, client, make_staff):
    client.force_login(make_staff("Support"))
    assert client.get("/admin/monetization/payment/export.csv").status_code == 403
    assert "export.csv" not in client.get("/admin/monetization/payment/").content.decode()
    assert not AuditEvent.objects.filter(action="export.csv").exists()


def test_subscriptions_export(db, client, make_staff):
    subscription = SubscriptionFactory()
    client.force_login(make_staff("Finance"))
    rows = _read(client.get("/admin/subscriptions/subscription/export.csv", {"state": "active"}))
    assert [int(r["id"]) for r in rows] == [subscription.pk]
    assert rows[0]["plan__code"] == subscription.plan.code
