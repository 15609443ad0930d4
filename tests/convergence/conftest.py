import os

import pytest

from monetization.providers.base import reset_providers
from subscriptions.models import Plan, Platform
from subscriptions.services.provider_sync import _SKU_CACHE
from tests.subscriptions.factories import EntitlementFactory, PlanFactory, SkuFactory
from tests.webhooks.conftest import apple_pki, catalog  # noqa: F401  (shared fixtures)
from tests.webhooks.support import STRIPE_SECRET


@pytest.fixture(autouse=True)
def no_clock_moves(monkeypatch):
    """The simulators' books say where a provider's events leave a subscription, not where the clock takes it
    afterwards: the workers run the lifecycle sweep once a month unless told otherwise (a soak runs past its
    5 minutes, and the Stripe histories end around today; the sweep's moves are tested in tests/subscriptions)."""
    monkeypatch.setenv("SUBSCRIPTION_SWEEP_INTERVAL", os.environ.get("SUBSCRIPTION_SWEEP_INTERVAL", str(30 * 86400)))


@pytest.fixture(autouse=True)
def real_adapters(settings):
    """The live server verifies signatures with the real adapters, keys made in the tests."""
    settings.PAYMENT_PROVIDERS = {
        "stripe": "monetization.providers.stripe.StripeProvider",
        "app_store": "monetization.providers.app_store.AppStoreProvider",
        "google_play": "monetization.providers.google_play.GooglePlayProvider",
    }
    settings.STRIPE_WEBHOOK_SECRET = STRIPE_SECRET
    reset_providers()
    _SKU_CACHE.clear()
    yield settings
    reset_providers()
    _SKU_CACHE.clear()


@pytest.fixture
def store_catalog(catalog):
    """The shared catalog with the store side of a subscription group: Premium Plus (a higher tier that grants
    more) and Premium yearly (the same tier, another duration) sold on the App Store and Google Play, so the
    simulators can upgrade, downgrade and crossgrade."""
    plus = Plan.objects.get(code="premium-plus-monthly")
    plus.product.entitlements.add(*catalog.product.entitlements.all(), EntitlementFactory(key="priority_support"))
    SkuFactory(plan=plus, platform=Platform.IOS, store_product_id="com.example.premium.plus.monthly")
    SkuFactory(plan=plus, platform=Platform.ANDROID, store_product_id="premium_plus", base_plan_id="monthly")
    yearly = PlanFactory(product=catalog.product, code="premium-yearly", interval=Plan.Interval.YEAR)
    SkuFactory(plan=yearly, platform=Platform.IOS, store_product_id="com.example.premium.yearly")
    _SKU_CACHE.clear()
    return catalog


@pytest.fixture
def soak_workers(celery_worker_process, celery_worker_factory):
    """``SOAK_WORKERS`` workers in all (default 1, as CI runs): a soak spreads applying over several, as
    production does (the first one runs beat); each spends most of its time waiting for the database."""
    for _ in range(int(os.environ.get("SOAK_WORKERS", "1")) - 1):
        celery_worker_factory(beat=False).start()
    return celery_worker_process
