import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse

from monetization.models import AuditEvent
from monetization.roles import COMPLIANCE, SUPPORT, sync_roles
from subscriptions.models import Grant, Subscription
from tests.subscriptions.factories import EntitlementFactory, SubscriptionFactory

S = Subscription.State


def login(client, role, username):
    sync_roles()
    user = get_user_model().objects.create_user(username, password="pw-long-enough-123", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return user


def transition_url(sub, name):
    return reverse("admin:subscriptions_subscription_transition", args=[sub.pk, name])


@pytest.mark.django_db
def test_support_cancels_with_a_reason_through_the_lifecycle_service(client):
    agent = login(client, SUPPORT, "support1")
    sub = SubscriptionFactory()
    page = client.get(reverse("admin:subscriptions_subscription_change", args=[sub.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert 'value="cancel"' in body and 'value="extend"' in body
    assert 'value="revoke"' not in body  # compliance only
    assert 'value="expire"' not in body  # system only

    # The button posts to the change form and is sent on to the reason form.
    response = client.post(
        reverse("admin:subscriptions_subscription_change", args=[sub.pk]), {"_fsm_transition_to": "cancel"}
    )
    assert response.status_code == 302 and response.url == transition_url(sub, "cancel")
    response = client.post(transition_url(sub, "cancel"), {"reason": "   "})
    assert response.status_code == 200  # form error: a reason is required
    sub.refresh_from_db()
    assert sub.state == S.ACTIVE

    response = client.post(transition_url(sub, "cancel"), {"reason": "Customer asked by email"})
    assert response.status_code == 302
    sub.refresh_from_db()
    assert sub.state == S.CANCELED and sub.cancel_reason == "Customer asked by email"
    event = AuditEvent.objects.get(action="subscription.cancel")
    assert event.actor_id == agent.pk and event.reason == "Customer asked by email"

    response = client.post(transition_url(sub, "extend"), {"reason": "outage", "days": "5"})
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="subscription.extend").count() == 1
    page = client.get(reverse("admin:subscriptions_subscription_change", args=[sub.pk])).content.decode()
    assert "subscription.cancel" in page and "Customer asked by email" in page and "support1" in page


@pytest.mark.django_db
def test_revoke_needs_compliance(client):
    login(client, SUPPORT, "support2")
    sub = SubscriptionFactory()
    client.post(transition_url(sub, "revoke"), {"reason": "fraud"})
    sub.refresh_from_db()
    assert sub.state == S.ACTIVE and not AuditEvent.objects.exists()

    client.logout()
    login(client, COMPLIANCE, "compliance1")
    response = client.post(transition_url(sub, "revoke"), {"reason": "chargeback fraud"})
    assert response.status_code == 302
    sub.refresh_from_db()
    assert sub.state == S.REVOKED


@pytest.mark.django_db
def test_changelist_exact_search_and_state_filter(client):
    login(client, SUPPORT, "support3")
    sub = SubscriptionFactory(provider_subscription_id="sub_findme")
    other = SubscriptionFactory(state=S.ON_HOLD)
    url = reverse("admin:subscriptions_subscription_changelist")
    for term in ("sub_findme", sub.customer.external_id):
        response = client.get(url, {"q": term})
        assert response.status_code == 200
        assert list(response.context["cl"].result_list) == [sub]
    response = client.get(url, {"state__exact": "on_hold"})
    assert list(response.context["cl"].result_list) == [other]


@pytest.mark.django_db
def test_grants_are_created_and_revoked_through_services(client):
    agent = login(client, SUPPORT, "support4")
    sub = SubscriptionFactory()
    entitlement = EntitlementFactory(key="ad_free")
    response = client.post(
        reverse("admin:subscriptions_grant_add"),
        {
            "customer": sub.customer.pk,
            "entitlement": entitlement.pk,
            "reason": "outage goodwill",
        },
    )
    assert response.status_code == 200 and not Grant.objects.exists()  # no end given: the form asks for one
    response = client.post(
        reverse("admin:subscriptions_grant_add"),
        {
            "customer": sub.customer.pk,
            "entitlement": entitlement.pk,
            "ends_at_0": "2099-01-31",
            "ends_at_1": "12:00:00",
            "reason": "outage goodwill",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    grant = Grant.objects.get()
    assert grant.granted_by == agent
    # Support grants; revoking is Compliance's.
    response = client.post(
        reverse("admin:subscriptions_grant_change", args=[grant.pk]), {"revoke_reason_input": "given by mistake"}
    )
    assert response.status_code == 403
    grant.refresh_from_db()
    assert grant.revoked_at is None
    login(client, COMPLIANCE, "compliance4")
    response = client.post(
        reverse("admin:subscriptions_grant_change", args=[grant.pk]), {"revoke_reason_input": "given by mistake"}
    )
    assert response.status_code == 302
    grant.refresh_from_db()
    assert grant.revoked_at is not None and grant.revoke_reason == "given by mistake"
    assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True)) == ["grant.create", "grant.revoke"]
