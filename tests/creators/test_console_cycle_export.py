"""Issue 14, console fault 6: the payouts CSV of a cycle under review lists what approving would pay,
not just a header."""

import csv
import io

import pytest

from creators.models import CreatorEarning, Payout, RevenueShareCycle
from creators.services.cycles import cycle_approve, cycle_compute, cycle_submit
from creators.services.payouts import cycle_pay
from monetization.models import AuditEvent

from .factories import engagement, make_creator, post_revenue, staff
from .test_cycle_page import messages_of
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


def test_approving_and_closing_need_a_ticked_confirmation_and_closing_a_reason(client):
    for i in range(2):
        engagement(make_creator(), SEPT, impressions=500 + i)
    post_revenue("1000.00", at=AT)
    alice, bob = staff("al", "Finance"), staff("bo", "Finance")
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    cycle_compute(cycle_id=cycle.pk, actor=alice)
    cycle_submit(cycle_id=cycle.pk, actor=alice)
    client.force_login(bob)
    act = f"/admin/creators/revenuesharecycle/{cycle.pk}/act/"
    page = client.get(f"/admin/creators/revenuesharecycle/{cycle.pk}/change/").content.decode()
    assert 'name="confirm_action" value="1" required' in page
    shown = messages_of(client.post(act, {"op": "approve", "reason": "figures ok"}, follow=True))
    assert any("confirmation" in m for m in shown)
    cycle.refresh_from_db()
    assert cycle.state == "in_review"
    client.post(act, {"op": "approve", "reason": "figures ok", "confirm_action": "1"})
    cycle.refresh_from_db()
    assert cycle.state == "approved"

    cycle_pay(cycle_id=cycle.pk)
    for refused in ({"op": "close", "confirm_action": "1"}, {"op": "close", "reason": "all paid"}):
        client.post(act, refused)
        cycle.refresh_from_db()
        assert cycle.state == "paid", refused
    client.post(act, {"op": "close", "reason": "all paid", "confirm_action": "1"})
    cycle.refresh_from_db()
    assert cycle.state == "closed"
    assert AuditEvent.objects.get(action="cycle.close").reason == "all paid"
