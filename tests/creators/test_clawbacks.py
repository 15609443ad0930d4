"""Creator earnings follow the money: a refund or lost dispute of a fan payment takes the creator's
share back (carried forward as a negative balance when already paid), consumer refunds shrink the
pool, and every currency is shared and paid in that currency."""

import dataclasses
import datetime
from decimal import Decimal

import pytest
from djmoney.money import Money

from creators.models import CreatorClawback, CreatorEarning, CreatorSubscriptionLink, Payout, RevenueShareCycle
from creators.services.cycles import cycle_approve, cycle_compute, cycle_submit
from creators.services.payouts import cycle_pay
from monetization import clock
from monetization.models import JournalLine
from monetization.providers.base import DisputeReport
from monetization.services.dispute_hooks import run_dispute_lost_hooks
from monetization.services.disputes import dispute_record_reported
from monetization.services.ledger import ledger_report
from monetization.services.refunds import refund_record_from_provider
from subscriptions.models import Product
from subscriptions.services.lifecycle import Cause
from subscriptions.services.payments import subscription_payment_record
from tests.monetization.factories import CustomerFactory
from tests.subscriptions.factories import PlanFactory, ProductFactory, SubscriptionFactory

from .factories import engagement, make_creator, staff

pytestmark = pytest.mark.django_db
SEPT, OCT, NOV = datetime.date(2026, 9, 1), datetime.date(2026, 10, 1), datetime.date(2026, 11, 1)


def at(day: datetime.date, d=10):
    return datetime.datetime(day.year, day.month, d, 12, tzinfo=datetime.UTC)


_refs = iter(range(10**6))


class Fans:
    """A creator-subscription plan of one creator, and fans paying for it through the real payment path."""

    def __init__(self, creator):
        plan = PlanFactory(product=ProductFactory(kind=Product.Kind.CREATOR))
        CreatorSubscriptionLink.objects.create(plan=plan, creator=creator)
        self.plan = plan

    def pay(self, amount: str, currency: str, when: datetime.datetime):
        fan = CustomerFactory()
        sub = SubscriptionFactory(customer=fan, plan=self.plan)
        payment, _ = subscription_payment_record(
            customer=fan,
            provider="stripe",
            provider_reference=f"in_fan_{next(_refs)}",
            amount=Money(amount, currency),
            subscription=sub,
            occurred_at=when,
        )
        return payment


def refund(payment, amount: str, when: datetime.datetime):
    with clock.frozen(when):
        return refund_record_from_provider(
            payment=payment,
            amount=Money(amount, str(payment.amount.currency)),
            provider_refund_id=f"re_{next(_refs)}",
            cause=Cause.provider_event("stripe", f"evt_{next(_refs)}", reason="charge.refunded"),
        )[0]


def dispute(payment, amount: str, when: datetime.datetime, *, status: str = "lost", dispute_id: str | None = None):
    """A chargeback reported by the provider: opened (funds withdrawn) and decided at ``when``."""
    dispute_id = dispute_id or f"dp_{next(_refs)}"
    minor = int(Decimal(amount) * 100)
    opened = DisputeReport(
        provider_dispute_id=dispute_id,
        payment_reference=payment.provider_reference,
        amount_minor=minor,
        currency=str(payment.amount.currency),
        status="needs_response",
        as_of=when - datetime.timedelta(hours=1),
        movements=((f"txn_{dispute_id}_w", -minor, 1500),),
    )
    decided = dataclasses.replace(opened, status=status, as_of=when)
    if status == "won":
        decided = dataclasses.replace(decided, movements=(*opened.movements, (f"txn_{dispute_id}_r", minor, 0)))
    cause = Cause.provider_event("stripe", f"evt_{next(_refs)}", reason="charge.dispute.closed")
    with clock.frozen(when):
        dispute_record_reported(payment=payment, report=opened, cause=cause)
        return dispute_record_reported(payment=payment, report=decided, cause=cause)[0]


def run_cycle(period, finance, *, pay=True) -> RevenueShareCycle:
    alice, bob = finance
    cycle = RevenueShareCycle.objects.create(period=period)
    cycle_compute(cycle_id=cycle.pk, actor=alice)
    cycle_submit(cycle_id=cycle.pk, actor=alice)
    cycle_approve(cycle_id=cycle.pk, actor=bob, reason="figures reviewed")
    if pay:
        cycle_pay(cycle_id=cycle.pk)
    return cycle


