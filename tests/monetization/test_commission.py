"""Net revenue in the ledger: store commission at the rate in force, store-remitted tax, refunds giving both back."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from djmoney.money import Money

from monetization.commission import commission_rule, store_tax
from monetization.models import JournalLine
from monetization.services.ledger import Account, ledger_report
from monetization.services.payments import payment_record
from monetization.services.refunds import refund_record_from_provider
from subscriptions.services.lifecycle import Cause
from subscriptions.services.payments import subscription_payment_record
from tests.monetization.factories import CustomerFactory
from tests.subscriptions.factories import SubscriptionFactory

JAN_2026 = datetime(2026, 1, 15, tzinfo=UTC)


def _legs(payment) -> dict[str, Decimal]:
    lines = JournalLine.objects.filter(entry__source_type="monetization.payment", entry__source_id=str(payment.pk))
    return {line.account: line.amount for line in lines}


def test_rules_in_force_by_date():
    assert commission_rule("app_store", JAN_2026).rate_for(past_first_year=False) == Decimal("0.30")
    assert commission_rule("app_store", JAN_2026).rate_for(past_first_year=True) == Decimal("0.15")
    # Before 2016-06-13 Apple kept 30% whatever the subscriber's tenure.
    assert commission_rule("app_store", datetime(2015, 1, 1, tzinfo=UTC)).rate_for(past_first_year=True) == Decimal(
        "0.30"
    )
    # Google Play: 30% then 15% after the first year, until 15% on every subscription from 2022.
    assert commission_rule("google_play", datetime(2021, 6, 1, tzinfo=UTC)).rate_for(past_first_year=False) == Decimal(
        "0.30"
    )
    assert commission_rule("google_play", JAN_2026).rate_for(past_first_year=False) == Decimal("0.15")
    assert commission_rule("stripe", JAN_2026).rate_for(past_first_year=False) == 0


def test_small_business_program_is_a_dated_setting(settings):
    settings.STORE_COMMISSION_RULES = {"app_store": [{"since": "2026-01-01", "small_business_program": True}]}
    assert commission_rule("app_store", datetime(2025, 12, 31, tzinfo=UTC)).rate_for(past_first_year=False) == Decimal(
        "0.30"
    )
    assert commission_rule("app_store", JAN_2026).rate_for(past_first_year=False) == Decimal("0.15")


def test_store_tax_is_inside_the_price_by_country():
    assert store_tax(provider="app_store", amount=Money("9.99", "GBP"), country="GB", at=JAN_2026) == Money(
        "1.67", "GBP"
    )
    assert store_tax(provider="app_store", amount=Money("9.99", "USD"), country="US", at=JAN_2026) == Money(0, "USD")
    # Stripe is not the merchant of record: its tax comes from the invoice, never guessed.
    assert store_tax(provider="stripe", amount=Money("9.99", "GBP"), country="GB", at=JAN_2026) == Money(0, "GBP")


@pytest.mark.django_db
def test_app_store_payment_books_commission_and_leaves_the_tax_to_apple():
    customer = CustomerFactory(country="GB")
    payment, _ = payment_record(
        customer=customer,
        provider="app_store",
        provider_reference="2000000000000001",
        amount=Money("9.99", "GBP"),
        occurred_at=JAN_2026,
    )
    assert payment.tax == Money("1.67", "GBP")
    assert payment.commission == Money("2.50", "GBP")  # 30% of 8.32, rounded half up
    assert _legs(payment) == {
        Account.cash("app_store"): Decimal("5.82"),  # what Apple will pay: 9.99 - 1.67 - 2.50
        Account.STORE_COMMISSION: Decimal("2.50"),
        Account.revenue(): Decimal("-8.32"),
    }
    assert ledger_report().balanced


@pytest.mark.django_db
def test_stripe_payment_keeps_its_fee_and_owes_its_tax():
    payment, _ = payment_record(
        customer=CustomerFactory(country="DE"),
        provider="stripe",
        provider_reference="in_commission_1",
        amount=Money("8.00", "EUR"),
        fee=Money("0.37", "EUR"),
        tax=Money("1.28", "EUR"),
    )
    assert payment.commission == Money(0, "EUR")
    assert _legs(payment) == {
        Account.cash("stripe"): Decimal("7.63"),
        Account.PROVIDER_FEES: Decimal("0.37"),
        Account.revenue(): Decimal("-6.72"),
        Account.TAX_PAYABLE: Decimal("-1.28"),
    }


@pytest.mark.django_db
def test_commission_drops_once_the_subscriber_has_a_paid_year():
    sub = SubscriptionFactory(provider="google_play", platform="android", customer=CustomerFactory(country="US"))
    first, _ = subscription_payment_record(
        subscription=sub,
        customer=sub.customer,
        provider="google_play",
        provider_reference="GPA.0001",
        amount=Money("10.00", "USD"),
        occurred_at=datetime(2020, 3, 1, tzinfo=UTC),
    )
    within, _ = subscription_payment_record(
        subscription=sub,
        customer=sub.customer,
        provider="google_play",
        provider_reference="GPA.0001..1",
        amount=Money("10.00", "USD"),
        occurred_at=datetime(2020, 3, 1, tzinfo=UTC) + timedelta(days=364),
    )
    after, _ = subscription_payment_record(
        subscription=sub,
        customer=sub.customer,
        provider="google_play",
        provider_reference="GPA.0001..2",
        amount=Money("10.00", "USD"),
        occurred_at=datetime(2020, 3, 1, tzinfo=UTC) + timedelta(days=366),
    )
    assert [p.commission.amount for p in (first, within, after)] == [Decimal("3.00"), Decimal("3.00"), Decimal("1.50")]


@pytest.mark.django_db
def test_a_store_refund_gives_back_its_commission_and_leaves_tax_payable_alone():
    customer = CustomerFactory(country="DE")
    payment, _ = payment_record(
        customer=customer,
        provider="app_store",
        provider_reference="2000000000000002",
        amount=Money("11.99", "EUR"),
        occurred_at=JAN_2026,
    )
    refund_record_from_provider(
        payment=payment,
        amount=Money("11.99", "EUR"),
        provider_refund_id="2000000000000002:refund",
        cause=Cause.provider_event("app_store", "evt-refund-1"),
    )
    totals: dict[str, Decimal] = {}
    for line in JournalLine.objects.filter(currency="EUR", entry__customer=customer):
        totals[line.account] = totals.get(line.account, Decimal(0)) + line.amount
    # After a full refund the store has kept nothing and paid nothing; revenue is fully contra'd.
    assert totals[Account.cash("app_store")] == 0
    assert totals[Account.STORE_COMMISSION] == 0
    assert totals[Account.revenue()] + totals[Account.REFUNDS] == 0
    assert Account.TAX_PAYABLE not in totals
    assert ledger_report().balanced
