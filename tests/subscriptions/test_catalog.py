"""The catalog endpoint and the price lookup behind it."""

import datetime
from decimal import Decimal

import pytest
from djmoney.money import Money
from hypothesis import given
from hypothesis import strategies as st

from monetization import clock
from subscriptions import selectors
from subscriptions.demo import catalog as demo_catalog
from subscriptions.models import Platform, Price
from tests.subscriptions.factories import EntitlementFactory, PlanFactory, PriceFactory, ProductFactory, SkuFactory

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 6, 1, 12, tzinfo=datetime.UTC)


@pytest.fixture
def plan():
    product = ProductFactory(code="premium", name="Premium", rank=2, entitlements=[EntitlementFactory(key="ad_free")])
    plan = PlanFactory(product=product, code="premium-monthly")
    SkuFactory(plan=plan, platform=Platform.WEB, store_product_id="price_web")
    SkuFactory(plan=plan, platform=Platform.IOS, store_product_id="com.x.premium.monthly")
    return plan


def _price(plan, **kw):
    kw.setdefault("valid_from", NOW - datetime.timedelta(days=30))
    return PriceFactory(plan=plan, **kw)


def _lookup(platform, country, at=NOW):
    products = selectors.catalog_for(platform=platform, country=country, at=at)
    return {p.plan.code: p for product in products for p in product.plans}


def test_country_specific_price(plan):
    _price(plan, country="US", amount=Money("8.00", "USD"))
    _price(plan, country="DE", amount=Money("9.60", "EUR"))
    assert _lookup("web", "DE")["premium-monthly"].price.amount == Money("9.60", "EUR")
    assert _lookup("web", "US")["premium-monthly"].price.amount == Money("8.00", "USD")


def test_country_without_price_lists_the_plan_without_price(plan):
    _price(plan, country="US", amount=Money("8.00", "USD"))
    assert _lookup("web", "JP")["premium-monthly"].price is None


def test_platform_specific_price_beats_generic(plan):
    _price(plan, country="US", amount=Money("8.00", "USD"))
    _price(plan, country="US", platform=Platform.IOS, amount=Money("10.99", "USD"))
    assert _lookup("ios", "US")["premium-monthly"].price.amount == Money("10.99", "USD")
    assert _lookup("web", "US")["premium-monthly"].price.amount == Money("8.00", "USD")


def test_platform_price_of_another_platform_is_ignored(plan):
    _price(plan, country="US", platform=Platform.ANDROID, amount=Money("10.99", "USD"))
    assert _lookup("web", "US")["premium-monthly"].price is None


def test_validity_dates_pick_the_version_in_force(plan):
    _price(
        plan,
        country="US",
        amount=Money("16.00", "USD"),
        valid_from=NOW - datetime.timedelta(days=400),
        valid_until=NOW - datetime.timedelta(days=10),
    )
    _price(plan, country="US", amount=Money("22.00", "USD"), valid_from=NOW - datetime.timedelta(days=10))
    _price(plan, country="US", amount=Money("25.00", "USD"), valid_from=NOW + datetime.timedelta(days=10))
    assert _lookup("web", "US")["premium-monthly"].price.amount == Money("22.00", "USD")
    assert _lookup("web", "US", at=NOW - datetime.timedelta(days=20))["premium-monthly"].price.amount == Money(
        "16.00", "USD"
    )
    assert _lookup("web", "US", at=NOW + datetime.timedelta(days=11))["premium-monthly"].price.amount == Money(
        "25.00", "USD"
    )


def test_plans_without_a_sku_on_the_platform_are_not_listed(plan):
    assert "premium-monthly" not in _lookup("android", "US")


def test_catalog_endpoint_shape(client_with_scopes, plan):
    _price(plan, country="DE", amount=Money("9.60", "EUR"))
    with clock.frozen(NOW):
        response = client_with_scopes("catalog:read").get("/api/v1/catalog", {"platform": "ios", "country": "de"})
    assert response.status_code == 200
    body = response.json()
    assert body["country"] == "DE" and body["platform"] == "ios"
    [product] = body["products"]
    assert product["code"] == "premium" and product["entitlements"] == ["ad_free"]
    [entry] = product["plans"]
    assert entry["store_product_id"] == "com.x.premium.monthly"
    assert entry["price"] == {"amount": "9.60", "currency": "EUR"}
    assert entry["seat_price"] is None


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"platform": "windows", "country": "US"}, "unknown_platform"),
        ({"platform": "IOS", "country": "US"}, "unknown_platform"),
        ({"platform": "web", "country": "XX"}, "unknown_country"),
        ({"platform": "web", "country": "ZZ"}, "unknown_country"),
        ({"platform": "web", "country": "USA"}, "unknown_country"),
        ({"platform": "web"}, "invalid_input"),
    ],
)
def test_catalog_bad_input_is_400_with_code(client_with_scopes, params, code):
    response = client_with_scopes("catalog:read").get("/api/v1/catalog", params)
    assert response.status_code == 400
    assert response.json()["code"] == code


