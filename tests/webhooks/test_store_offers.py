"""Offers from the stores' signed events. Introductory offers: a use on any store blocks the offer on the
other two (and its own) in the catalog API; a customer with no history sees it. Store codes: App Store
offer codes and Play promo codes become redemptions Support reads beside the web's promo codes."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse
from djmoney.money import Money

from monetization.models import AuditEvent
from monetization.roles import SUPPORT, sync_roles
from subscriptions.models import (
    IntroductoryOffer,
    IntroductoryOfferUse,
    Platform,
    Product,
    ProductFamily,
    PromoRedemption,
)
from tests.subscriptions.factories import PriceFactory

from .conftest import ANDROID_CUSTOMER, IOS_CUSTOMER, WEB_CUSTOMER
from .support import (
    APPLE_TRANSACTION_ID,
    PLAY_TOKEN,
    app_store_notification,
    play_push,
    play_resource,
    post_app_store,
    post_play,
    post_stripe,
    stripe_subscription_event,
)

pytestmark = pytest.mark.django_db(transaction=True)
NEW_CUSTOMER = "1700000000999"  # never seen: every offer is theirs


@pytest.fixture
def offers(catalog):
    """Premium and Premium+ in one family, each platform's intro offer on Premium monthly."""
    family = ProductFamily.objects.create(key="premium", name="Premium", apple_subscription_group_id="21482345")
    family.products.set(Product.objects.filter(code__in=["premium", "premium-plus"]))
    for plan in [catalog, *catalog.product.plans.all()]:
        PriceFactory(plan=plan, country="US", amount=Money("8.00", "USD"))
    IntroductoryOffer.objects.create(
        family=family, plan=catalog, platform=Platform.IOS, payment_mode="free_trial", duration=1, duration_unit="week"
    )
    IntroductoryOffer.objects.create(
        family=family,
        plan=catalog,
        platform=Platform.ANDROID,
        payment_mode="free_trial",
        duration=7,
        play_offer_id="intro-7d",
        play_offer_tags=["intro"],
    )
    IntroductoryOffer.objects.create(
        family=family,
        plan=catalog,
        platform=Platform.WEB,
        payment_mode="pay_as_you_go",
        duration=3,
        duration_unit="month",
        price=Money("4.00", "USD"),
        stripe_coupon_id="intro_half_3m",
    )
    return family


@pytest.fixture
def catalog_client(api_client, make_api_key):
    full, _ = make_api_key("catalog:read")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {full}")
    return api_client


def _offer(client, platform: str, customer: str | None) -> tuple[dict | None, bool | None]:
    params = {"platform": platform, "country": "US"}
    if customer:
        params["customer"] = customer
    response = client.get("/api/v1/catalog", params)
    assert response.status_code == 200, response.content
    plan = next(
        p for product in response.json()["products"] for p in product["plans"] if p["code"] == "premium-monthly"
    )
    return plan["introductory_offer"], plan["introductory_offer_eligible"]


def _use_on_app_store(client, pki, **_):
    body, _parts = app_store_notification(
        pki,
        notification_type="SUBSCRIBED",
        subtype="INITIAL_BUY",
        uuid="5b1c4f3e-0000-4000-8000-00000000a001",
        signed_ms=1767225605000,
        # A free trial as App Store Server Notifications sign it: offerType 1, FREE_TRIAL, no price.
        transaction_updates={"offerType": 1, "offerDiscountType": "FREE_TRIAL", "offerPeriod": "P1W", "price": 0},
    )
    assert post_app_store(client, body).status_code == 200
    return IOS_CUSTOMER


def _use_on_play(client, play_client, **_):
    resource = play_resource("SUBSCRIPTION_STATE_ACTIVE", acknowledgementState="ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED")
    item = resource["lineItems"][0]
    item["offerDetails"] = {"basePlanId": "monthly", "offerId": "intro-7d", "offerTags": ["intro"]}
    item["offerPhase"] = {"freeTrial": {}}
    play_client.resources[PLAY_TOKEN] = resource
    assert post_play(client, play_push(code=4, message_id="offer-1", event_ms=1767225605123)).status_code == 200
    return ANDROID_CUSTOMER


def _use_on_web(client, **_):
    # An introductory price on the web: the catalog's intro coupon on the subscription, no trial.
    event = stripe_subscription_event(event_id="evt_1QintroCoupon0000000001", created=1767225605)
    event["data"]["object"]["discount"] = {
        "id": "di_1QintroDiscount000000001",
        "object": "discount",
        "coupon": {"id": "intro_half_3m", "object": "coupon", "duration": "repeating", "duration_in_months": 3},
        "promotion_code": None,
    }
    assert post_stripe(client, event).status_code == 200
    return WEB_CUSTOMER


USES = {"app_store": _use_on_app_store, "google_play": _use_on_play, "stripe": _use_on_web}


@pytest.mark.parametrize("store", USES)
def test_an_introductory_offer_used_on_one_store_is_not_offered_on_any(
    client, catalog_client, customers, offers, apple_pki, play_client, store
):
    """A customer who used an introductory offer on the App Store is not offered one on the web; and so
    for every store: each provider's use blocks the other two (and its own)."""
    customer = USES[store](client, pki=apple_pki, play_client=play_client)
    use = IntroductoryOfferUse.objects.get()
    assert use.customer.external_id == customer and use.provider == store and use.product.code == "premium"

    for platform in Platform.values:
        offer, eligible = _offer(catalog_client, platform, customer)
        assert (offer, eligible) == (None, False), platform
        offer, eligible = _offer(catalog_client, platform, NEW_CUSTOMER)
        assert offer is not None and eligible is True, platform


