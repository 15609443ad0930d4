"""Customer self-service over the client API: the customer center lists the acting customer's
subscriptions, cancels and switches web ones through Stripe, opens a Billing Portal session, and
sends store subscriptions to the store; every action audited as the customer's own."""

import datetime

import pytest

from monetization.models import AuditEvent, ProviderIdentity
from monetization.providers.base import ProviderError
from subscriptions.models import Platform, Subscription
from tests.monetization.factories import CustomerFactory, ProviderIdentityFactory
from tests.monetization.support_fixtures import fake_providers, register_with_fake  # noqa: F401
from tests.subscriptions.factories import (
    EntitlementFactory,
    PlanFactory,
    ProductFactory,
    SkuFactory,
    SubscriptionFactory,
)

pytestmark = pytest.mark.django_db

BASE = "/api/v1/customer-center"


@pytest.fixture
def world(fake_providers, settings):
    settings.GOOGLE_PLAY_PACKAGE_NAME = "com.example.app"
    premium = EntitlementFactory(key="premium")
    product = ProductFactory(code="premium", entitlements=[premium])
    monthly = PlanFactory(product=product, code="premium-monthly")
    yearly = PlanFactory(product=product, code="premium-yearly")
    store_only = PlanFactory(product=product, code="premium-ios-only")
    web_monthly = SkuFactory(plan=monthly, platform=Platform.WEB, store_product_id="price_monthly")
    SkuFactory(plan=yearly, platform=Platform.WEB, store_product_id="price_yearly")
    ios = SkuFactory(plan=monthly, platform=Platform.IOS, store_product_id="com.example.premium.monthly")
    play = SkuFactory(plan=monthly, platform=Platform.ANDROID, store_product_id="premium_monthly")
    SkuFactory(plan=store_only, platform=Platform.IOS, store_product_id="com.example.premium.only")
    customer = CustomerFactory()
    ProviderIdentityFactory(customer=customer, value="cus_center0001")
    web = SubscriptionFactory(customer=customer, plan=monthly, sku=web_monthly)
    register_with_fake(web)
    apple = SubscriptionFactory(customer=customer, plan=monthly, sku=ios, provider="app_store", platform=Platform.IOS)
    google = SubscriptionFactory(
        customer=customer, plan=monthly, sku=play, provider="google_play", platform=Platform.ANDROID
    )
    ended = SubscriptionFactory(customer=customer, plan=monthly, state=Subscription.State.EXPIRED)
    return {
        "customer": customer,
        "web": web,
        "apple": apple,
        "google": google,
        "ended": ended,
        "yearly": yearly,
        "store_only": store_only,
        "stripe": fake_providers("stripe"),
    }


@pytest.fixture
def app(client_with_scopes):
    return client_with_scopes("subscriptions:read", "subscriptions:write")


def acting(customer, **extra):
    return {"HTTP_X_ACTING_CUSTOMER": customer.external_id, **extra}


def post(app, url, body, customer, **headers):
    return app.post(url, body, format="json", **acting(customer, **headers))


def test_my_subscriptions_with_platform_renewal_and_where_to_manage(world, app):
    response = app.get(f"{BASE}/subscriptions", **acting(world["customer"]))
    assert response.status_code == 200, response.content
    rows = {row["id"]: row for row in response.json()}
    assert set(rows) == {world["web"].pk, world["apple"].pk, world["google"].pk}  # not the ended one
    web = rows[world["web"].pk]
    assert (web["platform"], web["provider"], web["plan"], web["status"], web["self_service"], web["manage_url"]) == (
        "web",
        "stripe",
        "premium-monthly",
        "active",
        True,
        "",
    )
    assert datetime.datetime.fromisoformat(web["next_renewal"]) == world["web"].current_period_end
    assert rows[world["apple"].pk]["manage_url"] == "https://apps.apple.com/account/subscriptions"
    assert rows[world["google"].pk]["manage_url"] == (
        "https://play.google.com/store/account/subscriptions?sku=premium_monthly&package=com.example.app"
    )
    assert not rows[world["apple"].pk]["self_service"] and not rows[world["google"].pk]["self_service"]


def test_the_center_needs_the_acting_customer_and_the_scope(world, app, client_with_scopes):
    assert app.get(f"{BASE}/subscriptions").json()["code"] == "acting_customer_required"
    unknown = app.get(f"{BASE}/subscriptions", HTTP_X_ACTING_CUSTOMER="nobody")
    assert unknown.status_code == 404 and unknown.json()["code"] == "acting_customer_not_found"
    reader = client_with_scopes("subscriptions:read")
    refused = reader.post(f"{BASE}/subscriptions/{world['web'].pk}/cancel", **acting(world["customer"]))
    assert refused.status_code == 403 and refused.json()["code"] == "api_key_scope_missing"


def test_cancel_a_web_subscription_at_period_end_audited_as_the_customer(world, app):
    customer, web = world["customer"], world["web"]
    response = post(app, f"{BASE}/subscriptions/{web.pk}/cancel", {}, customer, HTTP_IDEMPOTENCY_KEY="cancel-1")
    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["auto_renew"], response.json()["next_renewal"]) == (
        "canceled",
        False,
        None,
    )
    web.refresh_from_db()
    assert web.state == Subscription.State.CANCELED and web.current_period_end > datetime.datetime.now(datetime.UTC)
    calls = [c for c in world["stripe"].calls if c[0] == "cancel_subscription"]
    assert calls == [("cancel_subscription", {"id": web.provider_subscription_id, "at_period_end": True})]
    event = AuditEvent.objects.get(action="subscription.cancel", object_id=str(web.pk))
    assert (event.actor, event.actor_kind, event.customer_id) == (None, "client", customer.pk)
    assert event.actor_label.endswith(f"as customer:{customer.external_id}")

    again = post(app, f"{BASE}/subscriptions/{web.pk}/cancel", {}, customer, HTTP_IDEMPOTENCY_KEY="cancel-1")
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert len([c for c in world["stripe"].calls if c[0] == "cancel_subscription"]) == 1
    twice = post(app, f"{BASE}/subscriptions/{web.pk}/cancel", {}, customer)
    assert twice.status_code == 409 and twice.json()["code"] == "illegal_transition"