def payable_balance(currency: str) -> Decimal:
    lines = JournalLine.objects.filter(account="liability:creator_payable", currency=currency)
    return -sum(lines.values_list("amount", flat=True), Decimal(0))


@pytest.fixture
def finance():
    return staff("alice", "Finance"), staff("bob", "Finance")


def test_a_fully_refunded_fan_payment_earns_the_creator_nothing(finance):
    creator = make_creator()
    payment = Fans(creator).pay("20.00", "USD", at(SEPT))
    refund(payment, "20.00", at(SEPT, 20))
    cycle = run_cycle(SEPT, finance)
    e = CreatorEarning.objects.get(cycle=cycle, creator=creator)
    assert (e.subscription_amount, e.clawed_back, e.total, e.payable) == (
        Decimal("19.40"),
        Decimal("19.40"),
        Decimal("0"),
        Decimal("0"),
    )
    assert not Payout.objects.filter(creator=creator).exists()
    assert payable_balance("USD") == 0
    assert ledger_report().balanced


def test_a_refund_after_the_payout_is_carried_as_a_debt_and_never_paid_twice(finance):
    creator = make_creator()
    fans = Fans(creator)
    payment = fans.pay("20.00", "USD", at(SEPT))
    run_cycle(SEPT, finance)
    assert Payout.objects.get(creator=creator).amount == Decimal("19.40")
    refund(payment, "10.00", at(OCT))  # half: 9.70 back
    refund(payment, "10.00", at(OCT, 11))  # the rest: exactly the share in all
    octo = run_cycle(OCT, finance)
    e = CreatorEarning.objects.get(cycle=octo, creator=creator)
    assert (e.clawed_back, e.total, e.payable, e.carried_out) == (
        Decimal("19.40"),
        Decimal("-19.40"),
        Decimal("0"),
        Decimal("-19.40"),
    )
    assert sum(CreatorClawback.objects.values_list("amount", flat=True)) == Decimal("19.40")
    assert payable_balance("USD") == Decimal("-19.40")  # the creator owes it: a debit balance
    fans.pay("30.00", "USD", at(NOV))  # 29.10 earned, 19.40 of it settles the debt
    nov = run_cycle(NOV, finance)
    e = CreatorEarning.objects.get(cycle=nov, creator=creator)
    assert (e.carried_in, e.total, e.payable) == (Decimal("-19.40"), Decimal("9.70"), Decimal("0"))
    assert e.carried_out == Decimal("9.70")  # below the minimum: waits
    assert Payout.objects.filter(creator=creator).count() == 1
    assert payable_balance("USD") == Decimal("9.70")
    assert ledger_report().balanced


def test_a_lost_dispute_takes_the_share_back_once(finance):
    creator = make_creator()
    payment = Fans(creator).pay("20.00", "EUR", at(SEPT))
    for _ in range(2):  # a re-delivered dispute event
        run_dispute_lost_hooks(
            payment=payment, amount=Money("20.00", "EUR"), reference="dispute:dp_1", occurred_at=at(SEPT, 25)
        )
    assert CreatorClawback.objects.get().amount == Decimal("19.40")
    cycle = run_cycle(SEPT, finance)
    assert CreatorEarning.objects.get(cycle=cycle, creator=creator).total == 0
    assert payable_balance("EUR") == 0


def test_consumer_refunds_shrink_the_pool(finance):
    creator = make_creator()
    engagement(creator, SEPT, impressions=100)
    consumer = SubscriptionFactory()
    payment, _ = subscription_payment_record(
        customer=consumer.customer,
        provider="stripe",
        provider_reference="in_consumer_1",
        amount=Money("100.00", "USD"),
        subscription=consumer,
        occurred_at=at(SEPT),
    )
    refund(payment, "40.00", at(SEPT, 20))
    cycle = run_cycle(SEPT, finance, pay=False)
    cycle.refresh_from_db()
    assert cycle.revenue == Decimal("60.00")
    assert cycle.pool == Decimal("15.00")


