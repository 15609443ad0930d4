import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from monetization.models import AuditEvent, WebhookEvent
from monetization.roles import sync_roles

from .support import fixture, post_stripe

pytestmark = pytest.mark.django_db(transaction=True)


def _staff(name: str, role: str | None):
    sync_roles()
    user = get_user_model().objects.create_user(name, password="pw-12345-long", is_staff=True)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


def test_support_sees_failed_events_and_replays_them(client, catalog, customers, settings):
    settings.WEBHOOK_WAITING_GIVE_UP_HOURS = settings.WEBHOOK_APPLY_MAX_RETRIES = 0  # no waiting: it fails at once
    post_stripe(client, fixture("stripe", "invoice.paid"))  # fails: subscription unknown
    event = WebhookEvent.objects.get()
    assert event.status == "failed"
    support = _staff("support", "Support")
    client.force_login(support)
    listing = client.get("/admin/monetization/webhookevent/?status__exact=failed")
    assert listing.status_code == 200 and b"evt_1QinvoicePaid0000000001" in listing.content
    detail = client.get(f"/admin/monetization/webhookevent/{event.pk}/change/")
    assert detail.status_code == 200 and b"not known yet" in detail.content

    post_stripe(client, fixture("stripe", "customer.subscription.created"))
    response = client.post(
        "/admin/monetization/webhookevent/",
        {"action": "replay", "_selected_action": [event.pk]},
        follow=True,
    )
    assert response.status_code == 200
    event.refresh_from_db()
    assert event.status == "applied"
    assert AuditEvent.objects.filter(action="webhook.replay", actor=support).exists()


def test_finance_can_view_but_not_replay(client, catalog, customers, settings):
    settings.WEBHOOK_WAITING_GIVE_UP_HOURS = settings.WEBHOOK_APPLY_MAX_RETRIES = 0
    post_stripe(client, fixture("stripe", "invoice.paid"))
    event = WebhookEvent.objects.get()
    client.force_login(_staff("finance", "Finance"))
    assert client.get("/admin/monetization/webhookevent/").status_code == 200
    client.post("/admin/monetization/webhookevent/", {"action": "replay", "_selected_action": [event.pk]})
    event.refresh_from_db()
    assert event.status == "failed" and not AuditEvent.objects.filter(action="webhook.replay").exists()


def test_staff_without_a_role_cannot_see_the_inbox(client):
    client.force_login(_staff("nobody", None))
    assert client.get("/admin/monetization/webhookevent/").status_code == 403


def test_the_inbox_shows_waiting_events_with_their_age_and_attempts(client, catalog, customers):
    post_stripe(client, fixture("stripe", "invoice.paid"))  # waits: subscription unknown
    event = WebhookEvent.objects.get()
    assert event.status == "waiting"
    client.force_login(_staff("support", "Support"))
    listing = client.get("/admin/monetization/webhookevent/?status__exact=waiting")
    assert listing.status_code == 200 and b"evt_1QinvoicePaid0000000001" in listing.content
    assert b"Waiting for its subject" in listing.content and b"minute" in listing.content  # its age
    detail = client.get(f"/admin/monetization/webhookevent/{event.pk}/change/")
    assert b"sub_1QwebPremium0000000001" in detail.content and b"Next attempt at" in detail.content
