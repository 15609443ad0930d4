"""Reconciliation: providers' reports in their own layouts, with planted mismatches, find exactly those."""

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from djmoney.money import Money

from monetization import clock
from monetization.errors import Conflict, InvalidInput, PermissionDenied
from monetization.models import AuditEvent, ProviderReport, ReconciliationMismatch
from monetization.services.payments import payment_record
from monetization.services.permissions import System
from monetization.services.reconciliation import mismatch_resolve, provider_report_import
from monetization.services.refunds import refund_record_from_provider
from subscriptions.services.lifecycle import Cause
from tests.monetization.factories import CustomerFactory
from tests.monetization.support_fixtures import make_staff  # noqa: F401 (fixture)

FIXTURES = Path(__file__).parent / "fixtures"
MARCH_10 = datetime(2026, 3, 10, 12, tzinfo=UTC)
SYSTEM = System("test")


def _pay(provider, reference, amount, currency, *, fee="0", country="US", at=MARCH_10):
    payment, _ = payment_record(
        customer=CustomerFactory(country=country),
        provider=provider,
        provider_reference=reference,
        amount=Money(amount, currency),
        fee=Money(fee, currency),
        occurred_at=at,
        **({"tax": Money(0, currency)} if provider == "stripe" else {}),
    )
    return payment


def _found(report) -> set[tuple[str, str]]:
    return set(ReconciliationMismatch.objects.filter(report=report).values_list("reference", "kind"))


@pytest.fixture
def stripe_books(db):
    _pay("stripe", "in_rec_1", "8.00", "USD", fee="0.53")
    refunded = _pay("stripe", "in_rec_2", "20.00", "EUR", fee="0.55")
    _pay("stripe", "in_rec_3", "8.00", "USD", fee="0.56")
    _pay("stripe", "in_rec_4", "8.00", "USD", fee="0.53")  # Stripe's report does not list it
    _pay("stripe", "in_rec_5", "8.00", "USD", fee="0.53", at=datetime(2026, 3, 11, 9, tzinfo=UTC))  # another day
    refund_record_from_provider(
        payment=refunded,
        amount=Money("5.00", "EUR"),
        provider_refund_id="re_rec_1",
        cause=Cause.provider_event("stripe", "evt_r1"),
    )


def test_stripe_balance_report_finds_exactly_the_planted_mismatches(stripe_books):
    report, created = provider_report_import(
        actor=SYSTEM,
        kind="stripe_balance",
        name="itemized.csv",
        content=(FIXTURES / "stripe_itemized_balance.csv").read_bytes(),
    )
    assert created
    assert _found(report) == {
        ("in_rec_2", "fee"),  # 0.65 at Stripe, 0.55 booked
        ("in_rec_3", "amount"),  # 9.00 at Stripe, 8.00 booked
        ("in_rec_9", "missing_here"),  # a charge we never recorded
        ("re_rec_2", "missing_here"),  # and its refund
        ("in_rec_4", "missing_there"),  # ours, that day, not in the report
    }
    fee = ReconciliationMismatch.objects.get(report=report, reference="in_rec_2")
    assert (str(fee.ours), str(fee.theirs), fee.currency) == ("0.5500", "0.6500", "EUR")
    assert (report.lines, report.matched, report.mismatches) == (6, 2, 5)


@pytest.fixture
def play_books(db):
    for n in (1, 2, 3, 5):
        payment = _pay("google_play", f"GPA.3301-000{n}", "9.99", "EUR", country="DE")
        assert (payment.tax, payment.commission) == (Money("1.60", "EUR"), Money("1.26", "EUR"))
        if n == 3:
            refund_record_from_provider(
                payment=payment,
                amount=Money("9.99", "EUR"),
                provider_refund_id="GPA.3301-0003:refund",
                cause=Cause.provider_event("google_play", "msg-3"),
            )


