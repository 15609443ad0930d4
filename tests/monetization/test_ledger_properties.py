"""The books balance whatever payments arrive: hypothesis over currencies, fees, tax and retries."""

import os
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from djmoney.money import Money
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monetization.commission import commission_rule, provider_remits_tax
from monetization.models import JournalEntry, JournalLine
from monetization.services.ledger import Account, ledger_report, minor_unit_exponent, quantize
from monetization.services.payments import payment_record
from tests.monetization.factories import CustomerFactory
from tests.processes import database_url

CURRENCIES = ["JPY", "USD", "BHD"]  # 0, 2 and 3 decimals
PROVIDERS = ["stripe", "app_store", "google_play"]
ROOT = Path(__file__).resolve().parents[2]


def minor(currency: str, units: int) -> Decimal:
    return Decimal(units).scaleb(-minor_unit_exponent(currency))


@st.composite
def payment(draw):
    units = draw(st.integers(min_value=1, max_value=10**9))  # amount in minor units
    return (
        draw(st.sampled_from(CURRENCIES)),
        draw(st.sampled_from(PROVIDERS)),
        units,
        draw(
            st.integers(min_value=0, max_value=units // 4)
        ),  # fee, minor units (with tax and commission, within the amount)
        draw(st.integers(min_value=0, max_value=units // 3)),  # tax, minor units
        draw(st.integers(min_value=0, max_value=30)),  # provider reference (collisions = redeliveries)
        draw(st.booleans()),  # succeeded
    )


@pytest.mark.django_db
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payments=st.lists(payment(), min_size=1, max_size=25))
def test_ledger_balances_per_currency_for_any_payment_sequence(payments):
    # The ledger is append-only, so examples add to the same books: compare deltas.
    customer = CustomerFactory()
    before = {(r["account"], r["currency"]): r["total"] for r in _balances()}
    expected = defaultdict(Decimal)
    seen: set[tuple[str, str]] = set()
    for currency, provider, units, fee_units, tax_units, ref, succeeded in payments:
        amount = minor(currency, units)
        fee = minor(currency, fee_units)
        tax = minor(currency, tax_units)
        reference = f"{customer.external_id}-{currency}-{ref}"
        payment_row, created = payment_record(
            customer=customer,
            provider=provider,
            provider_reference=reference,
            amount=Money(amount, currency),
            fee=Money(fee, currency),
            tax=Money(tax, currency),
            succeeded=succeeded,
            failure_code="" if succeeded else "card_declined",
        )
        key = (provider, reference)
        if key in seen:
            assert not created  # a redelivery never posts twice
            continue
        seen.add(key)
        if succeeded:
            # The stores keep their commission on the price net of tax, and the tax they remit themselves.
            rate = commission_rule(provider, payment_row.occurred_at).rate_for(past_first_year=False)
            commission = quantize((amount - tax) * rate, currency)
            assert payment_row.commission.amount == commission
            remitted = provider_remits_tax(provider)
            expected[(Account.cash(provider), currency)] += amount - fee - commission - (tax if remitted else 0)
            expected[(Account.PROVIDER_FEES, currency)] += fee
            expected[(Account.STORE_COMMISSION, currency)] += commission
            expected[(Account.revenue(), currency)] -= amount - tax
            if not remitted:
                expected[(Account.TAX_PAYABLE, currency)] -= tax
    report = ledger_report()
    assert report.balanced, report
    assert all(total == 0 for total in report.trial_balance.values())
    after = {(r["account"], r["currency"]): r["total"] for r in _balances()}
    for key, value in expected.items():
        assert after.get(key, 0) - before.get(key, 0) == value, key
    for line_amount, currency in JournalLine.objects.values_list("amount", "currency"):
        assert line_amount == line_amount.quantize(Decimal(1).scaleb(-minor_unit_exponent(currency)))


def _balances():
    from django.db.models import Sum

    return JournalLine.objects.values("account", "currency").annotate(total=Sum("amount")).order_by()


def _insert_unbalanced_entry() -> int:
    """Go behind the balance trigger's back, as a bad migration or a manual fix might."""
    entry = JournalEntry.objects.create(key="manual-fix-gone-wrong", kind="adjustment")
    with connection.cursor() as cursor:
        # Replica mode skips ordinary triggers, the balance check included (superuser only).
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(
            "INSERT INTO monetization_journalline (entry_id, account, amount, currency) VALUES (%s, %s, %s, %s)",
            [entry.pk, Account.cash("stripe"), Decimal("10.00"), "USD"],
        )
        cursor.execute("SET session_replication_role = DEFAULT")
    return entry.pk


@pytest.mark.django_db
def test_ledger_check_passes_on_balanced_books(capsys):
    customer = CustomerFactory()
    payment_record(
        customer=customer,
        provider="stripe",
        provider_reference="in_1",
        amount=Money("8.00", "USD"),
        fee=Money("0.53", "USD"),
        tax=Money("0.64", "USD"),
    )
    payment_record(customer=customer, provider="app_store", provider_reference="tx_1", amount=Money(1200, "JPY"))
    call_command("ledger_check")
    out = capsys.readouterr().out
    # Zero fee/tax legs are not written; the App Store payment books its commission (the store keeps the tax).
    assert "journal entries: 2" in out and "journal lines:   7" in out
    assert "JPY:" in out and "USD:" in out and "The ledger balances." in out


@pytest.mark.django_db
def test_ledger_check_fails_on_an_unbalanced_entry(capsys):
    entry_id = _insert_unbalanced_entry()
    with pytest.raises(CommandError) as exc:
        call_command("ledger_check")
    assert exc.value.returncode == 1
    out = capsys.readouterr().out
    assert f"entry {entry_id}: USD off by 10.0000" in out and "UNBALANCED" in out


@pytest.mark.django_db(transaction=True)
def test_ledger_check_exit_code_is_one_from_the_shell():
    _insert_unbalanced_entry()
    env = {**os.environ, "DATABASE_URL": database_url(), "DEBUG": "1"}
    done = subprocess.run(
        [sys.executable, "manage.py", "ledger_check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "does NOT balance" in done.stderr
