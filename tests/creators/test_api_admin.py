import csv
import datetime
import io

import pytest

from creators.models import Payout, RevenueShareCycle
from creators.services.cycles import cycle_approve, cycle_compute, cycle_submit
from creators.services.eligibility import eligibility_evaluate
from creators.services.payouts import cycle_pay
from tests.monetization.factories import CustomerFactory

from .factories import engagement, make_creator, post_revenue, staff

pytestmark = pytest.mark.django_db
SEPT = datetime.date(2026, 9, 1)
AT = datetime.datetime(2026, 9, 10, tzinfo=datetime.UTC)


@pytest.fixture
def paid_cycle():
    a, b = make_creator(), make_creator()
    engagement(a, SEPT, impressions=30_000)
    engagement(b, SEPT, impressions=300)
    for d in range(2, 12):  # a sudden jump for b on the 12th
        engagement(b, SEPT.replace(day=d), impressions=300)
    engagement(b, SEPT.replace(day=12), impressions=30_000)
    post_revenue("400.00", at=AT)
    alice, bob = staff("alice", "Finance"), staff("bob", "Finance")
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    cycle_compute(cycle_id=cycle.pk, actor=alice)
    cycle_submit(cycle_id=cycle.pk, actor=alice)
    cycle_approve(cycle_id=cycle.pk, actor=bob, reason="figures reviewed")
    cycle_pay(cycle_id=cycle.pk)
    return cycle, a, b, alice, bob


def test_creator_reads_earnings_payouts_and_eligibility(client_with_scopes, paid_cycle):
    _cycle, a, *_ = paid_cycle
    client = client_with_scopes("creators:read")
    headers = {"HTTP_X_ACTING_CUSTOMER": a.customer.external_id}
    r = client.get("/api/v1/creators/me/earnings", **headers)
    assert r.status_code == 200, r.content
    [earning] = r.json()["results"]
    assert earning["cycle"] == "2026-09" and earning["currency"] == "USD"
    r = client.get("/api/v1/creators/me/payouts", **headers)
    [payout] = r.json()["results"]
    assert payout["status"] == "paid" and payout["amount"] == earning["payable"]
    eligibility_evaluate(creator_id=a.pk)
    r = client.get("/api/v1/creators/me/eligibility", **headers)
    body = r.json()
    assert body["eligible"] is False and body["reasons"]["premium"]["passed"] is False


def test_creator_api_errors(client_with_scopes, paid_cycle):
    client = client_with_scopes("creators:read")
    r = client.get("/api/v1/creators/me/earnings")
    assert (r.status_code, r.json()["code"]) == (400, "acting_customer_required")
    r = client.get("/api/v1/creators/me/earnings", HTTP_X_ACTING_CUSTOMER="nobody")
    assert (r.status_code, r.json()["code"]) == (404, "acting_customer_not_found")
    r = client.get("/api/v1/creators/me/earnings", HTTP_X_ACTING_CUSTOMER=CustomerFactory().external_id)
    assert (r.status_code, r.json()["code"]) == (404, "not_found")  # a customer, but no creator
    client = client_with_scopes("engagement:write")
    r = client.get("/api/v1/creators/me/earnings", HTTP_X_ACTING_CUSTOMER="nobody")
    assert r.status_code == 403


def test_finance_cycle_page_shows_totals_chart_top_earners_anomalies(client, paid_cycle):
    cycle, _a, b, _alice, bob = paid_cycle
    client.force_login(bob)
    r = client.get(f"/admin/creators/revenuesharecycle/{cycle.pk}/change/")
    assert r.status_code == 200
    html = r.content.decode()
    assert "<svg" in html and "Top earners" in html and "Flagged anomalies" in html
    assert f"#{b.pk}</a>" in html  # the jump on the 12th is flagged
    assert "Export payouts" in html


