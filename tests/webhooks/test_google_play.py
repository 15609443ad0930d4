import base64
import json

import pytest
from djmoney.money import Money
from googleapiclient.http import HttpMockSequence

from monetization.models import AuditEvent, Payment, WebhookEvent
from monetization.providers.base import SubscriptionStatus
from monetization.providers.google_play import GoogleApiSubscriptionsV2Client, GooglePlayProvider
from subscriptions.models import Subscription

from .conftest import ANDROID_CUSTOMER
from .support import PLAY_TOKEN, fixture, play_push, play_resource, post_play

pytestmark = pytest.mark.django_db(transaction=True)
T0 = 1767225605123


def _sub() -> Subscription:
    return Subscription.objects.get(provider="google_play", provider_subscription_id=PLAY_TOKEN)


def test_purchase_is_read_back_acknowledged_and_paid(client, catalog, customers, play_client):
    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_ACTIVE")
    response = post_play(client, play_push(code=4, message_id="m-1", event_ms=T0))
    assert response.status_code == 200
    sub = _sub()
    assert sub.state == Subscription.State.ACTIVE and sub.customer.external_id == ANDROID_CUSTOMER
    assert sub.acknowledged_at is not None
    assert ("acknowledge", {"token": PLAY_TOKEN, "product_id": "premium"}) in play_client.calls
    payment = Payment.objects.get(provider="google_play")
    assert payment.provider_reference == "GPA.3312-5478-9012-34567" and payment.amount == Money("9.99", "USD")
    assert payment.kind == Payment.Kind.INITIAL


@pytest.mark.parametrize(
    ("code", "state", "extra", "expected"),
    [
        (2, "SUBSCRIPTION_STATE_ACTIVE", {"latestSuccessfulOrderId": "GPA.3312-5478-9012-34567..0"}, "active"),
        (6, "SUBSCRIPTION_STATE_IN_GRACE_PERIOD", {}, "in_grace_period"),
        (5, "SUBSCRIPTION_STATE_ON_HOLD", {}, "on_hold"),
        (1, "SUBSCRIPTION_STATE_ACTIVE", {"latestSuccessfulOrderId": "GPA.3312-5478-9012-34567..1"}, "active"),
        (10, "SUBSCRIPTION_STATE_PAUSED", {}, "paused"),
        (7, "SUBSCRIPTION_STATE_ACTIVE", {}, "active"),
        (3, "SUBSCRIPTION_STATE_CANCELED", {"autoRenewEnabled": False}, "canceled"),
        (13, "SUBSCRIPTION_STATE_EXPIRED", {"expiryTime": "2026-01-20T00:00:00Z"}, "expired"),
    ],
)
def test_each_notification_converges_to_the_read_back_state(
    client, catalog, customers, play_client, code, state, extra, expected
):
    play_client.resources[PLAY_TOKEN] = play_resource(
        "SUBSCRIPTION_STATE_ACTIVE", acknowledgementState="ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED"
    )
    post_play(client, play_push(code=4, message_id="m-0", event_ms=T0))
    play_client.resources[PLAY_TOKEN] = play_resource(
        state, acknowledgementState="ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED", **extra
    )
    post_play(client, play_push(code=code, message_id="m-1", event_ms=T0 + 1000))
    assert _sub().state == expected
    if code in (1, 2):
        assert Payment.objects.filter(kind=Payment.Kind.RENEWAL).count() == 1
    assert not any(call[0] == "acknowledge" for call in play_client.calls)  # already acknowledged


def test_revoked_notification_revokes(client, catalog, customers, play_client):
    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_ACTIVE")
    post_play(client, play_push(code=4, message_id="m-0", event_ms=T0))
    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_EXPIRED")
    post_play(client, play_push(code=12, message_id="m-12", event_ms=T0 + 1000))
    assert _sub().state == Subscription.State.REVOKED
    assert AuditEvent.objects.filter(action="subscription.refund_reported").exists()


def test_pending_purchase_is_not_acknowledged(client, catalog, customers, play_client):
    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_PENDING")
    post_play(client, play_push(code=4, message_id="m-0", event_ms=T0))
    assert _sub().state == Subscription.State.PENDING and _sub().acknowledged_at is None
    assert not any(call[0] == "acknowledge" for call in play_client.calls)