def test_catalog_needs_catalog_scope(client_with_scopes):
    response = client_with_scopes("entitlements:read").get("/api/v1/catalog", {"platform": "web", "country": "US"})
    assert response.status_code == 403
    assert response.json()["code"] == "api_key_scope_missing"


def test_catalog_query_count_does_not_grow_with_products(client_with_scopes, django_assert_max_num_queries):
    demo_catalog.seed(rng=None, out=_Null(), options={})
    client = client_with_scopes("catalog:read")
    client.get("/api/v1/catalog", {"platform": "web", "country": "US"})  # warm the key cache
    # Plans, SKUs, prices, entitlement keys, introductory offers.
    with django_assert_max_num_queries(5):
        response = client.get("/api/v1/catalog", {"platform": "web", "country": "US"})
    assert response.status_code == 200
    assert len(response.json()["products"]) == 5
    # A named customer adds their offer history: the customer, their uses and trials, the family peers.
    with django_assert_max_num_queries(9):
        response = client.get("/api/v1/catalog", {"platform": "web", "country": "US", "customer": "1700000000001"})
    assert response.status_code == 200


class _Null:
    def write(self, *_):
        pass


def test_demo_catalog_matches_published_numbers():
    demo_catalog.seed(rng=None, out=_Null(), options={})

    def price(platform, country, code, component="base"):
        entry = _lookup(platform, country, at=clock.now())[code]
        chosen = entry.price if component == "base" else entry.seat_price
        return chosen.amount

    assert price("web", "US", "premium-basic-monthly") == Money("3.00", "USD")
    assert price("web", "US", "premium-basic-annual") == Money("32.00", "USD")
    assert price("web", "US", "premium-monthly") == Money("8.00", "USD")
    assert price("web", "US", "premium-annual") == Money("84.00", "USD")
    assert price("web", "US", "premium-plus-monthly") == Money("22.00", "USD")
    assert price("web", "US", "premium-plus-annual") == Money("229.00", "USD")
    assert price("web", "US", "verified-organization-monthly") == Money("1000.00", "USD")
    assert price("web", "US", "verified-organization-monthly", "seat") == Money("50.00", "USD")
    # App stores cost more than the web, on store price points.
    for platform in ("ios", "android"):
        for country, code in (("US", "premium-monthly"), ("JP", "premium-plus-annual"), ("IN", "premium-monthly")):
            assert price(platform, country, code).amount > price("web", country, code).amount
    assert price("ios", "US", "premium-monthly") == Money("10.99", "USD")
    # Local currencies.
    for country, currency in {
        "DE": "EUR",
        "FR": "EUR",
        "ES": "EUR",
        "IT": "EUR",
        "GB": "GBP",
        "JP": "JPY",
        "IN": "INR",
        "BR": "BRL",
        "CA": "CAD",
        "AU": "AUD",
    }.items():
        assert str(price("web", country, "premium-monthly").currency) == currency
    assert price("web", "JP", "premium-monthly").amount == Decimal("980")
    # Premium+ had an older US price before the 2024-12 increase.
    old = _lookup("web", "US", at=datetime.datetime(2024, 6, 1, tzinfo=datetime.UTC))["premium-plus-monthly"]
    assert old.price.amount == Money("16.00", "USD")
    # Organizations sell on the web only.
    assert "verified-organization-monthly" not in _lookup("ios", "US", at=clock.now())
    assert Price.objects.filter(component="seat").exists()


def test_demo_catalog_skus_per_platform():
    from subscriptions.models import Sku

    demo_catalog.seed(rng=None, out=_Null(), options={})
    skus = {(s.plan.code, s.platform): s for s in Sku.objects.select_related("plan")}
    assert skus[("premium-monthly", "ios")].store_product_id == "com.x.premium.monthly"
    assert skus[("premium-annual", "android")].store_product_id == "premium"
    assert skus[("premium-annual", "android")].base_plan_id == "annual-autorenew"
    assert skus[("premium-monthly", "web")].store_product_id.startswith("price_1")
    assert skus[("premium-monthly", "web")].store_product_id != skus[("premium-annual", "web")].store_product_id


@given(
    amount=st.decimals(min_value=Decimal("0.50"), max_value=Decimal("5000"), places=2),
    currency=st.sampled_from(["USD", "EUR", "GBP", "BRL", "CAD", "AUD", "JPY", "INR"]),
)
def test_store_price_is_above_web_price_on_a_store_price_point(amount, currency):
    if currency in {"JPY", "INR"}:
        amount = max(amount.to_integral_value(), Decimal(1))
    price = demo_catalog.store_price(str(amount), currency)
    assert price > amount
    if currency == "JPY":
        assert price % 10 == 0
    elif currency == "INR":
        assert price % 10 == 9
    else:
        assert price % 1 == Decimal("0.99")