def _consumer_payment(amount: str, currency: str, when: datetime.datetime, tax: str = "0"):
    consumer = SubscriptionFactory()
    return subscription_payment_record(
        customer=consumer.customer,
        provider="stripe",
        provider_reference=f"in_consumer_{next(_refs)}",
        amount=Money(amount, currency),
        tax=Money(tax, currency),
        subscription=consumer,
        occurred_at=when,
    )[0]


def test_a_lost_consumer_dispute_shrinks_the_pool_of_the_month_it_is_lost_in(finance):
    creator = make_creator()
    engagement(creator, SEPT, impressions=100)
    engagement(creator, OCT, impressions=100)
    lost = _consumer_payment("100.00", "USD", at(SEPT), tax="20.00")  # 80.00 revenue
    _consumer_payment("100.00", "USD", at(SEPT))
    won = _consumer_payment("50.00", "USD", at(SEPT))
    dispute(won, "50.00", at(SEPT, 25), status="won")
    dispute(lost, "100.00", at(OCT, 3))  # opened in September, lost in October
    sept = run_cycle(SEPT, finance, pay=False)
    sept.refresh_from_db()
    assert sept.revenue == Decimal("230.00")  # withdrawn funds are not lost revenue until the dispute is
    _consumer_payment("200.00", "USD", at(OCT))
    octo = RevenueShareCycle.objects.create(period=OCT)
    cycle_compute(cycle_id=octo.pk, actor=finance[0])
    octo.refresh_from_db()
    assert octo.revenue == Decimal("120.00")  # 200.00 less the 80.00 of revenue the lost dispute took back
    assert octo.pool == Decimal("30.00")


def test_a_lost_dispute_of_a_fan_payment_through_the_provider_report_claws_back_once(finance):
    creator = make_creator()
    payment = Fans(creator).pay("20.00", "GBP", at(SEPT))
    run_cycle(SEPT, finance)
    decided = dispute(payment, "20.00", at(OCT, 2), dispute_id="dp_fan")
    dispute(payment, "20.00", at(OCT, 2), dispute_id="dp_fan")  # the same report again
    assert decided.status == "lost"
    assert CreatorClawback.objects.get().amount == Decimal("19.40")
    octo = run_cycle(OCT, finance)
    e = CreatorEarning.objects.get(cycle=octo, creator=creator, currency="GBP")
    assert (e.clawed_back, e.payable, e.carried_out) == (Decimal("19.40"), Decimal("0"), Decimal("-19.40"))
    assert payable_balance("GBP") == Decimal("-19.40")
    assert Payout.objects.filter(creator=creator).count() == 1  # never paid twice
    assert ledger_report().balanced


def test_a_won_dispute_of_a_fan_payment_takes_nothing_back(finance):
    creator = make_creator()
    payment = Fans(creator).pay("20.00", "USD", at(SEPT))
    dispute(payment, "20.00", at(SEPT, 20), status="won")
    assert not CreatorClawback.objects.exists()
    cycle = run_cycle(SEPT, finance)
    assert CreatorEarning.objects.get(cycle=cycle, creator=creator).payable == Decimal("19.40")


def test_a_non_usd_share_is_paid_in_its_currency(finance):
    creator = make_creator()
    Fans(creator).pay("20.00", "EUR", at(SEPT))
    Fans(creator).pay("20.00", "USD", at(SEPT))
    run_cycle(SEPT, finance)
    paid = {p.currency: p.amount for p in Payout.objects.filter(creator=creator, status="paid")}
    assert paid == {"EUR": Decimal("19.40"), "USD": Decimal("19.40")}
    assert payable_balance("EUR") == 0 and payable_balance("USD") == 0
    assert ledger_report().balanced


def test_the_minimum_payout_in_another_currency_is_converted_at_the_period_end_rate(finance):
    from monetization.services.fx import exchange_rates_load

    ExchangeRateCsv = "Date,USD,\n2026-09-30,1.2500,\n"  # 1 EUR = 1.25 USD: the 10.00 USD minimum is 8.00 EUR
    creator = make_creator()
    Fans(creator).pay("9.00", "EUR", at(SEPT))  # share 8.73 EUR
    import tempfile
    from pathlib import Path

    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        f.write(ExchangeRateCsv)
    try:
        exchange_rates_load(source="ecb", location=f.name)
    finally:
        Path(f.name).unlink()
    cycle = run_cycle(SEPT, finance)
    e = CreatorEarning.objects.get(cycle=cycle, creator=creator, currency="EUR")
    assert (e.total, e.payable) == (Decimal("8.73"), Decimal("8.73"))
    assert Payout.objects.get(creator=creator).amount == Decimal("8.73")


