"""Console fault 8: holds are placed and lifted from the creator's page by who may, Payouts are found by a
part of the creator's handle in any case, and a very long reason neither passes nor widens a page."""

import pytest
from rest_framework.test import APIClient

from creators.models import Payout, PayoutHold
from monetization.models import AuditEvent
from tests.monetization.factories import CustomerFactory

from .factories import make_creator, staff
from .test_payouts import approved_cycle

pytestmark = pytest.mark.django_db


def creator_page(client, creator_id) -> str:
    return client.get(f"/admin/creators/creatoraccount/{creator_id}/change/").content.decode()


def post_hold(client, creator_id, **data):
    return client.post(f"/admin/creators/creatoraccount/{creator_id}/holds/", data, follow=True)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_compliance_places_and_lifts_a_hold_from_the_creator_page(client):
    cycle = approved_cycle(2)
    payout, other = Payout.objects.filter(cycle=cycle).order_by("id")
    creator = payout.creator_id
    compliance = staff("cora", "Compliance")
    client.force_login(compliance)
    html = creator_page(client, creator)
    assert 'id="hold-place"' in html and f'<option value="{payout.pk}">' in html
    assert f'<option value="{other.pk}">' not in html  # someone else's payout

    shown = messages_of(post_hold(client, creator, op="place", payout_id=payout.pk, kind="fraud", reason="bot likes"))
    assert shown == [f"Hold placed on payout #{payout.pk}."]
    hold = PayoutHold.objects.get(payout=payout, lifted_at__isnull=True)
    assert (hold.kind, hold.reason, hold.placed_by) == ("fraud", "bot likes", compliance)
    assert Payout.objects.get(pk=payout.pk).status == "held"
    html = creator_page(client, creator)
    assert "bot likes" in html and f'name="hold_id" value="{hold.pk}"' in html

    refused = messages_of(post_hold(client, creator, op="lift", hold_id=hold.pk, reason=""))
    assert refused == ["Give a reason. A hold needs a reason."]
    assert PayoutHold.objects.get(pk=hold.pk).lifted_at is None
    # A hold of another creator cannot be lifted through this page.
    other_hold = PayoutHold.objects.create(payout=other, kind="fraud", reason="other")
    post_hold(client, creator, op="lift", hold_id=other_hold.pk, reason="nope")
    assert PayoutHold.objects.get(pk=other_hold.pk).lifted_at is None

    assert messages_of(post_hold(client, creator, op="lift", hold_id=hold.pk, reason="verified")) == ["Hold lifted."]
    hold.refresh_from_db()
    assert hold.lifted_by == compliance and hold.lift_reason == "verified"
    assert Payout.objects.get(pk=payout.pk).status == "approved"
    reasons = dict(AuditEvent.objects.filter(actor=compliance).values_list("action", "reason"))
    assert reasons == {"payout.hold": "bot likes", "payout.hold_lift": "verified"}


@pytest.mark.parametrize("role", ["Finance", "Support"])
def test_who_may_not_hold_reads_the_holds_without_forms_and_is_refused(client, role):
    cycle = approved_cycle(1)
    payout = Payout.objects.get(cycle=cycle)
    hold = PayoutHold.objects.create(payout=payout, kind="fraud", reason="under review")
    Payout.objects.filter(pk=payout.pk).update(status="held")
    client.force_login(staff("someone", role))
    html = creator_page(client, payout.creator_id)
    assert "under review" in html
    assert 'id="hold-place"' not in html and 'name="hold_id"' not in html
    shown = messages_of(post_hold(client, payout.creator_id, op="lift", hold_id=hold.pk, reason="please"))
    assert shown and shown[0].startswith("You may not do this.")
    assert PayoutHold.objects.get(pk=hold.pk).lifted_at is None


def test_payouts_are_found_by_part_of_the_creators_handle_in_any_case(client):
    cycle = approved_cycle(2)
    mine, theirs = Payout.objects.filter(cycle=cycle).order_by("id")
    wanted = make_creator(customer=CustomerFactory(handle="AliceCreates", email="alice@example.com"))
    Payout.objects.filter(pk=mine.pk).update(creator=wanted)
    Payout.objects.filter(pk=theirs.pk).update(creator=make_creator(customer=CustomerFactory(handle="BobPosts")))
    client.force_login(staff("comp", "Compliance"))
    for term in ("alicecr", "@ALICE", "iceCRE", "AliceCreates", "ALICE@EXAMPLE.COM"):
        html = client.get("/admin/creators/payout/", {"q": term}).content.decode()
        assert f"/admin/creators/payout/{mine.pk}/change/" in html, term
        assert f"/admin/creators/payout/{theirs.pk}/change/" not in html, term
    # A number is still a payout's id.
    html = client.get("/admin/creators/payout/", {"q": str(theirs.pk)}).content.decode()
    assert f"/admin/creators/payout/{theirs.pk}/change/" in html


def test_a_reason_above_the_cap_is_refused_everywhere_with_a_code(client):
    cycle = approved_cycle(1)
    payout = Payout.objects.get(cycle=cycle)
    compliance = staff("cap", "Compliance")
    client.force_login(compliance)
    shown = messages_of(
        post_hold(client, payout.creator_id, op="place", payout_id=payout.pk, kind="fraud", reason="y" * 100_000)
    )
    assert shown[0].startswith("The reason is too long.") and "100,000" in shown[0]
    api = APIClient()
    api.force_login(compliance)
    answer = api.post(
        f"/api/v1/staff/payouts/{payout.pk}/holds", {"kind": "fraud", "reason": "y" * 2001}, format="json"
    )
    assert answer.status_code == 400 and answer.json()["code"] == "reason_too_long"
    assert answer.json()["max_length"] == 2000
    assert not PayoutHold.objects.exists() and Payout.objects.get(pk=payout.pk).status == "approved"
    placed = api.post(
        f"/api/v1/staff/payouts/{payout.pk}/holds", {"kind": "fraud", "reason": "y" * 2000}, format="json"
    )
    assert placed.status_code == 201


def test_a_long_reason_is_cut_in_lists_and_whole_on_its_own_page(client):
    cycle = approved_cycle(1)
    payout = Payout.objects.get(cycle=cycle)
    # A reason from before the cap, without a space to break at.
    long = "z" * 100_000
    hold = PayoutHold.objects.create(payout=payout, kind="fraud", reason=long)
    AuditEvent.objects.create(
        actor_kind="system", action="payout.hold", object_type="creators.payout", object_id=str(payout.pk), reason=long
    )
    client.force_login(staff("reader", "Compliance"))
    section = creator_page(client, payout.creator_id)
    section = section[section.index('id="payouts-and-holds"') :]
    assert "z" * 201 not in section and f"/admin/creators/payouthold/{hold.pk}/change/" in section
    trail = client.get("/admin/monetization/auditevent/").content.decode()
    assert "z" * 61 not in trail and "z" * 60 in trail
    detail = client.get(f"/admin/creators/payouthold/{hold.pk}/change/").content.decode()
    assert long in detail
    # The page wraps what it shows whole instead of widening (the rule every admin page carries).
    assert "#content .readonly { overflow-wrap: anywhere; }" in detail
