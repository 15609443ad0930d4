"""Store notifications that arrive before the app's purchase call wait for it, then apply (issue fault 4)."""

import pytest

from monetization.models import Payment, WebhookEvent
from subscriptions.models import Subscription
from tests.monetization.factories import CustomerFactory

from .conftest import ANDROID_CUSTOMER, IOS_CUSTOMER
from .support import PLAY_TOKEN, app_store_notification, play_push, play_resource, post_app_store, post_play

pytestmark = pytest.mark.django_db(transaction=True)
OTID = "2000000812345001"
T0 = 1767225605000
RENEWED = {"transactionId": "2000000812345002", "purchaseDate": 1769904000000, "expiresDate": 4102444800000}


def _waiting(provider: str) -> list[str]:
    return list(
        WebhookEvent.objects.filter(provider=provider)
        .exclude(status__in=["applied", "ignored"])
        .values_list("event_type", flat=True)
    )


def test_app_store_notifications_before_the_purchase_call_apply_once_it_links_the_customer(
    client, client_with_scopes, apple_pki, catalog
):
    CustomerFactory(external_id=IOS_CUSTOMER)  # nothing links the appAccountToken to this customer yet
    for ntype, subtype, uuid, at, tx in [
        ("SUBSCRIBED", "INITIAL_BUY", "n-1", T0, None),
        ("DID_RENEW", None, "n-2", 1769904005000, RENEWED),
    ]:
        body, _ = app_store_notification(
            apple_pki, notification_type=ntype, subtype=subtype, uuid=uuid, signed_ms=at, transaction_updates=tx
        )
        assert post_app_store(client, body).status_code == 200
    assert not Subscription.objects.exists()
    assert sorted(_waiting("app_store")) == ["DID_RENEW", "SUBSCRIBED.INITIAL_BUY"]  # waiting, not ignored

    body, parts = app_store_notification(
        apple_pki, notification_type="DID_RENEW", uuid="unused", signed_ms=1769904006000, transaction_updates=RENEWED
    )
    jws = apple_pki.sign(parts["transaction"])
    api = client_with_scopes("purchases:write")
    response = api.post(
        "/api/v1/purchases", {"platform": "ios", "customer": IOS_CUSTOMER, "signed_transaction": jws}, format="json"
    )
    assert response.status_code == 201, response.content
    assert _waiting("app_store") == []
    sub = Subscription.objects.get(provider="app_store", provider_subscription_id=OTID)
    assert sub.customer.external_id == IOS_CUSTOMER and sub.state == Subscription.State.ACTIVE
    payments = sorted(Payment.objects.filter(provider="app_store").values_list("provider_reference", "kind"))
    assert payments == [("2000000812345001", "initial"), ("2000000812345002", "renewal")]


def test_play_notification_before_the_purchase_call_applies_once_it_links_the_token(
    client, client_with_scopes, catalog, play_client
):
    CustomerFactory(external_id=ANDROID_CUSTOMER)
    # The app set no obfuscatedExternalAccountId: only the purchase call says whose token it is.
    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_ACTIVE", externalAccountIdentifiers={})
    assert post_play(client, play_push(code=4, message_id="m-1", event_ms=T0)).status_code == 200
    assert not Subscription.objects.exists() and _waiting("google_play") == ["SUBSCRIPTION_PURCHASED"]

    api = client_with_scopes("purchases:write")
    body = {"platform": "android", "customer": ANDROID_CUSTOMER, "purchase_token": PLAY_TOKEN}
    assert api.post("/api/v1/purchases", body, format="json").status_code == 201
    assert _waiting("google_play") == []
    payment = Payment.objects.get(provider="google_play")
    assert payment.customer.external_id == ANDROID_CUSTOMER and payment.kind == "initial"


def test_an_early_event_is_applied_when_a_later_event_creates_its_subscription(client, apple_pki, catalog, customers):
    # The first notification names no account (the app set no appAccountToken on it); the next one does.
    body, _ = app_store_notification(
        apple_pki,
        notification_type="DID_RENEW",
        uuid="n-2",
        signed_ms=1769904005000,
        transaction_updates={**RENEWED, "appAccountToken": ""},
    )
    assert post_app_store(client, body).status_code == 200
    assert _waiting("app_store") == ["DID_RENEW"]
    body, _ = app_store_notification(
        apple_pki, notification_type="SUBSCRIBED", subtype="INITIAL_BUY", uuid="n-1", signed_ms=T0
    )
    assert post_app_store(client, body).status_code == 200
    assert _waiting("app_store") == []
    assert Payment.objects.filter(provider="app_store").count() == 2
