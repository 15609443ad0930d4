import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from monetization.demo.providers import FakePayoutProvider
from monetization.models import ApiKey

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
