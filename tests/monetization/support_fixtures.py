"""Fixtures for the support console tests (imported by tests/monetization/conftest.py)."""

import itertools

import pytest
from django.contrib.auth.models import Group, User
from djmoney.money import Money

from monetization.models import Provider
from monetization.providers.base import get_provider, reset_providers
from monetization.roles import sync_roles
from monetization.services.payments import payment_record
from subscriptions.services.payments import subscription_payment_record
from tests.monetization.factories import CustomerFactory

FAKE = "monetization.demo.providers.FakeProvider"
_user_ids = itertools.count(1)


@pytest.fixture
def fake_providers(settings):
    settings.PAYMENT_PROVIDERS = {"stripe": FAKE, "app_store": FAKE, "google_play": FAKE}
    reset_providers()
    yield get_provider
    reset_providers()


@pytest.fixture
def make_staff(db):
    """make_staff("Support") -> a staff user in that group (None: staff with no role)."""

    def make(role: str | None = None, *, superuser: bool = False) -> User:
        sync_roles()
        n = next(_user_ids)
        user = User.objects.create_user(
            username=f"{(role or 'staff').lower()}{n}", password="pw", is_staff=True, is_superuser=superuser
        )
        if role:
            user.groups.add(Group.objects.get(name=role))
        return User.objects.get(pk=user.pk)  # fresh permission cache

    return make


@pytest.fixture
def make_payment(db):
    def make(amount="50.00", currency="USD", tax="0", provider=Provider.STRIPE, customer=None, subscription=None):
        customer = customer or CustomerFactory()
        fields = {
            "customer": customer,
            "provider": provider,
            "provider_reference": f"ref_{next(_user_ids)}_{customer.pk}",
            "amount": Money(amount, currency),
            "fee": Money("0", currency),
            "tax": Money(tax, currency),
        }
        if subscription is not None:
            payment, _ = subscription_payment_record(subscription=subscription, **fields)
        else:
            payment, _ = payment_record(**fields)
        return payment

    return make


def register_with_fake(subscription) -> None:
    """Tell the fake provider about a subscription so extend/cancel find it."""
    from monetization import clock
    from monetization.providers.base import SubscriptionSnapshot

    get_provider(subscription.provider).subscriptions[subscription.provider_subscription_id] = SubscriptionSnapshot(
        provider=subscription.provider,
        provider_subscription_id=subscription.provider_subscription_id,
        store_product_id="sku",
        status="active",
        as_of=clock.now(),
        current_period_end=subscription.current_period_end,
    )
