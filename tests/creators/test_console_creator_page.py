"""Issue 14, console fault 7 (creators): the review buttons say what they do, and none moves an account
into the state it is already in (no "ban" for a banned creator)."""

import re

import pytest

from creators.models import CreatorAccount, Payout

from .factories import make_creator, staff

pytestmark = pytest.mark.django_db


def buttons(client, creator) -> dict[str, str]:
    html = client.get(f"/admin/creators/creatoraccount/{creator.pk}/change/").content.decode()
    return dict(re.findall(r'<button type="submit" name="transition" value="([a-z_]+)">([^<]+)</button>', html))


def test_review_buttons_are_labelled_and_skip_the_current_state(client):
    client.force_login(staff("c1", "Compliance"))
    active = buttons(client, make_creator(CreatorAccount.State.ACTIVE))
    assert "ban" in active and "suspend" in active
    assert all("_" not in label and label[0].isupper() for label in active.values()), active
    banned = buttons(client, make_creator(CreatorAccount.State.BANNED))
    assert "ban" not in banned
    eligible = buttons(client, make_creator(CreatorAccount.State.ELIGIBLE))
    assert "mark_eligible" not in eligible


def test_payouts_are_found_by_the_creators_handle(client):
    from tests.creators.test_payouts import approved_cycle

    cycle = approved_cycle(2)
    first, second = Payout.objects.filter(cycle=cycle).select_related("creator__customer").order_by("id")
    client.force_login(staff("c2", "Compliance"))
    for term in (first.creator.customer.handle, f"@{first.creator.customer.handle}"):
        html = client.get("/admin/creators/payout/", {"q": term}).content.decode()
        assert f"/admin/creators/payout/{first.pk}/change/" in html, term
        assert f"/admin/creators/payout/{second.pk}/change/" not in html, term


def test_the_creator_page_shows_holds_in_place_and_links_each_payout(client):
    from creators.services.payouts import payout_hold_place
    from tests.creators.test_payouts import approved_cycle

    cycle = approved_cycle(2)
    payout = Payout.objects.filter(cycle=cycle).order_by("id").first()
    compliance = staff("c3", "Compliance")
    payout_hold_place(payout_id=payout.pk, kind="fraud", reason="x" * 1999, actor=compliance)
    client.force_login(compliance)
    html = client.get(f"/admin/creators/creatoraccount/{payout.creator_id}/change/").content.decode()
    section = html[html.index('id="payouts-and-holds"') :]
    assert f"/admin/creators/payout/{payout.pk}/change/" in section
    assert "Fraud" in section or "fraud" in section
    assert "x" * 1999 not in section  # a long reason is cut, the payout page has it whole
