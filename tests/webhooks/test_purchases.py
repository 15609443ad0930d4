import pytest
from rest_framework.test import APIClient

from monetization.models import AuditEvent, ProviderIdentity
from subscriptions.models import Subscription
from tests.concurrency import run_at_once
from tests.monetization.factories import CustomerFactory

from .conftest import ANDROID_CUSTOMER, IOS_CUSTOMER, WEB_CUSTOMER
from .support import PLAY_TOKEN, ApplePKI, fixture, play_resource

pytestmark = pytest.mark.django_db(transaction=True)


def _transaction_jws(pki, **updates):
    tx = fixture("app_store", "subscribed")["transaction"]
    tx.update(updates)
    return pki.sign(tx)


def test_ios_signed_transaction_creates_then_links_idempotently(client_with_scopes, apple_pki, catalog, customers):
    api = client_with_scopes("purchases:write")
    jws = _transaction_jws(apple_pki, expiresDate=4102444800000)  # 2100: still active
    body = {"platform": "ios", "customer": IOS_CUSTOMER, "signed_transaction": jws}
    first = api.post("/api/v1/purchases", body, format="json")
    assert first.status_code == 201, first.content
    assert first.json()["state"] == "active" and first.json()["plan"] == "premium-monthly"
    second = api.post("/api/v1/purchases", body, format="json")
    assert second.status_code == 200 and second.json()["id"] == first.json()["id"]
    assert Subscription.objects.count() == 1
    assert ProviderIdentity.objects.filter(kind="original_transaction_id", value="2000000812345001").exists()
    assert AuditEvent.objects.filter(actor_kind="client", action="subscription.activate").exists()


def test_ios_transaction_signed_by_someone_else_is_refused(client_with_scopes, catalog, customers):
    api = client_with_scopes("purchases:write")
    jws = _transaction_jws(ApplePKI(), expiresDate=4102444800000)
    response = api.post(
        "/api/v1/purchases", {"platform": "ios", "customer": IOS_CUSTOMER, "signed_transaction": jws}, format="json"
    )
    assert response.status_code == 400 and response.json()["code"] == "purchase_invalid"
    assert not Subscription.objects.exists()


def test_android_purchase_token_is_validated_and_acknowledged(client_with_scopes, catalog, customers, play_client):
    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_ACTIVE")
    api = client_with_scopes("purchases:write")
    body = {"platform": "android", "customer": ANDROID_CUSTOMER, "purchase_token": PLAY_TOKEN, "product_id": "premium"}
    response = api.post("/api/v1/purchases", body, format="json")
    assert response.status_code == 201, response.content
    sub = Subscription.objects.get()
    assert sub.acknowledged_at is not None and sub.state == Subscription.State.ACTIVE
    assert api.post("/api/v1/purchases", body, format="json").status_code == 200
    wrong_product = {**body, "product_id": "premium_plus"}
    assert api.post("/api/v1/purchases", wrong_product, format="json").json()["code"] == "purchase_invalid"


def test_unknown_play_token_is_refused(client_with_scopes, catalog, customers, play_client):
    api = client_with_scopes("purchases:write")
    body = {"platform": "android", "customer": ANDROID_CUSTOMER, "purchase_token": "nope"}
    response = api.post("/api/v1/purchases", body, format="json")
    assert response.status_code == 400 and response.json()["code"] == "purchase_invalid"


def test_stripe_subscription_is_retrieved(client_with_scopes, catalog, customers, stripe_http):
    obj = fixture("stripe", "customer.subscription.created")["data"]["object"]
    stripe_http.responses[("get", "/v1/subscriptions/sub_1QwebPremium0000000001")] = obj
    api = client_with_scopes("purchases:write")
    body = {"platform": "web", "customer": WEB_CUSTOMER, "stripe_subscription_id": "sub_1QwebPremium0000000001"}
    response = api.post("/api/v1/purchases", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["state"] == "active"


def test_purchase_of_another_customer_is_a_conflict_when_owners_keep_purchases(
    client_with_scopes, apple_pki, catalog, customers, settings
):
    settings.PURCHASE_OWNERSHIP_RULE = "keep"  # the default transfers it: tests/webhooks/test_purchase_ownership.py
    api = client_with_scopes("purchases:write")
    jws = _transaction_jws(apple_pki, expiresDate=4102444800000)
    api.post(
        "/api/v1/purchases", {"platform": "ios", "customer": IOS_CUSTOMER, "signed_transaction": jws}, format="json"
    )
    other = CustomerFactory()
    response = api.post(
        "/api/v1/purchases",
        {"platform": "ios", "customer": other.external_id, "signed_transaction": jws},
        format="json",
    )
    assert response.status_code == 409 and response.json()["code"] == "purchase_owned_by_other_customer"


def test_scope_is_required(client_with_scopes, customers):
    api = client_with_scopes("entitlements:read")
    response = api.post("/api/v1/purchases", {"platform": "web", "customer": WEB_CUSTOMER}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "api_key_scope_missing"


def test_missing_fields_and_unknown_customer(client_with_scopes, customers):
    api = client_with_scopes("purchases:write")
    assert api.post("/api/v1/purchases", {"platform": "ios"}, format="json").json()["code"] == "invalid_input"
    response = api.post("/api/v1/purchases", {"platform": "ios", "customer": WEB_CUSTOMER}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_input"
    response = api.post("/api/v1/purchases", {"platform": "web", "customer": "nobody"}, format="json")
    assert response.status_code == 404


def test_concurrent_purchase_calls_all_answer(make_api_key, apple_pki, catalog):
    """Purchase calls served at once by one process's threads (a threaded server) all answer: none fails on
    django-fsm's process-wide lifting of the state field's protection during another's refresh_from_db."""
    key, _ = make_api_key("purchases:write")
    customers = [CustomerFactory() for _ in range(8)]
    bodies = [
        {
            "platform": "ios",
            "customer": customer.external_id,
            "signed_transaction": _transaction_jws(
                apple_pki,
                transactionId=f"30000008123450{i:02d}",
                originalTransactionId=f"30000008123450{i:02d}",
                appAccountToken="",
                expiresDate=4102444800000,
            ),
        }
        for i, customer in enumerate(customers)
    ]
    statuses: list[int] = []

    def calls(body):
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        statuses.extend(api.post("/api/v1/purchases", body, format="json").status_code for _ in range(6))

    assert run_at_once(calls, [(body,) for body in bodies]) == []
    assert sorted(set(statuses)) == [200, 201] and len(statuses) == 48
    assert Subscription.objects.count() == 8