@pytest.mark.parametrize(
    ("which", "link"),
    [
        ("apple", "https://apps.apple.com/account/subscriptions"),
        ("google", "https://play.google.com/store/account/subscriptions?sku=premium_monthly&package=com.example.app"),
    ],
)
def test_a_store_subscription_is_managed_in_the_store(world, app, which, link):
    sub, before = world[which], AuditEvent.objects.count()
    for url, body in (("cancel", {}), ("switch-plan", {"plan": "premium-yearly"})):
        response = post(app, f"{BASE}/subscriptions/{sub.pk}/{url}", body, world["customer"])
        assert response.status_code == 409, response.content
        assert response.json()["code"] == "store_managed_subscription"
        assert (response.json()["manage_url"], response.json()["provider"]) == (link, sub.provider)
    sub.refresh_from_db()
    assert sub.state == Subscription.State.ACTIVE and AuditEvent.objects.count() == before
    assert not [c for c in world["stripe"].calls if c[0] in ("cancel_subscription", "change_subscription_plan")]


def test_another_customers_subscription_is_not_found(world, app):
    stranger = CustomerFactory()
    response = post(app, f"{BASE}/subscriptions/{world['web'].pk}/cancel", {}, stranger)
    assert response.status_code == 404
    world["web"].refresh_from_db()
    assert world["web"].state == Subscription.State.ACTIVE


def test_switch_plan_through_stripe_then_our_state_audited(world, app):
    customer, web = world["customer"], world["web"]
    response = post(app, f"{BASE}/subscriptions/{web.pk}/switch-plan", {"plan": "premium-yearly"}, customer)
    assert response.status_code == 200, response.content
    assert response.json()["plan"] == "premium-yearly"
    period_end = web.current_period_end
    web.refresh_from_db()
    assert (web.plan.code, web.sku.store_product_id, web.current_period_end) == (
        "premium-yearly",
        "price_yearly",
        period_end,
    )
    (call,) = [c for c in world["stripe"].calls if c[0] == "change_subscription_plan"]
    assert (call[1]["id"], call[1]["price"]) == (web.provider_subscription_id, "price_yearly")
    event = AuditEvent.objects.get(action="subscription.change_plan")
    assert (event.actor_kind, event.customer_id, event.before, event.after) == (
        "client",
        customer.pk,
        {"plan": "premium-monthly"},
        {"plan": "premium-yearly"},
    )


def test_switch_plan_refusals_change_nothing(world, app):
    customer, web = world["customer"], world["web"]
    url = f"{BASE}/subscriptions/{web.pk}/switch-plan"
    same = post(app, url, {"plan": "premium-monthly"}, customer)
    assert same.status_code == 409 and same.json()["code"] == "plan_not_switchable"
    not_on_web = post(app, url, {"plan": "premium-ios-only"}, customer)
    assert not_on_web.status_code == 409 and not_on_web.json()["code"] == "plan_not_switchable"
    assert post(app, url, {"plan": "no-such-plan"}, customer).status_code == 404
    assert post(app, url, {}, customer).json()["code"] == "invalid_input"
    world["stripe"].fail_next["change_subscription_plan"] = ProviderError("card_declined", code="card_declined")
    failed = post(app, url, {"plan": "premium-yearly"}, customer)
    assert failed.status_code == 502 and failed.json()["code"] == "provider_error"
    web.refresh_from_db()
    assert web.plan.code == "premium-monthly"
    assert not AuditEvent.objects.filter(action="subscription.change_plan").exists()


def test_billing_portal_session_for_card_updates(world, app):
    customer = world["customer"]
    body = {"return_url": "https://app.example.com/account"}
    response = post(app, f"{BASE}/billing-portal", body, customer, HTTP_IDEMPOTENCY_KEY="portal-1")
    assert response.status_code == 200, response.content
    session = response.json()
    assert session["url"].startswith("https://billing.stripe.com/p/session/") and session["id"].startswith("bps_")
    (call,) = [c for c in world["stripe"].calls if c[0] == "billing_portal_session"]
    assert call[1] == {"customer": "cus_center0001", "return_url": "https://app.example.com/account"}
    event = AuditEvent.objects.get(action="customer.billing_portal_session")
    assert (event.actor_kind, event.customer_id, event.after["session"]) == ("client", customer.pk, session["id"])
    replay = post(app, f"{BASE}/billing-portal", body, customer, HTTP_IDEMPOTENCY_KEY="portal-1")
    assert replay.json() == session and replay["Idempotent-Replayed"] == "true"

    insecure = post(app, f"{BASE}/billing-portal", {"return_url": "http://app.example.com/"}, customer)
    assert insecure.status_code == 400
    store_only = CustomerFactory()
    assert not ProviderIdentity.objects.filter(customer=store_only).exists()
    missing = post(app, f"{BASE}/billing-portal", body, store_only)
    assert missing.status_code == 409 and missing.json()["code"] == "billing_account_missing"
