import pytest


@pytest.fixture(autouse=True)
def stripe_billing(stripe_billing_double):
    """Organizations are billed through the Stripe Billing double (a fresh book per test)."""
    return stripe_billing_double
