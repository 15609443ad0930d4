import pytest

from monetization.providers.base import reset_providers
from subscriptions.services.provider_sync import _SKU_CACHE
from tests.webhooks.conftest import apple_pki, catalog  # noqa: F401  (shared fixtures)
from tests.webhooks.support import STRIPE_SECRET


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
