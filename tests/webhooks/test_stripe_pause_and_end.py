"""Stripe's pause (pause_collection on an ``active`` subscription) and its ended subscriptions, over HTTP."""

import pytest

from subscriptions.models import Subscription
from subscriptions.services.actions import subscription_pause

from .support import post_stripe, stripe_subscription_event

pytestmark = pytest.mark.django_db(transaction=True)
SUB = "sub_1QwebPremium0000000001"
T = 1767225600
VOID = {"behavior": "void", "resumes_at": None}


def _sub() -> Subscription:
    return Subscription.objects.get(provider="stripe", provider_subscription_id=SUB)


def test_pause_collection_is_paused_and_survives_later_updates_until_cleared(client, catalog, customers):
    post_stripe(client, stripe_subscription_event(event_id="evt_p0", created=T, status="active"))
    post_stripe(client, stripe_subscription_event(event_id="evt_p1", created=T + 60, pause_collection=VOID))
    assert _sub().state == Subscription.State.PAUSED
    # A later update that does not end the pause (a new period, a plan change): Stripe still says active.
    later = stripe_subscription_event(
        event_id="evt_p2", created=T + 120, pause_collection=VOID, period_start=1769904000, period_end=1772323200
    )
    post_stripe(client, later)
    assert _sub().state == Subscription.State.PAUSED
    post_stripe(client, stripe_subscription_event(event_id="evt_p3", created=T + 180, pause_collection=None))
    assert _sub().state == Subscription.State.ACTIVE


def test_a_staff_pause_is_not_undone_by_stripes_echo(client, catalog, customers, stripe_http, admin_user):
    post_stripe(client, stripe_subscription_event(event_id="evt_s0", created=T, status="active"))
    stripe_http.responses[("post", f"/v1/subscriptions/{SUB}")] = {"id": SUB, "object": "subscription"}
    subscription_pause(subscription=_sub(), user=admin_user, reason="travelling")
    assert _sub().state == Subscription.State.PAUSED
    post_stripe(client, stripe_subscription_event(event_id="evt_s1", created=T + 60, pause_collection=VOID))
    assert _sub().state == Subscription.State.PAUSED


def test_a_pause_that_has_reached_resumes_at_is_over(client, catalog, customers):
    pause = {"behavior": "void", "resumes_at": T + 30}
    post_stripe(client, stripe_subscription_event(event_id="evt_r0", created=T + 60, pause_collection=pause))
    assert _sub().state == Subscription.State.ACTIVE


def test_an_ended_subscription_does_not_renew(client, catalog, customers):
    post_stripe(client, stripe_subscription_event(event_id="evt_e0", created=T, status="active"))
    assert _sub().auto_renew is True
    deleted = stripe_subscription_event(
        event_id="evt_e1",
        created=T + 60,
        status="canceled",
        canceled_at=T + 60,
        event_type="customer.subscription.deleted",
    )
    post_stripe(client, deleted)
    sub = _sub()
    assert sub.state == Subscription.State.EXPIRED and sub.auto_renew is False


def test_an_incomplete_expired_subscription_does_not_renew(client, catalog, customers):
    post_stripe(client, stripe_subscription_event(event_id="evt_i0", created=T, status="incomplete_expired"))
    assert _sub().auto_renew is False