def test_play_earnings_report_finds_exactly_the_planted_mismatches(play_books):
    report, _ = provider_report_import(
        actor=SYSTEM,
        kind="play_earnings",
        name="earnings_202603.csv",
        content=(FIXTURES / "play_earnings.csv").read_bytes(),
    )
    assert _found(report) == {
        ("GPA.3301-0002", "commission"),  # Google took 30%, our rule says 15%
        ("GPA.3301-0004", "missing_here"),
        ("GPA.3301-0005", "tax"),
    }


def test_a_report_is_imported_once_and_a_bad_one_changes_nothing(stripe_books, capsys):
    path = FIXTURES / "stripe_itemized_balance.csv"
    call_command("import_provider_report", "stripe_balance", str(path))
    call_command("import_provider_report", "stripe_balance", str(path))
    out = capsys.readouterr().out
    assert "imported: 6 lines, 2 matched, 5 mismatches" in out and "already imported" in out
    assert ProviderReport.objects.count() == 1 and ReconciliationMismatch.objects.count() == 5
    with pytest.raises(InvalidInput):
        provider_report_import(actor=SYSTEM, kind="stripe_balance", name="x.csv", content=b"id,amount\n1,2\n")
    with pytest.raises(InvalidInput):
        provider_report_import(actor=SYSTEM, kind="app_store_guess", name="x.csv", content=path.read_bytes())
    assert ProviderReport.objects.count() == 1


def test_finance_resolves_a_mismatch_with_a_resolution_on_the_record(stripe_books, make_staff):
    report, _ = provider_report_import(
        actor=SYSTEM,
        kind="stripe_balance",
        name="itemized.csv",
        content=(FIXTURES / "stripe_itemized_balance.csv").read_bytes(),
    )
    mismatch = ReconciliationMismatch.objects.get(report=report, reference="in_rec_2")
    finance, support = make_staff("Finance"), make_staff("Support")
    with pytest.raises(PermissionDenied):
        mismatch_resolve(actor=support, mismatch_id=mismatch.pk, resolution="looks fine")
    with pytest.raises(PermissionDenied):
        provider_report_import(actor=support, kind="stripe_balance", name="again.csv", content=b"x")
    with pytest.raises(InvalidInput):
        mismatch_resolve(actor=finance, mismatch_id=mismatch.pk, resolution="  ")
    resolved = mismatch_resolve(
        actor=finance, mismatch_id=mismatch.pk, resolution="Stripe's international card fee; fee booked from the event"
    )
    assert resolved.status == "resolved" and resolved.resolved_by == finance
    event = AuditEvent.objects.get(action="reconciliation.resolve")
    assert event.actor_id == finance.pk and event.before["status"] == "open" and event.after["status"] == "resolved"
    with pytest.raises(Conflict):
        mismatch_resolve(actor=finance, mismatch_id=mismatch.pk, resolution="again")


def test_finance_imports_and_resolves_in_the_admin(stripe_books, client, make_staff):
    client.force_login(make_staff("Finance"))
    assert "Import a report" in client.get("/admin/monetization/providerreport/").content.decode()
    with open(FIXTURES / "stripe_itemized_balance.csv", "rb") as f:
        response = client.post("/admin/monetization/providerreport/upload/", {"kind": "stripe_balance", "file": f})
    assert response.status_code == 302 and "reconciliationmismatch" in response["Location"]
    queue = client.get(response["Location"]).content.decode()
    assert "in_rec_9" in queue and "in_rec_4" in queue
    mismatch = ReconciliationMismatch.objects.get(reference="in_rec_3")
    page = client.get(f"/admin/monetization/reconciliationmismatch/{mismatch.pk}/change/").content.decode()
    assert 'id="resolve-form"' in page
    client.post(
        f"/admin/monetization/reconciliationmismatch/{mismatch.pk}/resolve/",
        {"resolution": "Price change on Stripe; customer charged the new price"},
    )
    mismatch.refresh_from_db()
    assert mismatch.status == "resolved"
    rows = client.get("/admin/monetization/reconciliationmismatch/export.csv", {"status__exact": "open"})
    assert b"in_rec_3" not in b"".join(rows.streaming_content)


