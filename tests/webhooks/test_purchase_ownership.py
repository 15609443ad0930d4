"""A purchase presented for a second customer follows PURCHASE_OWNERSHIP_RULE, on every platform: ``transfer``
moves it (with its payments and refunds) to that customer, ``keep`` answers 409 naming the owner. Provider
events that name another account follow the same rule, and never take back a purchase transferred away."""

import pytest
from djmoney.money import Money

from monetization.models import AuditEvent, OutboxEvent, Payment, ProviderIdentity
from monetization.services.outbox import outbox_relay
from subscriptions.models import Subscription
from subscriptions.services.payments import subscription_payment_record
from tests.monetization.factories import CustomerFactory

from .conftest import ANDROID_CUSTOMER, IOS_CUSTOMER, WEB_CUSTOMER
from .support import (
    PLAY_TOKEN,
    app_store_notification,
    fixture,
    play_resource,
    post_app_store,
    post_stripe,
    stripe_subscription_event,
)

pytestmark = pytest.mark.django_db(transaction=True)  # a refused purchase rolls its request back

STRIPE_SUB = "sub_1QwebPremium0000000001"


@pytest.fixture
def purchase(apple_pki, stripe_http, play_client):
    """The purchase body of each platform, its provider answering for it."""
    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_ACTIVE")
    stripe_http.responses[("get", f"/v1/subscriptions/{STRIPE_SUB}")] = fixture(
        "stripe", "customer.subscription.created"
    )["data"]["object"]
    tx = fixture("app_store", "subscribed")["transaction"]
    tx.update(expiresDate=4102444800000)
    bodies = {
        "ios": (IOS_CUSTOMER, {"platform": "ios", "signed_transaction": apple_pki.sign(tx)}),
        "android": (ANDROID_CUSTOMER, {"platform": "android", "purchase_token": PLAY_TOKEN, "product_id": "premium"}),
        "web": (WEB_CUSTOMER, {"platform": "web", "stripe_subscription_id": STRIPE_SUB}),
    }
    return bodies


def _buy(api, body, customer):
    return api.post("/api/v1/purchases", {**body, "customer": customer}, format="json")


def _with_payment(sub: Subscription) -> Payment:
    payment, _ = subscription_payment_record(
        subscription=sub,
        customer=sub.customer,
        provider=sub.provider,
        provider_reference=f"pay-{sub.provider}-1",
        amount=Money("9.99", "USD"),
    )
    return payment


@pytest.mark.parametrize("platform", ["ios", "android", "web"])
def test_transfer_rule_moves_the_purchase_and_its_money_to_the_new_customer(
    client_with_scopes, catalog, customers, purchase, platform, settings
):
    settings.PURCHASE_OWNERSHIP_RULE = "transfer"
    api = client_with_scopes("purchases:write")
    owner_id, body = purchase[platform]
    first = _buy(api, body, owner_id)
    assert first.status_code == 201, first.content
    sub = Subscription.objects.get(pk=first.json()["id"])
    payment = _with_payment(sub)
    newcomer = CustomerFactory()

    response = _buy(api, body, newcomer.external_id)

    assert response.status_code == 200, response.content
    assert response.json()["id"] == sub.pk and response.json()["customer"] == newcomer.external_id
    assert Subscription.objects.get().customer == newcomer
    payment.refresh_from_db()
    assert payment.customer == newcomer and payment.amount == Money("9.99", "USD")
    # The purchase's own store id (App Store original transaction, Play token) moves with it; the account's
    # ids (app account token, Play account, Stripe customer) stay with the account they name.
    assert {i.customer for i in ProviderIdentity.objects.filter(value=sub.provider_subscription_id)} <= {newcomer}
    assert not ProviderIdentity.objects.filter(customer=newcomer).exclude(value=sub.provider_subscription_id).exists()
    outbox_relay()
    for who in (customers[platform], newcomer):
        audit = AuditEvent.objects.get(action="subscription.transfer", customer=who)
        assert audit.before["customer"] == owner_id and audit.after["customer"] == newcomer.external_id
        assert OutboxEvent.objects.filter(type="TRANSFER", customer=who).count() == 1
    # Presenting it again changes nothing more.
    assert _buy(api, body, newcomer.external_id).status_code == 200
    assert AuditEvent.objects.filter(action="subscription.transfer").count() == 2


@pytest.mark.parametrize("platform", ["ios", "android", "web"])
def test_keep_rule_answers_409_naming_the_owner_and_changes_nothing(
    client_with_scopes, catalog, customers, purchase, platform, settings
):
    settings.PURCHASE_OWNERSHIP_RULE = "keep"
    api = client_with_scopes("purchases:write")
    owner_id, body = purchase[platform]
    assert _buy(api, body, owner_id).status_code == 201
    before = AuditEvent.objects.count()
    newcomer = CustomerFactory()

    response = _buy(api, body, newcomer.external_id)

    assert response.status_code == 409
    assert response.json()["code"] == "purchase_owned_by_other_customer"
    assert response.json()["owner"] == owner_id
    assert set(response.json()) == {"code", "detail", "owner"}  # nothing personal: the id the app knows
    assert Subscription.objects.get().customer.external_id == owner_id
    assert AuditEvent.objects.count() == before


def test_stripe_event_naming_another_account_transfers_or_keeps(client, catalog, customers, settings):
    created = fixture("stripe", "customer.subscription.created")
    assert post_stripe(client, created).status_code == 200
    sub = Subscription.objects.get()
    assert sub.customer == customers["web"]
    other = CustomerFactory()

    settings.PURCHASE_OWNERSHIP_RULE = "keep"
    kept = stripe_subscription_event(
        event_id="evt_kept", created=created["created"] + 60, external_id=other.external_id
    )
    assert post_stripe(client, kept).status_code == 200
    assert Subscription.objects.get().customer == customers["web"]
    assert AuditEvent.objects.get(action="subscription.ownership_kept").after == {"named_customer": other.external_id}

    settings.PURCHASE_OWNERSHIP_RULE = "transfer"
    moved = stripe_subscription_event(
        event_id="evt_moved", created=created["created"] + 120, external_id=other.external_id
    )
    assert post_stripe(client, moved).status_code == 200
    assert Subscription.objects.get().customer == other
    audit = AuditEvent.objects.get(action="subscription.transfer", customer=other)
    assert audit.actor_kind == "provider" and audit.actor_label == "stripe:evt_moved"


def test_store_memory_of_the_old_account_does_not_take_a_transferred_purchase_back(
    client, client_with_scopes, apple_pki, catalog, customers, purchase, settings
):
    """After a restore on a new login moved it, Apple still sends the first buyer's app account token."""
    settings.PURCHASE_OWNERSHIP_RULE = "transfer"
    api = client_with_scopes("purchases:write")
    _, body = purchase["ios"]
    assert _buy(api, body, IOS_CUSTOMER).status_code == 201
    newcomer = CustomerFactory()
    assert _buy(api, body, newcomer.external_id).status_code == 200

    renewal, _ = app_store_notification(
        apple_pki,
        notification_type="DID_RENEW",
        uuid="4a7c0000-0000-4000-8000-00000000d1d0",
        signed_ms=1780000000000,  # after the purchase: not an older event
        transaction_updates={"expiresDate": 4102444800000},
    )
    assert post_app_store(client, renewal).status_code == 200

    assert Subscription.objects.get().customer == newcomer
    assert AuditEvent.objects.filter(action="subscription.transfer").count() == 2  # the restore's only