def test_duplicate_message_id_is_stored_once(client, catalog, customers, play_client):
    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_ACTIVE")
    body = play_push(code=4, message_id="m-1", event_ms=T0)
    post_play(client, body)
    assert post_play(client, body).json() == {"received": 1, "duplicates": 1}
    assert WebhookEvent.objects.count() == 1
    assert sum(1 for c in play_client.calls if c[0] == "get") == 1


def test_wrong_push_token_is_rejected(client, play_client):
    response = post_play(client, play_push(code=4, message_id="m-1", event_ms=T0), token="guess")
    assert response.status_code == 400 and response.json()["code"] == "invalid_signature"
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"message": {}}',
        json.dumps({"message": {"messageId": "1", "data": "%%%not-base64"}}).encode(),
        json.dumps({"message": {"messageId": "1", "data": base64.b64encode(b"{}").decode()}}).encode(),
    ],
)
def test_malformed_push_is_rejected(client, body):
    response = post_play(client, body)
    assert response.status_code == 400 and response.json()["code"] == "malformed_payload"
    assert not WebhookEvent.objects.exists()


def test_test_notification_is_ignored(client):
    notification = {
        "version": "1.0",
        "packageName": "com.example.backoffice",
        "eventTimeMillis": str(T0),
        "testNotification": {"version": "1.0"},
    }
    envelope = fixture("google_play", "rtdn_push")
    envelope["message"]["data"] = base64.b64encode(json.dumps(notification).encode()).decode()
    assert post_play(client, json.dumps(envelope).encode()).status_code == 200
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.IGNORED


def test_google_api_client_reads_subscriptionsv2_through_the_real_sdk(settings):
    """The production client: google-api-python-client's androidpublisher, replaying recorded HTTP."""
    resource = fixture("google_play", "subscriptionsv2_active")
    http = HttpMockSequence([({"status": "200"}, json.dumps(resource)), ({"status": "200"}, "")])
    provider = GooglePlayProvider(client=GoogleApiSubscriptionsV2Client(http=http))
    snapshot = provider.fetch_subscription(PLAY_TOKEN)
    assert snapshot.provider_status == "SUBSCRIPTION_STATE_ACTIVE" and snapshot.base_plan_id == "monthly"
    assert snapshot.status == SubscriptionStatus.ACTIVE
    assert snapshot.customer_ref == ANDROID_CUSTOMER
    provider.acknowledge(product_id="premium", token=PLAY_TOKEN)


def test_upgrade_to_a_new_token_expires_the_linked_one(client, catalog, customers, play_client):
    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_ACTIVE")
    post_play(client, play_push(code=4, message_id="m-0", event_ms=T0))
    new_token = "newtoken.AO-J1Oupgrade"
    play_client.resources[new_token] = play_resource(
        "SUBSCRIPTION_STATE_ACTIVE", linkedPurchaseToken=PLAY_TOKEN, latestSuccessfulOrderId="GPA.9999-0000-0000-00001"
    )
    post_play(client, play_push(code=4, message_id="m-1", event_ms=T0 + 1000, token=new_token))
    assert _sub().state == Subscription.State.EXPIRED and _sub().cancel_reason == "replaced"
    assert Subscription.objects.get(provider_subscription_id=new_token).state == Subscription.State.ACTIVE


def test_unconfigured_push_verification_answers_503(client, settings):
    from monetization.providers.base import reset_providers

    settings.STRIPE_WEBHOOK_SECRET = ""
    reset_providers()
    response = client.post(
        "/api/v1/webhooks/stripe", data=b"{}", content_type="application/json", HTTP_STRIPE_SIGNATURE="t=1,v1=00"
    )
    assert response.status_code == 503 and response.json()["code"] == "provider_unavailable"


def test_sweep_acknowledges_purchases_that_slipped_through(client, catalog, customers, play_client):
    from subscriptions.services.play_acknowledgement import play_acknowledge_pending
    from tests.subscriptions.factories import SubscriptionFactory

    sub = SubscriptionFactory(
        customer=customers["android"],
        plan=catalog,
        provider="google_play",
        platform="android",
        provider_subscription_id=PLAY_TOKEN,
    )
    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_ACTIVE")
    assert play_acknowledge_pending() == 1
    sub.refresh_from_db()
    assert sub.acknowledged_at is not None
    assert ("acknowledge", {"token": PLAY_TOKEN, "product_id": "premium"}) in play_client.calls
    assert play_acknowledge_pending() == 0
