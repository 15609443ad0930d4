"""Issue 14, console fault 6: the payouts CSV of a cycle under review lists what approving would pay,
not just a header."""

import csv
import io

import pytest

from creators.models import CreatorEarning, Payout, RevenueShareCycle
from creators.services.cycles import cycle_approve, cycle_compute, cycle_submit

from .factories import engagement, make_creator, post_revenue, staff
from .test_payouts import AT, SEPT

pytestmark = pytest.mark.django_db


def export(client, cycle) -> list[list[str]]:
    answer = client.get(f"/admin/creators/revenuesharecycle/{cycle.pk}/payouts.csv")
    assert answer.status_code == 200
    return list(csv.reader(io.StringIO(b"".join(answer.streaming_content).decode())))


def test_the_export_before_approval_lists_the_proposed_payouts_then_the_real_ones(client):
    for i in range(3):
        engagement(make_creator(), SEPT, impressions=1000 + i * 37)
    post_revenue("10000.00", at=AT)
    alice, bob = staff("alice", "Finance"), staff("bob", "Finance")
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    cycle_compute(cycle_id=cycle.pk, actor=alice)
    cycle_submit(cycle_id=cycle.pk, actor=alice)
    client.force_login(bob)

    payable = CreatorEarning.objects.filter(cycle=cycle, payable__gt=0)
    header, *rows = export(client, cycle)
    assert header[0] == "payout_id" and len(rows) == payable.count() > 0
    assert {r[5] for r in rows} == {"proposed"}
    assert sorted(r[3] for r in rows) == sorted(f"{e.payable:.2f}" for e in payable)

    cycle_approve(cycle_id=cycle.pk, actor=bob, reason="figures reviewed")
    _, *after = export(client, cycle)
    assert len(after) == Payout.objects.filter(cycle=cycle).count() == len(rows)
    assert "proposed" not in {r[5] for r in after}
    assert sorted(r[3] for r in after) == sorted(r[3] for r in rows)
