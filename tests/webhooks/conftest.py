import pytest

from monetization.models import Provider, ProviderIdentity
from monetization.providers.base import get_provider, reset_providers
from subscriptions.models import Platform
from subscriptions.services.provider_sync import _SKU_CACHE
from tests.monetization.factories import CustomerFactory
from tests.subscriptions.factories import EntitlementFactory, PlanFactory, ProductFactory, SkuFactory

from .support import (
    APP_APPLE_ID,
    BUNDLE_ID,
    PLAY_PACKAGE,
    PLAY_PUSH_TOKEN,
    STRIPE_SECRET,
    ApplePKI,
    RecordedPlayClient,
    RecordedStripeHTTPClient,
)

WEB_CUSTOMER, IOS_CUSTOMER, ANDROID_CUSTOMER = "1700000000001", "1700000000002", "1700000000003"
APP_ACCOUNT_TOKEN = "7e3fb20b-4cdb-47cc-936d-99d65f608138"


@pytest.fixture(scope="session")
def apple_pki():
    return ApplePKI()


@pytest.fixture(autouse=True)
def provider_settings(settings, tmp_path, apple_pki):
    settings.PAYMENT_PROVIDERS = {
        "stripe": "monetization.providers.stripe.StripeProvider",
        "app_store": "monetization.providers.app_store.AppStoreProvider",
        "google_play": "monetization.providers.google_play.GooglePlayProvider",
    }
    settings.STRIPE_WEBHOOK_SECRET = STRIPE_SECRET
    settings.STRIPE_API_KEY = "sk_test_recorded"
    settings.APP_STORE_ROOT_CERTS = str(apple_pki.write_root(tmp_path / "AppleRootCA-test.cer"))
    settings.APP_STORE_BUNDLE_ID = BUNDLE_ID
    settings.APP_STORE_APP_APPLE_ID = APP_APPLE_ID
    settings.APP_STORE_ENVIRONMENT = "Production"
    settings.GOOGLE_PLAY_PACKAGE_NAME = PLAY_PACKAGE
    settings.GOOGLE_PLAY_PUSH_TOKEN = PLAY_PUSH_TOKEN
    reset_providers()
    _SKU_CACHE.clear()  # SKU rows are recreated per test
    yield settings
    reset_providers()
    _SKU_CACHE.clear()


@pytest.fixture
def stripe_http():
    client = RecordedStripeHTTPClient({})
    get_provider("stripe").http_client = client
    return client


@pytest.fixture
def play_client():
    client = RecordedPlayClient()
    get_provider("google_play").client = client
    return client


@pytest.fixture
def catalog(db):
    product = ProductFactory(
        code="premium", entitlements=[EntitlementFactory(key="verified_badge"), EntitlementFactory(key="edit_post")]
    )
    plan = PlanFactory(product=product, code="premium-monthly")
    plus = PlanFactory(product=ProductFactory(code="premium-plus", rank=2), code="premium-plus-monthly")
    SkuFactory(plan=plan, platform=Platform.WEB, store_product_id="price_1QpremiumMonthlyUSD0001")
    SkuFactory(plan=plan, platform=Platform.IOS, store_product_id="com.example.premium.monthly")
    SkuFactory(plan=plan, platform=Platform.ANDROID, store_product_id="premium", base_plan_id="monthly")
    SkuFactory(plan=plus, platform=Platform.WEB, store_product_id="price_1QpremiumPlusMonthlyUSD1")
    return plan


@pytest.fixture
def customers(db):
    web = CustomerFactory(external_id=WEB_CUSTOMER)
    ios = CustomerFactory(external_id=IOS_CUSTOMER)
    android = CustomerFactory(external_id=ANDROID_CUSTOMER)
    ProviderIdentity.objects.create(
        customer=ios, provider=Provider.APP_STORE, kind=ProviderIdentity.Kind.APP_ACCOUNT_TOKEN, value=APP_ACCOUNT_TOKEN
    )
    return {"web": web, "ios": ios, "android": android}
