"""Finance's cycle page tells the truth: its counts come from the queries the paying run pays from,
a dry run (page and command) writes nothing, approving needs a reason, and closing over held
payouts asks for confirmation. Driven through the admin over HTTP with the roles' real permissions."""

import json
import re
from io import StringIO

import pytest
from django.core.management import call_command

from creators.models import Payout, RevenueShareCycle
from creators.services.cycles import cycle_compute, cycle_submit
from creators.services.payouts import cycle_pay, payout_hold_place
from monetization.models import AuditEvent, JournalEntry

from .factories import engagement, make_creator, post_revenue, staff
from .test_payouts import AT, SEPT, approved_cycle

pytestmark = pytest.mark.django_db


def page(client, cycle) -> str:
    return client.get(f"/admin/creators/revenuesharecycle/{cycle.pk}/change/").content.decode()


def act(client, cycle, op, **data):
    return client.post(f"/admin/creators/revenuesharecycle/{cycle.pk}/act/", {"op": op, **data}, follow=True)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def plan_cell(html: str) -> str:
    return re.search(r'id="pay-plan">(.*?)</td>', html, re.S).group(1)


def test_held_count_and_what_the_run_pays_come_from_the_same_query(client):
    cycle = approved_cycle(15)
    client.force_login(staff("fin", "Finance"))
    html = page(client, cycle)
    assert "held by Compliance" not in html  # no holds: nobody is held
    assert plan_cell(html).startswith("15 payouts")
    held = Payout.objects.filter(cycle=cycle).order_by("id").first()
    payout_hold_place(payout_id=held.pk, kind="fraud", reason="bot traffic", actor=staff("carol", "Compliance"))
    html = page(client, cycle)
    assert "1 held by Compliance" in html
    assert plan_cell(html).startswith("14 payouts") and "held, not paid: 1" in plan_cell(html)
    assert cycle_pay(cycle_id=cycle.pk)["paid"] == 14
    held.refresh_from_db()
    assert held.status == "held"
    assert Payout.objects.filter(cycle=cycle, status="paid").count() == 14


def test_dry_run_from_the_page_and_the_command_writes_nothing(client):
    cycle = approved_cycle(4)
    statuses = list(Payout.objects.filter(cycle=cycle).values_list("id", "status"))
    entries = JournalEntry.objects.count()
    client.force_login(staff("fin", "Finance"))
    assert 'value="dry_run"' in page(client, cycle)
    shown = messages_of(act(client, cycle, "dry_run"))
    assert any("paying would pay 4 payouts" in m and "0 held" in m for m in shown), shown
    out = StringIO()
    call_command("cycle_dry_run", str(cycle.pk), stdout=out)
    plan = json.loads(out.getvalue())
    assert plan["run"] == "pay" and plan["payable_count"] == 4 and plan["held_count"] == 0
    assert list(Payout.objects.filter(cycle=cycle).values_list("id", "status")) == statuses
    assert JournalEntry.objects.count() == entries
    cycle.refresh_from_db()
    assert cycle.state == "approved"
    client.force_login(staff("sam", "Support"))
    assert 'value="dry_run"' not in page(client, cycle)
    assert any(m.startswith("You may not do this.") for m in messages_of(act(client, cycle, "dry_run")))


def test_dry_run_of_an_open_cycle_plans_the_computation():
    c = make_creator()
    engagement(c, SEPT, impressions=100)
    post_revenue("100.00", at=AT)
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    out = StringIO()
    call_command("cycle_dry_run", str(cycle.pk), stdout=out)
    plan = json.loads(out.getvalue())
    assert plan["run"] == "compute" and plan["creators"] == 1 and plan["pool"] != "0"
    cycle.refresh_from_db()
    assert cycle.state == "open" and not cycle.earnings.exists()


def test_approving_needs_a_reason(client):
    c = make_creator()
    engagement(c, SEPT, impressions=100)
    post_revenue("100.00", at=AT)
    alice, bob = staff("alice", "Finance"), staff("bob", "Finance")
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    cycle_compute(cycle_id=cycle.pk, actor=alice)
    cycle_submit(cycle_id=cycle.pk, actor=alice)
    client.force_login(bob)
    confirm = client.get(f"/admin/creators/revenuesharecycle/{cycle.pk}/act/?op=approve").content.decode()
    assert re.search(r'<textarea[^>]*name="reason"[^>]*required', confirm)
    refused = act(client, cycle, "approve", reason="  ", confirm_action="1")
    assert refused.status_code == 400 and "Give a reason" in refused.content.decode()
    cycle.refresh_from_db()
    assert cycle.state == "in_review" and not Payout.objects.filter(cycle=cycle).exists()
    act(client, cycle, "approve", reason="totals match the ledger", confirm_action="1")
    cycle.refresh_from_db()
    assert cycle.state == "approved" and cycle.approved_by == bob
    assert AuditEvent.objects.get(action="cycle.approve").reason == "totals match the ledger"


def test_closing_with_a_held_payout_asks_for_confirmation(client):
    cycle = approved_cycle(3)
    held = Payout.objects.filter(cycle=cycle).order_by("id").first()
    payout_hold_place(payout_id=held.pk, kind="fraud", reason="bot traffic", actor=staff("carol", "Compliance"))
    cycle_pay(cycle_id=cycle.pk)
    cycle.refresh_from_db()
    assert cycle.state == "paid"
    client.force_login(staff("fin", "Finance"))
    confirm = client.get(f"/admin/creators/revenuesharecycle/{cycle.pk}/act/?op=close").content.decode()
    assert re.search(r'name="confirm" value="1" required> Close with 1 payout', confirm)
    shown = messages_of(act(client, cycle, "close", reason="all paid", confirm_action="1"))
    assert any(m.startswith("Confirm it first.") and "held by Compliance" in m for m in shown)
    cycle.refresh_from_db()
    assert cycle.state == "paid"
    act(client, cycle, "close", confirm="1", reason="all paid", confirm_action="1")
    cycle.refresh_from_db()
    assert cycle.state == "closed"
    held.refresh_from_db()
    assert held.status == "held"  # still owed, still Compliance's


def test_closing_without_holds_needs_no_confirmation(client):
    cycle = approved_cycle(2)
    cycle_pay(cycle_id=cycle.pk)
    client.force_login(staff("fin", "Finance"))
    assert (
        'name="confirm"'
        not in client.get(f"/admin/creators/revenuesharecycle/{cycle.pk}/act/?op=close").content.decode()
    )
    act(client, cycle, "close", reason="all paid", confirm_action="1")
    cycle.refresh_from_db()
    assert cycle.state == "closed"
