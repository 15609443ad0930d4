"""The staff API has every staff action of the admin: organizations, creators, payout holds, cycles,
webhook replay. Each goes through the admin's services: the role's permission (else 403 with a code),
a reason where the admin asks one (else 400, nothing changed), four-eyes, and an audit event."""

from __future__ import annotations

import datetime

import pytest
from rest_framework.test import APIClient

from creators.models import CreatorAccount, Payout, PayoutHold, RevenueShareCycle
from creators.services.cycles import cycle_compute
from monetization import clock
from monetization.models import AuditEvent, WebhookEvent
from tests.creators.factories import engagement, make_creator, post_revenue, staff
from tests.verified_orgs.factories import applied_org, org_catalog, verified_org
from verified_orgs.models import Organization

pytestmark = pytest.mark.django_db

BASE = "/api/v1/staff"
SEPT = datetime.date(2026, 9, 1)
ROLES = ("Support", "Finance", "Compliance")


@pytest.fixture(autouse=True)
def _billing(stripe_billing_double):
    return stripe_billing_double  # verifying an organization starts its Stripe billing


def as_user(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


_n = iter(range(10**6))


def role_user(role: str):
    return staff(f"{role.lower()}-{next(_n)}", role)


def audited(action: str, actor, object_id) -> bool:
    return AuditEvent.objects.filter(action=action, actor=actor, object_id=str(object_id)).exists()


def computed_cycle(computer) -> RevenueShareCycle:
    for i in range(2):
        engagement(make_creator(), SEPT, impressions=1000 + i * 37)
    post_revenue("10000.00", at=datetime.datetime(2026, 9, 10, tzinfo=datetime.UTC))
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    cycle_compute(cycle_id=cycle.pk, actor=computer)
    return cycle


# --- who may do what -----------------------------------------------------------------------------------

# (method path template, body, the role allowed). {org}, {creator}, {cycle}, {payout}, {hold}, {event}.
MATRIX = [
    ("organizations/{org}/start_review", {}, "Compliance"),
    ("organizations/{org}/reject", {"reason": "r"}, "Compliance"),
    ("organizations/{org}/cancel", {"reason": "r"}, "Compliance"),
    ("org-invoices/1/void", {"reason": "r"}, "Finance"),
    ("creators/{creator}/suspend", {"reason": "r"}, "Compliance"),
    ("creators/{creator}/ban", {"reason": "r"}, "Compliance"),
    ("creators/{creator}/mark_ineligible", {"reason": "r"}, "Compliance"),
    ("creators/{creator}/evaluate", {}, "Compliance"),
    ("payouts/1/holds", {"kind": "fraud", "reason": "r"}, "Compliance"),
    ("payout-holds/1/lift", {"reason": "r"}, "Compliance"),
    ("payouts/1/retry", {}, "Finance"),
    ("cycles", {"period": "2026-11-01"}, "Finance"),
    ("cycles/{cycle}/compute", {}, "Finance"),
    ("cycles/{cycle}/approve", {"reason": "r", "confirm": True}, "Finance"),
    ("cycles/{cycle}/close", {"reason": "r", "confirm": True}, "Finance"),
    ("cycles/{cycle}/dry-run", {}, "Finance"),
    ("webhook-events/{event}/replay", {"reason": "r"}, "Support"),
]


@pytest.mark.parametrize("path,body,allowed", MATRIX, ids=[m[0] for m in MATRIX])
def test_each_action_is_refused_to_the_roles_without_its_permission(path, body, allowed):
    ids = {
        "org": applied_org().pk,
        "creator": make_creator().pk,
        "cycle": RevenueShareCycle.objects.create(period=datetime.date(2026, 10, 1)).pk,
        "event": 1,
    }
    url = f"{BASE}/{path.format(**ids)}"
    for role in ROLES:
        response = as_user(role_user(role)).post(url, body, format="json")
        if role == allowed:
            assert response.status_code != 403, (role, url, response.json())
        else:
            assert response.status_code == 403, (role, url, response.status_code)
            assert response.json()["code"] == "permission_denied"
    assert APIClient().post(url, body, format="json").status_code in (401, 403)


# --- organizations ---------------------------------------------------------------------------------------


def test_compliance_reviews_verifies_suspends_reinstates_and_cancels_an_organization():
    org_catalog()
    compliance = role_user("Compliance")
    client = as_user(compliance)
    org = applied_org()
    url = f"{BASE}/organizations/{org.pk}"
    assert client.post(f"{url}/start_review", {}, format="json").json()["state"] == "in_review"
    verified = client.post(f"{url}/verify", {"reason": "documents check out"}, format="json")
    assert verified.status_code == 200 and verified.json()["state"] == "verified"
    org.refresh_from_db()
    assert org.subscription_id is not None  # billing started, as from the admin
    refused = client.post(f"{url}/suspend", {}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "reason_required"
    assert Organization.objects.get(pk=org.pk).state == "verified"
    assert client.post(f"{url}/suspend", {"reason": "fraud report"}, format="json").json()["state"] == "suspended"
    assert client.post(f"{url}/reinstate", {"reason": "cleared"}, format="json").json()["state"] == "verified"
    assert client.post(f"{url}/cancel", {"reason": "asked to leave"}, format="json").json()["state"] == "cancelled"
    again = client.post(f"{url}/verify", {"reason": "x"}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "illegal_transition"
    for action in ("start_review", "verify", "suspend", "reinstate", "cancel"):
        assert AuditEvent.objects.filter(actor=compliance, object_id=str(org.pk), action__endswith=action).exists()


def test_compliance_rejects_an_application_with_a_reason():
    compliance = role_user("Compliance")
    org = applied_org()
    response = as_user(compliance).post(
        f"{BASE}/organizations/{org.pk}/reject", {"reason": "no registration"}, format="json"
    )
    assert response.status_code == 200 and response.json()["state"] == "rejected"
    assert response.json()["state_reason"] == "no registration"
    assert AuditEvent.objects.filter(actor=compliance, object_id=str(org.pk), reason="no registration").exists()


def test_unknown_organization_or_action_is_json_404():
    client = as_user(role_user("Compliance"))
    assert client.post(f"{BASE}/organizations/999999/verify", {}, format="json").json()["code"] == "not_found"
    assert client.post(f"{BASE}/organizations/1/approve", {}, format="json").json()["code"] == "not_found"
    assert verified_org().state == "verified"  # the factory and the API use the same services


# --- creators ----------------------------------------------------------------------------------------------


def test_compliance_suspends_reinstates_and_bans_a_creator_with_reasons():
    compliance = role_user("Compliance")
    client = as_user(compliance)
    creator = make_creator()
    url = f"{BASE}/creators/{creator.pk}"
    refused = client.post(f"{url}/suspend", {"reason": " "}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "reason_required"
    assert client.post(f"{url}/suspend", {"reason": "spam"}, format="json").json()["state"] == "suspended"
    assert client.post(f"{url}/reinstate", {"reason": "appeal"}, format="json").json()["state"] == "active"
    assert client.post(f"{url}/ban", {"reason": "fraud"}, format="json").json()["state"] == "banned"
    twice = client.post(f"{url}/ban", {"reason": "fraud"}, format="json")
    assert twice.status_code == 409 and twice.json()["code"] == "illegal_transition"
    assert CreatorAccount.objects.get(pk=creator.pk).state == "banned"
    for action in ("suspend", "reinstate", "ban"):
        assert audited(f"creator.{action}", compliance, creator.pk)


def test_compliance_marks_eligibility_and_re_evaluates():
    compliance = role_user("Compliance")
    client = as_user(compliance)
    creator = make_creator(state=CreatorAccount.State.APPLIED)
    url = f"{BASE}/creators/{creator.pk}"
    assert client.post(f"{url}/mark_ineligible", {"reason": "no tax form"}, format="json").json()["state"] == (
        "ineligible"
    )
    assert audited("creator.mark_ineligible", compliance, creator.pk)
    evaluated = client.post(f"{url}/evaluate", {}, format="json")
    assert evaluated.status_code == 200
    assert creator.eligibility_decisions.count() == 1
    assert client.post(f"{BASE}/creators/999999/evaluate", {}, format="json").status_code == 404


# --- payout holds ------------------------------------------------------------------------------------------


def test_compliance_places_and_lifts_a_hold_on_a_payout():
    alice, bob = role_user("Finance"), role_user("Finance")
    cycle = computed_cycle(alice)
    as_user(alice).post(f"{BASE}/cycles/{cycle.pk}/submit", {}, format="json")
    assert (
        as_user(bob)
        .post(f"{BASE}/cycles/{cycle.pk}/approve", {"reason": "ok", "confirm": True}, format="json")
        .status_code
        == 200
    )
    payout = Payout.objects.filter(cycle=cycle).order_by("id").first()
    compliance = role_user("Compliance")
    client = as_user(compliance)
    bad_kind = client.post(f"{BASE}/payouts/{payout.pk}/holds", {"kind": "vibes", "reason": "x"}, format="json")
    assert bad_kind.status_code == 400 and bad_kind.json()["code"] == "invalid_input"
    placed = client.post(f"{BASE}/payouts/{payout.pk}/holds", {"kind": "fraud", "reason": "bots"}, format="json")
    assert placed.status_code == 201, placed.json()
    hold = PayoutHold.objects.get(pk=placed.json()["id"])
    assert (hold.kind, hold.reason, hold.placed_by) == ("fraud", "bots", compliance)
    assert Payout.objects.get(pk=payout.pk).status == "held"
    no_reason = client.post(f"{BASE}/payout-holds/{hold.pk}/lift", {"reason": ""}, format="json")
    assert no_reason.status_code == 400 and no_reason.json()["code"] == "invalid_input"
    lifted = client.post(f"{BASE}/payout-holds/{hold.pk}/lift", {"reason": "verified"}, format="json")
    assert lifted.status_code == 200 and lifted.json()["status"] == "approved"
    assert AuditEvent.objects.filter(actor=compliance, action__startswith="payout.hold").count() == 2


# --- cycles -------------------------------------------------------------------------------------------------


def test_finance_takes_a_cycle_from_open_to_closed_with_four_eyes():
    alice, bob = role_user("Finance"), role_user("Finance")
    opened = as_user(alice).post(f"{BASE}/cycles", {"period": "2026-11-17"}, format="json")
    assert opened.status_code == 201 and opened.json()["period"] == "2026-11-01"
    computing = as_user(alice).post(f"{BASE}/cycles/{opened.json()['id']}/compute", {}, format="json")
    # The run is queued inside the request (creators/runs.py); tasks run eagerly here, so it has run:
    # the cycle is computed and records alice as who computed it.
    assert computing.status_code == 200 and computing.json()["state"] == "computed"
    assert RevenueShareCycle.objects.get(pk=opened.json()["id"]).computed_by == alice
    assert audited("cycle.compute_requested", alice, opened.json()["id"])

    cycle = computed_cycle(alice)
    url = f"{BASE}/cycles/{cycle.pk}"
    dry = as_user(alice).post(f"{url}/dry-run", {}, format="json")
    assert dry.status_code == 200 and dry.json()["run"] == "pay"
    assert as_user(alice).post(f"{url}/submit", {}, format="json").json()["state"] == "in_review"
    own = as_user(alice).post(f"{url}/approve", {"reason": "fine", "confirm": True}, format="json")
    assert own.status_code == 403 and own.json()["code"] == "four_eyes_required"
    no_reason = as_user(bob).post(f"{url}/approve", {}, format="json")
    assert no_reason.status_code == 400 and no_reason.json()["code"] == "reason_required"
    assert RevenueShareCycle.objects.get(pk=cycle.pk).state == "in_review"
    approved = as_user(bob).post(f"{url}/approve", {"reason": "figures reviewed", "confirm": True}, format="json")
    assert approved.status_code == 200 and approved.json()["state"] == "approved"
    assert approved.json()["approved_by"] == bob.pk
    assert AuditEvent.objects.get(action="cycle.approve", actor=bob).reason == "figures reviewed"
    early = as_user(bob).post(f"{url}/close", {"reason": "done", "confirm": True}, format="json")
    assert early.status_code == 409  # an approved cycle is paid before it is closed
    paying = as_user(bob).post(f"{url}/pay", {}, format="json")
    assert paying.status_code == 200 and paying.json()["state"] == "paid"
    assert AuditEvent.objects.get(action="cycle.pay_requested").actor == bob


def test_finance_rejects_and_reopens_with_a_reason():
    alice, bob = role_user("Finance"), role_user("Finance")
    cycle = computed_cycle(alice)
    url = f"{BASE}/cycles/{cycle.pk}"
    as_user(alice).post(f"{url}/submit", {}, format="json")
    no_reason = as_user(bob).post(f"{url}/reject", {}, format="json")
    assert no_reason.status_code == 400 and RevenueShareCycle.objects.get(pk=cycle.pk).state == "in_review"
    rejected = as_user(bob).post(f"{url}/reject", {"reason": "pool looks wrong"}, format="json")
    assert rejected.status_code == 200 and rejected.json()["state"] == "computed"
    assert AuditEvent.objects.filter(actor=bob, object_id=str(cycle.pk), reason="pool looks wrong").exists()
    reopened = as_user(bob).post(f"{url}/reopen", {"reason": "recompute with late engagement"}, format="json")
    assert reopened.status_code == 200 and reopened.json()["state"] == "open"
    assert audited("cycle.reopen", bob, cycle.pk)


# --- webhook replay ----------------------------------------------------------------------------------------


def test_support_replays_a_failed_webhook_event(django_capture_on_commit_callbacks):
    event = WebhookEvent.objects.create(
        provider="stripe",
        event_id="evt_staffapi_replay",
        event_type="invoice.paid",
        occurred_at=clock.now(),
        payload={},
        status=WebhookEvent.Status.FAILED,
        attempts=5,
        last_error="subscription unknown",
    )
    support = role_user("Support")
    client = as_user(support)
    assert client.post(f"{BASE}/webhook-events/{event.pk}/replay", {}, format="json").status_code == 400
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post(f"{BASE}/webhook-events/{event.pk}/replay", {"reason": "subject exists"}, format="json")
    assert response.status_code == 200 and response.json()["attempts"] == 0 and len(queued) == 1
    assert AuditEvent.objects.get(action="webhook.replay", actor=support).reason == "subject exists"
    WebhookEvent.objects.filter(pk=event.pk).update(status=WebhookEvent.Status.APPLIED)
    done = client.post(f"{BASE}/webhook-events/{event.pk}/replay", {"reason": "again"}, format="json")
    assert done.status_code == 409 and done.json()["code"] == "webhook_not_replayable"
    assert client.post(f"{BASE}/webhook-events/999999/replay", {"reason": "x"}, format="json").status_code == 404
