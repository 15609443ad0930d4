import datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.test import override_settings

from creators.models import CreatorAccount, CreatorEarning, Payout, PayoutHold, PayoutProfile, RevenueShareCycle
from creators.services.creator_subscriptions import creator_subscription_payment_share, share_amount
from creators.services.cycles import cycle_approve, cycle_close, cycle_compute, cycle_reject, cycle_submit
from creators.services.payouts import cycle_pay
from monetization.errors import Conflict, ErrorCode, IllegalTransition, InvalidInput, PermissionDenied
from monetization.models import AuditEvent, JournalEntry, JournalLine, Payment
from monetization.services.ledger import ledger_report
from subscriptions.models import Product
from subscriptions.services.payments import subscription_payment_record
from tests.monetization.factories import CustomerFactory
from tests.subscriptions.factories import PlanFactory, ProductFactory, SubscriptionFactory

from .factories import engagement, make_creator, post_revenue, staff

pytestmark = pytest.mark.django_db
SEPT, OCT = datetime.date(2026, 9, 1), datetime.date(2026, 10, 1)


def at(day: datetime.date, hour=12):
    return datetime.datetime(day.year, day.month, day.day, hour, tzinfo=datetime.UTC)


@pytest.fixture
def finance():
    return staff("alice", "Finance"), staff("bob", "Finance")


def run_to_review(cycle, user):
    cycle_compute(cycle_id=cycle.pk, actor=user)
    cycle_submit(cycle_id=cycle.pk, actor=user)


def payable_balance() -> Decimal:
    return -sum(JournalLine.objects.filter(account="liability:creator_payable").values_list("amount", flat=True))


def test_pool_is_share_of_period_subscription_revenue_per_currency(finance):
    c = make_creator()
    engagement(c, SEPT, impressions=10)
    post_revenue("100.00", at=at(SEPT))
    post_revenue("0.03", at=at(datetime.date(2026, 9, 30), 23))
    post_revenue("999.00", at=at(OCT))  # next period
    post_revenue("500.00", at=at(SEPT), currency="EUR")
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    result = cycle_compute(cycle_id=cycle.pk, actor=finance[0])
    cycle.refresh_from_db()
    assert result.pool == Decimal("25.00")  # 25% of 100.03 rounded down to the cent
    assert cycle.revenue_by_currency == {"EUR": "500.0000", "USD": "100.0300"}
    assert cycle.pool == Decimal("25.00")
    # Every currency's revenue funds a pool in that currency, split and paid in it.
    assert cycle.pools == {"EUR": "125.00", "USD": "25.00"}
    earned = dict(CreatorEarning.objects.filter(cycle=cycle).values_list("currency", "pool_amount"))
    assert earned == {"USD": Decimal("25.00"), "EUR": Decimal("125.00")}
    assert (cycle.compute_processed, cycle.compute_total, cycle.state) == (1, 1, "computed")


def test_split_by_weighted_engagement_of_active_creators_only(finance):
    a, b = make_creator(), make_creator()
    suspended = make_creator(state=CreatorAccount.State.SUSPENDED)
    engagement(a, SEPT, impressions=100)  # score 100
    engagement(b, SEPT, replies=5, likes=25, reposts=0)  # score 100 + 50 = 150
    engagement(b, datetime.date(2026, 8, 31), impressions=10**9)  # other period
    engagement(suspended, SEPT, impressions=10**6)
    post_revenue("40.00", at=at(SEPT))  # pool 10.00
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    cycle_compute(cycle_id=cycle.pk, actor=finance[0])
    shares = dict(CreatorEarning.objects.filter(cycle=cycle).values_list("creator_id", "pool_amount"))
    assert shares == {a.pk: Decimal("4.00"), b.pk: Decimal("6.00")}


