import pytest

from monetization.providers.base import get_provider, reset_providers
from subscriptions.services.provider_sync import _SKU_CACHE

BILLING_DOUBLE = "monetization.demo.providers.StripeBillingDouble"


@pytest.fixture(autouse=True)
def stripe_billing(settings):
    """Organizations are billed through the Stripe Billing double (a fresh book per test)."""
    settings.PAYMENT_PROVIDERS = {**settings.PAYMENT_PROVIDERS, "stripe": BILLING_DOUBLE}
    reset_providers()
    _SKU_CACHE.clear()  # SKU rows are recreated per test
    yield get_provider("stripe")
    reset_providers()
    _SKU_CACHE.clear()
