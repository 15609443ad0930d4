import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from monetization.demo.providers import FakePayoutProvider
from monetization.models import ApiKey
from monetization.providers.base import get_provider, reset_providers
from subscriptions.services.provider_sync import _SKU_CACHE

pytest_plugins = ["tests.celery_worker"]


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _payout_double(settings):
    """Creator payouts go to the in-memory double (its transfers forgotten between tests), never to Stripe."""
    settings.CREATOR_PAYOUT_PROVIDER = "monetization.demo.providers.FakePayoutProvider"
    FakePayoutProvider.transfers.clear()
    yield
    FakePayoutProvider.transfers.clear()


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def make_api_key(db):
    """Create a client API key with the given scopes; returns (full key, ApiKey)."""

    def make(*scopes: str, name: str = "test-app") -> tuple[str, ApiKey]:
        full, prefix, key_hash = ApiKey.generate()
        key = ApiKey.objects.create(name=name, prefix=prefix, key_hash=key_hash, scopes=list(scopes))
        return full, key

    return make


@pytest.fixture
def client_with_scopes(api_client, make_api_key):
    def make(*scopes: str) -> APIClient:
        full, _ = make_api_key(*scopes)
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {full}")
        return api_client

    return make


@pytest.fixture
def stripe_billing_double(settings):
    """Organizations are billed through the Stripe Billing double (a fresh book per test): any test that
    verifies an organization needs it, since verifying creates the organization's Stripe subscription."""
    double = "monetization.demo.providers.StripeBillingDouble"
    settings.PAYMENT_PROVIDERS = {**settings.PAYMENT_PROVIDERS, "stripe": double}
    reset_providers()
    _SKU_CACHE.clear()  # SKU rows are recreated per test
    yield get_provider("stripe")
    reset_providers()
    _SKU_CACHE.clear()