def test_support_sees_no_reconciliation(stripe_books, client, make_staff):
    client.force_login(make_staff("Support"))
    assert client.get("/admin/monetization/providerreport/upload/").status_code == 403
    assert client.get("/admin/monetization/reconciliationmismatch/").status_code == 403


@pytest.fixture
def app_store_books(db):
    """GB storefront, GBP: 9.99 nets 8.32 of 20% VAT, the store keeps 2.50, we get 5.82."""
    n = iter(range(100, 200))
    for _ in range(3):
        first = _pay("app_store", f"20000000000{next(n)}", "9.99", "GBP", country="GB")
    assert (first.tax, first.commission) == (Money("1.67", "GBP"), Money("2.50", "GBP"))
    for _ in range(2):
        _pay("app_store", f"20000000000{next(n)}", "4.99", "GBP", country="GB")  # Apple says 3 sold
    march_11 = datetime(2026, 3, 11, 9, tzinfo=UTC)
    _pay("app_store", f"20000000000{next(n)}", "9.99", "GBP", country="GB", at=march_11)  # Apple paid 6.99
    _pay("app_store", f"20000000000{next(n)}", "19.99", "GBP", country="GB", at=march_11)  # not in Apple's report
    with clock.frozen(march_11):
        refund_record_from_provider(
            payment=first,
            amount=Money("9.99", "GBP"),
            provider_refund_id=f"{first.provider_reference}:refund",
            cause=Cause.provider_event("app_store", "notif-refund"),
        )


def test_app_store_sales_report_finds_exactly_the_planted_mismatches(app_store_books):
    report, created = provider_report_import(
        actor=SYSTEM,
        kind="app_store_sales",
        name="S_D_80000000_20260310.txt",
        content=(FIXTURES / "app_store_sales_summary.tsv").read_bytes(),
    )
    assert created
    assert _found(report) == {
        ("2026-03-10 GB GBP 4.99", "amount"),  # 3 sold at Apple, 2 booked
        ("2026-03-10 GB GBP 4.99", "proceeds"),
        ("2026-03-10 GB GBP 49.99", "missing_here"),  # a yearly sale we never recorded
        ("2026-03-11 GB GBP 9.99", "proceeds"),  # Apple paid 6.99, we booked 5.82
        ("2026-03-11 GB GBP 19.99", "missing_there"),  # ours, that day, not in the report
    }
    amount = ReconciliationMismatch.objects.get(report=report, reference="2026-03-10 GB GBP 4.99", kind="amount")
    assert (amount.ours, amount.theirs, amount.currency) == (Decimal("9.98"), Decimal("14.97"), "GBP")
    # The sales of 03-10 at 9.99 (two rows at Apple) and the refund of 03-11 match.
    assert (report.lines, report.matched, report.mismatches) == (5, 2, 5)


def test_app_store_financial_report_matches_the_fiscal_month_by_storefront_and_price(app_store_books):
    report, _ = provider_report_import(
        actor=SYSTEM,
        kind="app_store_financial",
        name="80000000_0326_GB.txt",
        content=(FIXTURES / "app_store_financial.tsv").read_bytes(),
    )
    assert _found(report) == {
        ("2026-03-01..2026-03-31 GB GBP 2.99", "missing_here"),
        ("2026-03-01..2026-03-31 GB GBP 4.99", "missing_there"),
        ("2026-03-01..2026-03-31 GB GBP 19.99", "missing_there"),
    }
    with pytest.raises(InvalidInput, match="not an App Store sales report"):
        provider_report_import(
            actor=SYSTEM,
            kind="app_store_sales",
            name="x.txt",
            content=(FIXTURES / "app_store_financial.tsv").read_bytes() + b"\n",  # not the file imported above
        )