@override_settings(CREATOR_ENGAGEMENT_WEIGHTS={"impressions": "0.5", "replies": "1.25", "reposts": 0, "likes": 0})
def test_fractional_weights_store_the_weighted_score_and_split_by_it(finance):
    a, b = make_creator(), make_creator()
    engagement(a, SEPT, impressions=101)  # 50.5
    engagement(b, SEPT, impressions=1, replies=3)  # 0.5 + 3.75 = 4.25
    post_revenue("40.00", at=at(SEPT))  # pool 10.00
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    cycle_compute(cycle_id=cycle.pk, actor=finance[0])
    rows = {e.creator_id: (e.score, e.pool_amount) for e in CreatorEarning.objects.filter(cycle=cycle)}
    # 1000 cents x 50.5 / 54.75 = 922.37 and x 4.25 / 54.75 = 77.63: the leftover cent goes to the larger remainder
    assert rows == {a.pk: (Decimal("50.5"), Decimal("9.22")), b.pk: (Decimal("4.25"), Decimal("0.78"))}


def test_dry_run_writes_nothing(finance):
    c = make_creator()
    engagement(c, SEPT, impressions=10)
    post_revenue("100.00", at=at(SEPT))
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    counts = (JournalEntry.objects.count(), AuditEvent.objects.count())
    result = cycle_compute(cycle_id=cycle.pk, actor=finance[0], dry_run=True)
    assert result.summary()["distributed"] == "25.00"
    assert result.lines[0].payable_minor == 2500
    assert (JournalEntry.objects.count(), AuditEvent.objects.count()) == counts
    assert not CreatorEarning.objects.exists()
    cycle.refresh_from_db()
    assert (cycle.state, cycle.compute_run, cycle.pool) == ("open", 0, 0)


def test_small_balances_carry_over_until_they_reach_the_minimum(finance):
    alice, bob = finance
    big, small = make_creator(), make_creator()
    engagement(big, SEPT, impressions=9_993)
    engagement(small, SEPT, impressions=7)  # 7/10000 of 40.00 pool -> 0.03... below 10
    post_revenue("160.00", at=at(SEPT))  # pool 40.00
    sept = RevenueShareCycle.objects.create(period=SEPT)
    run_to_review(sept, alice)
    cycle_approve(cycle_id=sept.pk, actor=bob, reason="figures reviewed")
    cycle_pay(cycle_id=sept.pk)
    e = CreatorEarning.objects.get(cycle=sept, creator=small)
    assert (e.payable, e.carried_out) == (Decimal("0"), e.total)
    assert not Payout.objects.filter(creator=small).exists()
    carried = e.carried_out
    assert payable_balance() == carried
    # October: the small creator earns 9.99 more -> with the carry it crosses 10.00.
    engagement(small, OCT, impressions=999)
    engagement(big, OCT, impressions=3_001)
    post_revenue("160.00", at=at(OCT))
    octo = RevenueShareCycle.objects.create(period=OCT)
    run_to_review(octo, alice)
    cycle_approve(cycle_id=octo.pk, actor=bob, reason="figures reviewed")
    e2 = CreatorEarning.objects.get(cycle=octo, creator=small)
    assert e2.carried_in == carried
    assert e2.total == e2.pool_amount + carried
    assert e2.payable == e2.total >= Decimal("10.00")
    assert Payout.objects.get(cycle=octo, creator=small).amount == e2.total
    cycle_pay(cycle_id=octo.pk)
    assert payable_balance() == 0
    assert ledger_report().balanced


@override_settings(CREATOR_MIN_PAYOUT="10.00")
def test_minimum_payout_boundary(finance):
    exactly, below = make_creator(), make_creator()
    engagement(exactly, SEPT, impressions=1000)
    engagement(below, SEPT, impressions=999)
    post_revenue("79.96", at=at(SEPT))  # pool 19.99 -> 10.00 and 9.99
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    cycle_compute(cycle_id=cycle.pk, actor=finance[0])
    rows = {e.creator_id: (e.total, e.payable) for e in CreatorEarning.objects.filter(cycle=cycle)}
    assert rows == {exactly.pk: (Decimal("10.00"), Decimal("10.00")), below.pk: (Decimal("9.99"), Decimal("0"))}