def test_without_a_rate_the_minimum_is_the_same_nominal_amount(finance):
    creator = make_creator()
    Fans(creator).pay("9.00", "EUR", at(SEPT))
    cycle = run_cycle(SEPT, finance)
    e = CreatorEarning.objects.get(cycle=cycle, creator=creator, currency="EUR")
    assert (e.payable, e.carried_out) == (Decimal("0"), Decimal("8.73"))


def test_annual_plans_count_in_the_pool_month_by_month(finance):
    from creators.services.cycles import period_revenue
    from monetization.services.revenue_recognition import revenue_recognize
    from subscriptions.models import Plan

    annual = SubscriptionFactory(plan=PlanFactory(interval=Plan.Interval.YEAR))
    monthly = SubscriptionFactory()
    paid = datetime.datetime(2026, 9, 1, tzinfo=datetime.UTC)
    for sub, amount, ref in ((annual, "365.00", "in_annual"), (monthly, "20.00", "in_monthly")):
        subscription_payment_record(
            customer=sub.customer,
            provider="stripe",
            provider_reference=ref,
            amount=Money(amount, "USD"),
            subscription=sub,
            occurred_at=paid,
        )
    creator = make_creator()
    engagement(creator, SEPT, impressions=100)
    cycle = run_cycle(SEPT, finance, pay=False)  # the cycle recognizes up to its period's end itself
    cycle.refresh_from_db()
    assert cycle.revenue == Decimal("50.00")  # 20.00 monthly + 30 days of the annual 365.00
    months = [datetime.date(2026 + (9 + i - 1) // 12, (9 + i - 1) % 12 + 1, 1) for i in range(13)]
    revenue_recognize(through=datetime.datetime(2027, 10, 1, tzinfo=datetime.UTC))
    seen = [period_revenue(m).get("USD", Decimal(0)) for m in months]
    assert seen[0] == Decimal("50.00")
    assert seen[1:12] == [Decimal(31), 30, 31, 31, 28, 31, 30, 31, 30, 31, 31]  # a day's revenue, 1.00, per day
    assert seen[12] == 0  # a year later: fully recognized
    assert sum(seen) == Decimal("385.00")


def test_a_refund_of_an_annual_plan_leaves_the_pool_only_for_what_had_been_recognized(finance):
    from subscriptions.models import Plan

    annual = SubscriptionFactory(plan=PlanFactory(interval=Plan.Interval.YEAR))
    payment, _ = subscription_payment_record(
        customer=annual.customer,
        provider="stripe",
        provider_reference="in_annual_refunded",
        amount=Money("365.00", "USD"),
        subscription=annual,
        occurred_at=datetime.datetime(2026, 9, 1, tzinfo=datetime.UTC),
    )
    monthly = SubscriptionFactory()
    subscription_payment_record(
        customer=monthly.customer,
        provider="stripe",
        provider_reference="in_monthly_oct",
        amount=Money("100.00", "USD"),
        subscription=monthly,
        occurred_at=at(OCT),
    )
    creator = make_creator()
    engagement(creator, SEPT, impressions=100)
    engagement(creator, OCT, impressions=100)
    sept = run_cycle(SEPT, finance, pay=False)
    sept.refresh_from_db()
    assert sept.revenue == Decimal("30.00")
    refund(payment, "365.00", datetime.datetime(2026, 10, 1, 12, tzinfo=datetime.UTC))  # 30.50 days served
    octo = RevenueShareCycle.objects.create(period=OCT)
    cycle_compute(cycle_id=octo.pk, actor=finance[0])
    octo.refresh_from_db()
    # October: 100.00 monthly, less the 30.00 of September's recognized revenue the refund gave back; the
    # 335.00 never recognized comes out of deferred revenue and touches no month's pool.
    assert octo.revenue == Decimal("70.00")