def test_csv_export_streams_payouts_and_needs_permission(client, paid_cycle):
    cycle, *_, alice, _bob = paid_cycle
    client.force_login(alice)
    r = client.get(f"/admin/creators/revenuesharecycle/{cycle.pk}/payouts.csv")
    assert r.status_code == 200 and r.streaming
    rows = list(csv.reader(io.StringIO(b"".join(r.streaming_content).decode())))
    assert rows[0][:3] == ["payout_id", "creator_id", "customer_external_id"]
    assert len(rows) == 1 + Payout.objects.filter(cycle=cycle).count()
    support = staff("sam", "Support")
    client.force_login(support)
    assert client.get(f"/admin/creators/revenuesharecycle/{cycle.pk}/payouts.csv").status_code == 403


def test_admin_approve_respects_four_eyes(client):
    c = make_creator()
    engagement(c, SEPT, impressions=10)
    post_revenue("100.00", at=AT)
    alice, bob = staff("alice", "Finance"), staff("bob", "Finance")
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    cycle_compute(cycle_id=cycle.pk, actor=alice)
    cycle_submit(cycle_id=cycle.pk, actor=alice)
    client.force_login(alice)
    page = client.get(f"/admin/creators/revenuesharecycle/{cycle.pk}/change/").content.decode()
    assert "four-eyes" in page
    client.post(f"/admin/creators/revenuesharecycle/{cycle.pk}/act/", {"op": "approve"})
    cycle.refresh_from_db()
    assert cycle.state == "in_review"
    client.force_login(bob)
    client.post(f"/admin/creators/revenuesharecycle/{cycle.pk}/act/", {"op": "reject"})  # no reason: refused
    cycle.refresh_from_db()
    assert cycle.state == "in_review"
    approve = {"op": "approve", "reason": "checked", "confirm_action": "1"}  # the page's confirmation ticked
    client.post(f"/admin/creators/revenuesharecycle/{cycle.pk}/act/", approve)
    cycle.refresh_from_db()
    assert cycle.state == "approved" and cycle.approved_by == bob


def test_compliance_holds_from_the_payout_page(client):
    c = make_creator()
    engagement(c, SEPT, impressions=10)
    post_revenue("100.00", at=AT)
    alice, bob = staff("alice", "Finance"), staff("bob", "Finance")
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    cycle_compute(cycle_id=cycle.pk, actor=alice)
    cycle_submit(cycle_id=cycle.pk, actor=alice)
    cycle_approve(cycle_id=cycle.pk, actor=bob, reason="figures reviewed")
    payout = Payout.objects.get(cycle=cycle)
    carol = staff("carol", "Compliance")
    client.force_login(carol)
    assert client.get(f"/admin/creators/payout/{payout.pk}/change/").status_code == 200
    client.post(f"/admin/creators/payout/{payout.pk}/hold/", {"op": "place", "kind": "fraud", "reason": "bots"})
    payout.refresh_from_db()
    assert payout.status == "held"
    hold = payout.holds.get()
    client.post(f"/admin/creators/payout/{payout.pk}/hold/", {"op": "lift", "hold_id": hold.pk, "reason": "ok"})
    payout.refresh_from_db()
    assert payout.status == "approved"


def test_creator_admin_page_and_compliance_suspend(client):
    c = make_creator()
    carol = staff("carol", "Compliance")
    client.force_login(carol)
    assert client.get(f"/admin/creators/creatoraccount/{c.pk}/change/").status_code == 200
    client.post(f"/admin/creators/creatoraccount/{c.pk}/transition/", {"transition": "suspend", "reason": "abuse"})
    c.refresh_from_db()
    assert c.state == "suspended"


def test_finance_opens_a_cycle_from_the_admin_through_the_service(client):
    bob = staff("bob", "Finance")
    client.force_login(bob)
    r = client.post("/admin/creators/revenuesharecycle/add/", {"period": "2026-11-17"})
    assert r.status_code == 302, r.content[:2000]
    cycle = RevenueShareCycle.objects.get()
    assert cycle.period == datetime.date(2026, 11, 1)
    from monetization.models import AuditEvent

    assert AuditEvent.objects.filter(action="cycle.open", object_id=str(cycle.pk)).exists()
    page = client.get(f"/admin/creators/revenuesharecycle/{cycle.pk}/change/")
    assert page.status_code == 200 and b"Compute" in page.content