def test_four_eyes_the_computer_cannot_approve(finance):
    alice, bob = finance
    c = make_creator()
    engagement(c, SEPT, impressions=10)
    post_revenue("100.00", at=at(SEPT))
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    run_to_review(cycle, alice)
    with pytest.raises(PermissionDenied) as exc:
        cycle_approve(cycle_id=cycle.pk, actor=alice, reason="figures reviewed")
    assert exc.value.code == ErrorCode.FOUR_EYES
    support = staff("sam", "Support")
    with pytest.raises(PermissionDenied):
        cycle_approve(cycle_id=cycle.pk, actor=support, reason="figures reviewed")
    cycle_approve(cycle_id=cycle.pk, actor=bob, reason="figures reviewed")
    cycle.refresh_from_db()
    assert (cycle.state, cycle.computed_by, cycle.approved_by) == ("approved", alice, bob)


def test_four_eyes_is_also_a_database_constraint(finance):
    alice, _ = finance
    cycle = RevenueShareCycle.objects.create(period=SEPT, computed_by=alice)
    with pytest.raises(IntegrityError), transaction.atomic():
        RevenueShareCycle.objects.filter(pk=cycle.pk).update(approved_by=alice)


def test_reject_needs_a_reason_and_reopen_reverses_the_ledger(finance):
    alice, bob = finance
    c = make_creator()
    engagement(c, SEPT, impressions=10)
    post_revenue("100.00", at=at(SEPT))
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    run_to_review(cycle, alice)
    with pytest.raises(InvalidInput):
        cycle_reject(cycle_id=cycle.pk, actor=bob, reason="")
    cycle_reject(cycle_id=cycle.pk, actor=bob, reason="check weights")
    cycle.refresh_from_db()
    assert (cycle.state, cycle.rejected_reason) == ("computed", "check weights")
    cycle_submit(cycle_id=cycle.pk, actor=alice)
    assert payable_balance() == Decimal("25.00")
    cycle_reject(cycle_id=cycle.pk, actor=bob, reason="revenue was restated", reopen=True)
    cycle.refresh_from_db()
    assert cycle.state == "open"
    assert payable_balance() == 0
    assert not CreatorEarning.objects.filter(cycle=cycle).exists()
    post_revenue("100.00", at=at(SEPT))
    run_to_review(cycle, bob)
    assert CreatorEarning.objects.get(cycle=cycle).pool_amount == Decimal("50.00")
    assert payable_balance() == Decimal("50.00")
    cycle_approve(cycle_id=cycle.pk, actor=alice, reason="figures reviewed")  # now alice may: bob computed
    assert ledger_report().balanced


def test_compute_only_from_open_and_resumes_when_interrupted(finance):
    c = make_creator()
    engagement(c, SEPT, impressions=10)
    post_revenue("100.00", at=at(SEPT))
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    cycle_compute(cycle_id=cycle.pk, actor=finance[0])
    with pytest.raises(IllegalTransition):
        cycle_compute(cycle_id=cycle.pk, actor=finance[0])
    # A crash mid-way leaves the cycle computing; a re-run finishes it without duplicating.
    RevenueShareCycle.objects.filter(pk=cycle.pk).update(state="computing")
    cycle_compute(cycle_id=cycle.pk, actor=finance[0])
    assert CreatorEarning.objects.filter(cycle=cycle).count() == 1
    assert JournalEntry.objects.filter(kind="creator_earnings").count() == 1


