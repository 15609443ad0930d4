"""CSV and XLSX exports of the Finance lists: streamed, filtered like the list, audited, Finance only;
the monthly close pack."""

import csv
import datetime
import io
from datetime import UTC

import pytest
from django.core.management import call_command
from django.http import StreamingHttpResponse
from djmoney.money import Money
from openpyxl import load_workbook

from monetization import clock
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


def _sheet(content: bytes) -> list[list]:
    book = load_workbook(io.BytesIO(content), read_only=True)
    return [list(row) for row in book.worksheets[0].iter_rows(values_only=True)]


def test_payments_xlsx_beside_the_csv_filtered_the_same_and_audited(payments, client, make_staff):
    client.force_login(make_staff("Finance"))
    listing = client.get("/admin/monetization/payment/", {"provider": "app_store"}).content.decode()
    assert 'href="export.xlsx?provider=app_store"' in listing
    response = client.get("/admin/monetization/payment/export.xlsx", {"provider": "app_store"})
    assert response.status_code == 200 and response["Content-Type"].startswith("application/vnd.openxmlformats")
    rows = _sheet(b"".join(response.streaming_content))
    header = rows[0]
    csv_rows_ = _read(client.get("/admin/monetization/payment/export.csv", {"provider": "app_store"}))
    assert len(rows) - 1 == len(csv_rows_) == 3
    refs = [dict(zip(header, row, strict=True))["provider_reference"] for row in rows[1:]]
    assert refs == [r["provider_reference"] for r in csv_rows_]
    first = dict(zip(header, rows[1], strict=True))
    assert (first["tax"], first["commission"]) == (1.67, 2.5)  # numbers in the sheet, not text
    assert AuditEvent.objects.filter(action="export.xlsx", object_type="monetization.payment").count() == 1


def test_close_pack_writes_the_month_as_csv_and_xlsx(payments, tmp_path, capsys):
    inside = Payment.objects.order_by("pk").first()
    Payment.objects.filter(pk=inside.pk).update(occurred_at=datetime.datetime(2026, 10, 31, 23, 59, tzinfo=UTC))
    Payment.objects.exclude(pk=inside.pk).update(occurred_at=datetime.datetime(2026, 11, 1, tzinfo=UTC))
    with clock.frozen(datetime.datetime(2026, 11, 1, 2, tzinfo=UTC)):
        call_command("write_close_pack", dir=str(tmp_path))
    folder = tmp_path / "2026-10"
    names = sorted(p.name for p in folder.iterdir())
    assert "payments-2026-10.csv" in names and "payments-2026-10.xlsx" in names
    assert {"journallines-2026-10.csv", "refunds-2026-10.xlsx", "subscriptions-2026-10.csv"} <= set(names)
    assert not [n for n in names if n.endswith(".part")]
    rows = list(csv.DictReader((folder / "payments-2026-10.csv").open()))
    assert [r["provider_reference"] for r in rows] == [inside.provider_reference]  # the month, UTC
    assert len(_sheet((folder / "payments-2026-10.xlsx").read_bytes())) == 2
    assert "payments-2026-10: 1 rows" in capsys.readouterr().out
    event = AuditEvent.objects.get(action="export.close_pack")
    assert event.after["month"] == "2026-10" and "payments-2026-10.xlsx" in event.after["files"]