def test_a_use_in_the_family_blocks_its_other_products(client, catalog_client, customers, offers, apple_pki):
    IntroductoryOffer.objects.create(
        family=offers,
        plan=Product.objects.get(code="premium-plus").plans.get(),
        platform=Platform.WEB,
        payment_mode="free_trial",
        duration=14,
    )
    _use_on_app_store(client, apple_pki)
    response = catalog_client.get("/api/v1/catalog", {"platform": "web", "country": "US", "customer": IOS_CUSTOMER})
    plans = {p["code"]: p for product in response.json()["products"] for p in product["plans"]}
    assert plans["premium-plus-monthly"]["introductory_offer"] is None
    assert plans["premium-plus-monthly"]["introductory_offer_eligible"] is False


def test_the_catalog_without_a_customer_lists_each_platforms_offer(catalog_client, offers):
    ios, eligible = _offer(catalog_client, "ios", None)
    assert ios["payment_mode"] == "free_trial" and ios["duration_unit"] == "week" and eligible is None
    android, _ = _offer(catalog_client, "android", None)
    assert android["play_offer_id"] == "intro-7d" and android["play_offer_tags"] == ["intro"]
    web, _ = _offer(catalog_client, "web", None)
    assert web["price"] == {"amount": "4.00", "currency": "USD"} and web["stripe_coupon_id"] == "intro_half_3m"


def test_an_offer_limited_to_other_countries_is_not_listed(catalog_client, offers):
    IntroductoryOffer.objects.filter(platform=Platform.WEB).update(countries=["DE"])
    assert _offer(catalog_client, "web", None) == (None, None)


def test_a_paid_subscription_without_an_offer_uses_none(client, catalog_client, customers, offers):
    event = stripe_subscription_event(event_id="evt_1QnoOffer000000000000001", created=1767225605)
    assert post_stripe(client, event).status_code == 200
    assert not IntroductoryOfferUse.objects.exists()
    offer, eligible = _offer(catalog_client, "web", WEB_CUSTOMER)
    assert offer is not None and eligible is True


def test_redelivery_records_the_use_once(client, customers, offers, apple_pki):
    _use_on_app_store(client, apple_pki)
    _use_on_app_store(client, apple_pki)
    assert IntroductoryOfferUse.objects.count() == 1
    assert not AuditEvent.objects.filter(action__startswith="introductory_offer").exists()


# --- store codes -----------------------------------------------------------------------------


def _support_client(client):
    sync_roles()
    agent = get_user_model().objects.create_user("support1", password="pw-long-enough-123", is_staff=True)
    agent.groups.add(Group.objects.get(name=SUPPORT))
    client.force_login(agent)
    return client


def test_an_app_store_offer_code_is_a_redemption_support_sees(client, catalog, customers, apple_pki):
    for uuid in ("5b1c4f3e-0000-4000-8000-00000000c001", "5b1c4f3e-0000-4000-8000-00000000c001"):  # redelivered
        body, _parts = app_store_notification(
            apple_pki,
            notification_type="OFFER_REDEEMED",
            subtype="INITIAL_BUY",
            uuid=uuid,
            signed_ms=1767225605000,
            # An offer code as the signed transaction carries it: offerType 3 and the offer's identifier.
            transaction_updates={"offerType": 3, "offerIdentifier": "SPRING2026", "offerDiscountType": "FREE_TRIAL"},
        )
        assert post_app_store(client, body).status_code == 200
    redemption = PromoRedemption.objects.get()
    assert redemption.promo_code is None and redemption.platform == Platform.IOS
    assert redemption.store_offer_id == "SPRING2026" and redemption.customer.external_id == IOS_CUSTOMER
    assert redemption.subscription.provider_subscription_id == APPLE_TRANSACTION_ID

    page = _support_client(client).get(reverse("admin:subscriptions_promoredemption_changelist"), {"q": "SPRING2026"})
    assert page.status_code == 200
    assert "SPRING2026" in page.content.decode() and IOS_CUSTOMER in page.content.decode()


def test_a_play_promo_code_is_a_redemption(client, catalog, customers, play_client):
    resource = play_resource("SUBSCRIPTION_STATE_ACTIVE", acknowledgementState="ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED")
    resource["signupPromotion"] = {"vanityCode": {"promotionCode": "WELCOMEBACK"}}
    resource["lineItems"][0]["offerDetails"] = {"basePlanId": "monthly", "offerId": "promo-1m", "offerTags": []}
    play_client.resources[PLAY_TOKEN] = resource
    assert post_play(client, play_push(code=4, message_id="code-1", event_ms=1767225605123)).status_code == 200
    assert post_play(client, play_push(code=2, message_id="code-2", event_ms=1767225606123)).status_code == 200
    redemption = PromoRedemption.objects.get()
    assert (redemption.platform, redemption.store_code, redemption.store_offer_id) == (
        "android",
        "WELCOMEBACK",
        "promo-1m",
    )
    assert redemption.customer.external_id == ANDROID_CUSTOMER


def test_a_play_one_time_code_is_a_redemption_without_a_name(client, catalog, customers, play_client):
    resource = play_resource("SUBSCRIPTION_STATE_ACTIVE", acknowledgementState="ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED")
    resource["signupPromotion"] = {"oneTimeCode": {}}
    play_client.resources[PLAY_TOKEN] = resource
    assert post_play(client, play_push(code=4, message_id="code-3", event_ms=1767225605123)).status_code == 200
    redemption = PromoRedemption.objects.get()
    assert redemption.code_label == "Android (Google Play) code" and redemption.platform == "android"


def test_an_introductory_offer_is_no_store_code(client, catalog, customers, apple_pki):
    _use_on_app_store(client, apple_pki)
    assert not PromoRedemption.objects.exists()