def test_payouts_of_creators_missing_tax_form_or_not_active_are_held(finance):
    alice, bob = finance
    ok = make_creator()
    no_form = make_creator(profile=False)
    engagement(ok, SEPT, impressions=10)
    engagement(no_form, SEPT, impressions=10)
    post_revenue("200.00", at=at(SEPT))
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    run_to_review(cycle, alice)
    CreatorAccount.objects.filter(pk=ok.pk).update(state="suspended")  # suspended after the compute
    cycle_approve(cycle_id=cycle.pk, actor=bob, reason="figures reviewed")
    kinds = dict(PayoutHold.objects.values_list("payout__creator_id", "kind"))
    assert kinds == {ok.pk: "sanctions_review", no_form.pk: "missing_tax_form"}
    assert set(Payout.objects.values_list("status", flat=True)) == {"held"}
    cycle_pay(cycle_id=cycle.pk)
    assert set(Payout.objects.values_list("status", flat=True)) == {"held"}
    cycle.refresh_from_db()
    assert cycle.state == "paid"  # nothing payable is left; held payouts wait for Compliance
    with pytest.raises(Conflict) as refused:
        cycle_close(cycle_id=cycle.pk, actor=bob, reason="all paid")
    assert refused.value.code == "confirmation_required"
    cycle_close(cycle_id=cycle.pk, actor=bob, confirm=True, reason="all paid")


def test_approve_schedules_one_payout_per_payable_earning_with_every_hold_reason(finance):
    """The set-based scheduling keeps each rule: every reason that applies is its own hold, in this order."""
    alice, bob = finance
    ok = make_creator()
    everything_wrong = make_creator()
    for creator in (ok, everything_wrong):
        engagement(creator, SEPT, impressions=10)
    post_revenue("200.00", at=at(SEPT))
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    run_to_review(cycle, alice)
    PayoutProfile.objects.filter(creator=everything_wrong).update(
        payout_account_id="", tax_form_status="missing", payouts_enabled=False
    )
    CreatorAccount.objects.filter(pk=everything_wrong.pk).update(state="suspended")
    cycle_approve(cycle_id=cycle.pk, actor=bob, reason="figures reviewed")
    cycle.refresh_from_db()
    assert cycle.pay_total == 2
    good = Payout.objects.get(creator=ok)
    earning = CreatorEarning.objects.get(cycle=cycle, creator=ok)
    assert (good.status, good.earning_id, good.currency) == ("approved", earning.pk, "USD")
    assert good.amount == earning.payable
    assert good.destination == ok.payout_profile.payout_account_id != ""
    assert not good.holds.exists()
    held = Payout.objects.get(creator=everything_wrong)
    assert (held.status, held.destination) == ("held", "")
    assert sorted(held.holds.values_list("kind", "reason")) == [
        ("connect_account", "Stripe says the account cannot receive payouts."),
        ("missing_tax_form", "No payout account or tax form on file."),
        ("sanctions_review", "Creator account is suspended; Compliance to review."),
    ]
    assert all(h.placed_at and h.lifted_at is None for h in held.holds.all())
    audit = AuditEvent.objects.filter(action="cycle.approve").get()
    assert (audit.after["payouts"], audit.after["held"]) == (2, 1)


def test_creator_subscription_share_thresholds():
    assert share_amount(basis=Decimal("10.00"), lifetime_before=Decimal("0"), currency="USD") == Decimal("9.70")
    assert share_amount(basis=Decimal("10.00"), lifetime_before=Decimal("49995"), currency="USD") == Decimal("9.35")
    assert share_amount(basis=Decimal("10.00"), lifetime_before=Decimal("50000"), currency="USD") == Decimal("9.00")


def test_creator_subscription_payments_join_the_earnings(finance):
    alice, bob = finance
    creator = make_creator()
    product = ProductFactory(kind=Product.Kind.CREATOR)
    plan = PlanFactory(product=product)
    from creators.models import CreatorSubscriptionLink

    CreatorSubscriptionLink.objects.create(plan=plan, creator=creator)
    fan = CustomerFactory()
    sub = SubscriptionFactory(customer=fan, plan=plan)
    from djmoney.money import Money

    payment, _ = subscription_payment_record(
        customer=fan,
        provider="stripe",
        provider_reference="in_fan_1",
        amount=Money("20.00", "USD"),
        subscription=sub,
        occurred_at=at(SEPT),
    )
    share = creator_subscription_payment_share(payment=payment)
    again = creator_subscription_payment_share(payment=payment)
    assert share.pk == again.pk
    assert share.amount == Decimal("19.40")
    assert JournalEntry.objects.filter(key=f"payment:{payment.pk}:creator_share").count() == 1
    other = Payment.objects.create(customer=fan, provider="stripe", provider_reference="in_x", amount=Money(1, "USD"))
    assert creator_subscription_payment_share(payment=other) is None
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    run_to_review(cycle, alice)  # no pool (no consumer revenue), but the share is earned
    e = CreatorEarning.objects.get(cycle=cycle, creator=creator)
    assert (e.pool_amount, e.subscription_amount, e.payable) == (Decimal("0"), Decimal("19.40"), Decimal("19.40"))
    cycle_approve(cycle_id=cycle.pk, actor=bob, reason="figures reviewed")
    cycle_pay(cycle_id=cycle.pk)
    assert payable_balance() == 0
    assert ledger_report().balanced


