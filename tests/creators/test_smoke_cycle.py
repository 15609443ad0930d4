import datetime
from decimal import Decimal

import pytest

from creators.models import CreatorEarning, Payout, RevenueShareCycle
from creators.services.cycles import cycle_approve, cycle_compute, cycle_submit
from creators.services.payouts import cycle_pay
from monetization.models import JournalLine
from monetization.services.ledger import ledger_report

from .factories import engagement, make_creator, post_revenue, staff

pytestmark = pytest.mark.django_db

SEPT = datetime.date(2026, 9, 1)
AT = datetime.datetime(2026, 9, 15, tzinfo=datetime.UTC)


def test_full_cycle_pays_everyone_exactly():
    a, b, c = make_creator(), make_creator(), make_creator()
    engagement(a, SEPT, impressions=1000)
    engagement(b, SEPT + datetime.timedelta(days=1), impressions=2000)
    engagement(c, SEPT, impressions=1)
    post_revenue("1000.00", at=AT)
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    alice = staff("alice", "Finance")
    bob = staff("bob", "Finance")
    result = cycle_compute(cycle_id=cycle.pk, actor=alice)
    assert result.pool == Decimal("250.00")
    assert sum(e.pool_amount for e in CreatorEarning.objects.filter(cycle=cycle)) == Decimal("250.00")
    cycle_submit(cycle_id=cycle.pk, actor=alice)
    cycle_approve(cycle_id=cycle.pk, actor=bob, reason="figures reviewed")
    cycle_pay(cycle_id=cycle.pk)
    cycle.refresh_from_db()
    assert cycle.state == RevenueShareCycle.State.PAID
    assert Payout.objects.filter(status="paid").count() == 2
    assert ledger_report().balanced
    payable = sum(JournalLine.objects.filter(account="liability:creator_payable").values_list("amount", flat=True))
    # c's tiny share is carried over, still owed.
    assert -payable == CreatorEarning.objects.get(creator=c).carried_out
