import datetime

import pytest
from django.contrib.auth import get_user_model

from monetization import clock
from monetization.errors import IllegalTransition
from monetization.models import AuditEvent
from subscriptions.models import Subscription
from subscriptions.services.grants import grant_create, grant_revoke
from subscriptions.services.lifecycle import Cause, subscription_change_state
from tests.subscriptions.factories import (
    EntitlementFactory,
    PlanFactory,
    ProductFactory,
    SubscriptionFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def premium_plan():
    product = ProductFactory(
        code="premium", entitlements=[EntitlementFactory(key="verified_badge"), EntitlementFactory(key="edit_post")]
    )
    return PlanFactory(product=product, code="premium-monthly")


def _keys(client, external_id):
    response = client.get(f"/api/v1/customers/{external_id}/entitlements")
    assert response.status_code == 200, response.content
    return sorted((e["key"], e["source"]) for e in response.json()["entitlements"])


def test_entitlements_follow_subscription_state_without_going_stale(client_with_scopes, premium_plan):
    client = client_with_scopes("entitlements:read")
    sub = SubscriptionFactory(plan=premium_plan)
    external_id = sub.customer.external_id
    assert _keys(client, external_id) == [("edit_post", "subscription"), ("verified_badge", "subscription")]

    subscription_change_state(subscription=sub, transition="revoke", cause=Cause.task("test"))
    assert _keys(client, external_id) == []
    event = AuditEvent.objects.get(action="subscription.revoke")
    assert event.before["state"] == "active" and event.after["state"] == "revoked"
    assert event.actor_label == "task:test"


def test_illegal_transition_changes_nothing(premium_plan):
    sub = SubscriptionFactory(plan=premium_plan, state=Subscription.State.EXPIRED)
    with pytest.raises(IllegalTransition):
        subscription_change_state(subscription=sub, transition="pause", cause=Cause.task("test"))
    sub.refresh_from_db()
    assert sub.state == Subscription.State.EXPIRED
    assert not AuditEvent.objects.exists()


def test_canceled_subscription_entitles_until_period_end(client_with_scopes, premium_plan):
    client = client_with_scopes("entitlements:read")
    end = clock.now() + datetime.timedelta(days=2)
    sub = SubscriptionFactory(plan=premium_plan, state=Subscription.State.CANCELED, current_period_end=end)
    assert len(_keys(client, sub.customer.external_id)) == 2
    with clock.frozen(end + datetime.timedelta(seconds=1)):
        from subscriptions.entitlements import resolve_entitlements

        assert resolve_entitlements(sub.customer_id) == []


def test_grant_and_revoke_show_in_entitlements(client_with_scopes):
    client = client_with_scopes("entitlements:read")
    staff = get_user_model().objects.create_user("agent", is_staff=True)
    sub = SubscriptionFactory(state=Subscription.State.EXPIRED)
    customer = sub.customer
    grant = grant_create(
        customer=customer, entitlement=EntitlementFactory(key="ad_free"), reason="outage goodwill", granted_by=staff
    )
    assert _keys(client, customer.external_id) == [("ad_free", "grant")]
    grant_revoke(grant=grant, revoked_by=staff, reason="granted by mistake")
    assert _keys(client, customer.external_id) == []
    assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True)) == ["grant.create", "grant.revoke"]