def test_server_side_compute_matches_the_python_plan_line_by_line(finance):
    """The PostgreSQL path writes exactly what the dry run (Python rule) says, carry-ins and shares included."""
    alice, bob = finance
    creators = [make_creator() for _ in range(7)]
    for i, c in enumerate(creators):
        engagement(c, SEPT, impressions=37 * i + 1, replies=i, likes=3 * i, reposts=i % 2)
    post_revenue("123.45", at=at(SEPT))
    sept = RevenueShareCycle.objects.create(period=SEPT)
    run_to_review(sept, alice)
    cycle_approve(cycle_id=sept.pk, actor=bob, reason="figures reviewed")
    for i, c in enumerate(creators[:4]):
        engagement(c, OCT, impressions=11 * i + 5, replies=2)
    post_revenue("77.77", at=at(OCT))
    octo = RevenueShareCycle.objects.create(period=OCT)
    plan = cycle_compute(cycle_id=octo.pk, actor=alice, dry_run=True)
    cycle_compute(cycle_id=octo.pk, actor=alice, chunk_size=3)
    written = {
        e.creator_id: (e.pool_amount, e.carried_in, e.total, e.payable, e.carried_out)
        for e in CreatorEarning.objects.filter(cycle=octo)
    }
    expected = {
        line.creator_id: tuple(
            Decimal(v) / 100
            for v in (
                line.pool_minor,
                line.carried_in_minor,
                line.total_minor,
                line.payable_minor,
                line.carried_out_minor,
            )
        )
        for line in plan.lines
    }
    assert written == expected
    assert any(v[1] > 0 for v in written.values())  # carry-ins were exercised
    octo.refresh_from_db()
    assert (octo.compute_processed, octo.compute_total) == (len(expected), len(expected))
    assert JournalEntry.objects.filter(key__startswith=f"cycle:{octo.pk}:run:1:earnings:").count() == 2


def test_computed_audit_totals_are_what_the_table_holds_whole_or_resumed(finance):
    """The audit of a computation states the earnings' totals, whether the run wrote every chunk or resumed one."""
    from creators.services.cycles import selectors_summary

    creators = [make_creator() for _ in range(5)]
    for i, c in enumerate(creators):
        engagement(c, SEPT, impressions=13 * i + 2, likes=i)
    post_revenue("101.01", at=at(SEPT))
    post_revenue("55.55", at=at(SEPT), currency="EUR")
    post_revenue("7", at=at(SEPT), currency="JPY")
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    cycle_compute(cycle_id=cycle.pk, actor=finance[0], chunk_size=2)
    computed = AuditEvent.objects.filter(action="cycle.computed", object_id=str(cycle.pk))
    cycle.refresh_from_db()
    assert CreatorEarning.objects.filter(cycle=cycle).count() == 15
    assert computed.get().after == selectors_summary(cycle)
    # A run cut short after its first chunk: the resumed run writes the rest and still states the whole.
    CreatorEarning.objects.filter(cycle=cycle, creator_id__gt=creators[1].pk).delete()
    RevenueShareCycle.objects.filter(pk=cycle.pk).update(state="computing")
    cycle_compute(cycle_id=cycle.pk, actor=finance[0], chunk_size=2)
    assert CreatorEarning.objects.filter(cycle=cycle).count() == 15
    assert computed.latest("id").after == selectors_summary(cycle)
