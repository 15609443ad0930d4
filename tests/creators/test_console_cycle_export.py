"""Issue 14, console fault 6: the payouts CSV of a cycle under review lists what approving would pay,
not just a header."""

import csv
import io
import re

import pytest
from rest_framework.test import APIClient

from creators.models import CreatorEarning, Payout, RevenueShareCycle
from creators.services.cycles import cycle_approve, cycle_compute, cycle_submit
from creators.services.payouts import cycle_pay
from monetization.models import AuditEvent

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


def reviewed_cycle() -> tuple[RevenueShareCycle, object, object]:
    for i in range(2):
        engagement(make_creator(), SEPT, impressions=500 + i)
    post_revenue("1000.00", at=AT)
    alice, bob = staff("al", "Finance"), staff("bo", "Finance")
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    cycle_compute(cycle_id=cycle.pk, actor=alice)
    cycle_submit(cycle_id=cycle.pk, actor=alice)
    return cycle, alice, bob


def test_approving_and_closing_each_go_through_a_confirmation_page_with_a_required_reason(client):
    cycle, _, bob = reviewed_cycle()
    client.force_login(bob)
    act = f"/admin/creators/revenuesharecycle/{cycle.pk}/act/"
    page = client.get(f"/admin/creators/revenuesharecycle/{cycle.pk}/change/").content.decode()
    # The cycle page only leads to the confirmation page: no approve form posts from it.
    assert 'method="get" action="' + act + '"' in page and 'value="approve">' in page
    assert 'name="confirm_action"' not in page
    confirm = client.get(act + "?op=approve")
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert re.search(r'<textarea[^>]*name="reason"[^>]*maxlength="2000" required', html)
    assert 'name="confirm_action" value="1" required' in html and "payable to 2 creators" in html

    for refused, shown in (
        ({"reason": "figures ok"}, "Confirm it first."),
        ({"confirm_action": "1"}, "Give a reason."),
        ({"reason": "   ", "confirm_action": "1"}, "Give a reason."),
        ({"reason": "x" * 2001, "confirm_action": "1"}, "The reason is too long."),
    ):
        answer = client.post(act, {"op": "approve", **refused})
        assert answer.status_code == 400 and shown in answer.content.decode(), refused
        assert 'id="cycle-confirm"' in answer.content.decode()  # the same page again, nothing written
        cycle.refresh_from_db()
        assert cycle.state == "in_review" and not Payout.objects.filter(cycle=cycle).exists()
    assert not AuditEvent.objects.filter(action="cycle.approve").exists()

    client.post(act, {"op": "approve", "reason": "figures ok", "confirm_action": "1"})
    cycle.refresh_from_db()
    assert cycle.state == "approved"
    assert AuditEvent.objects.get(action="cycle.approve").reason == "figures ok"

    cycle_pay(cycle_id=cycle.pk)
    assert client.get(act + "?op=close").status_code == 200
    for refused in ({"confirm_action": "1"}, {"reason": "all paid"}):
        assert client.post(act, {"op": "close", **refused}).status_code == 400
        cycle.refresh_from_db()
        assert cycle.state == "paid", refused
    client.post(act, {"op": "close", "reason": "all paid", "confirm_action": "1"})
    cycle.refresh_from_db()
    assert cycle.state == "closed"
    assert AuditEvent.objects.get(action="cycle.close").reason == "all paid"


def test_the_confirmation_page_is_not_offered_to_who_may_not_approve(client):
    cycle, alice, _ = reviewed_cycle()
    for user in (alice, staff("sue", "Support")):  # four-eyes; no permission
        client.force_login(user)
        answer = client.get(f"/admin/creators/revenuesharecycle/{cycle.pk}/act/?op=approve")
        assert answer.status_code == 302


def test_the_staff_api_needs_the_same_confirmation_and_reason():
    cycle, _, bob = reviewed_cycle()
    api = APIClient()
    api.force_login(bob)
    url = f"/api/v1/staff/cycles/{cycle.pk}"
    unconfirmed = api.post(f"{url}/approve", {"reason": "figures ok"}, format="json")
    assert unconfirmed.status_code == 400 and unconfirmed.json()["code"] == "confirmation_required"
    too_long = api.post(f"{url}/approve", {"reason": "x" * 2001, "confirm": True}, format="json")
    assert too_long.status_code == 400 and too_long.json()["code"] == "reason_too_long"
    cycle.refresh_from_db()
    assert cycle.state == "in_review" and not AuditEvent.objects.filter(action="cycle.approve").exists()
    assert api.post(f"{url}/approve", {"reason": "figures ok", "confirm": True}, format="json").status_code == 200

    cycle_pay(cycle_id=cycle.pk)
    no_reason = api.post(f"{url}/close", {"confirm": True}, format="json")
    assert no_reason.status_code == 400 and no_reason.json()["code"] == "reason_required"
    unconfirmed = api.post(f"{url}/close", {"reason": "all paid"}, format="json")
    assert unconfirmed.status_code == 400 and unconfirmed.json()["code"] == "confirmation_required"
    cycle.refresh_from_db()
    assert cycle.state == "paid"
    closed = api.post(f"{url}/close", {"reason": "all paid", "confirm": True}, format="json")
    assert closed.status_code == 200 and closed.json()["state"] == "closed"
    assert AuditEvent.objects.get(action="cycle.close").reason == "all paid"


def test_the_cycle_chart_names_its_axes_and_lists_its_counts_beside_it(client):
    cycle, _, bob = reviewed_cycle()
    client.force_login(bob)
    html = client.get(f"/admin/creators/revenuesharecycle/{cycle.pk}/change/").content.decode()
    start = html.index('<svg xmlns="http://www.w3.org/2000/svg"')
    svg = html[start : html.index("</svg>", start)]
    assert ">creators (peak " in svg and "earnings per creator" in svg
    table = html[html.index('id="histogram-counts"') :]
    table = table[: table.index("</table>")]
    counts = [int(n) for n in re.findall(r"<td>(\d+)</td></tr>", table)]
    assert counts[-1] == 2 == sum(counts[:-1])  # each bucket's count, then all of them
