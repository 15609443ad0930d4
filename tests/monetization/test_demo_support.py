import io
import random

import pytest
from django.contrib.auth.models import Group, User

from monetization.demo import support as demo_support
from monetization.models import Refund
from subscriptions.demo import support as subscriptions_demo_support
from subscriptions.models import Grant
from tests.monetization.support_fixtures import fake_providers, make_payment, make_staff  # noqa: F401
from tests.subscriptions.factories import EntitlementFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


def run():
    out = io.StringIO()
    demo_support.seed(rng=random.Random(1), out=out, options={})
    subscriptions_demo_support.seed(rng=random.Random(1), out=out, options={})
    return out.getvalue()


def test_demo_skips_without_staff():
    assert "skipping" in run()


def test_demo_seeds_every_refund_state_once(fake_providers, make_payment, make_staff):
    make_staff()
    for name, role in [("support", "Support"), ("finance", "Finance"), ("compliance", "Compliance")]:
        user = User.objects.create_user(username=name, is_staff=True)
        user.groups.add(Group.objects.get(name=role))
    EntitlementFactory(key="premium")
    for _ in range(18):
        sub = SubscriptionFactory()
        make_payment(amount="8.00", customer=sub.customer, subscription=sub)
    run()
    statuses = set(Refund.objects.values_list("status", flat=True))
    assert {"succeeded", "pending_approval", "rejected", "failed"} <= statuses
    assert Grant.objects.filter(revoked_at__isnull=False).exists()
    counts = (Refund.objects.count(), Grant.objects.count())
    assert "already seeded" in run()
    assert (Refund.objects.count(), Grant.objects.count()) == counts


def test_demo_refunds_succeed_without_provider_accounts(settings, make_payment, make_staff):
    """The demo has no Stripe / Play credentials: seeding talks to the test double, the server keeps its adapters."""
    from monetization.providers.base import get_provider, reset_providers

    settings.PAYMENT_PROVIDERS = {
        "stripe": "monetization.providers.stripe.StripeProvider",
        "app_store": "monetization.providers.app_store.AppStoreProvider",
        "google_play": "monetization.providers.google_play.GooglePlayProvider",
    }
    reset_providers()
    make_staff()
    for name, role in [("support", "Support"), ("finance", "Finance"), ("compliance", "Compliance")]:
        user = User.objects.create_user(username=name, is_staff=True)
        user.groups.add(Group.objects.get(name=role))
    EntitlementFactory(key="premium")
    for _ in range(18):
        sub = SubscriptionFactory()
        for _month in range(3):  # several payments per customer: one refund each, not three
            make_payment(amount="8.00", customer=sub.customer, subscription=sub)
    run()
    refunds = Refund.objects.all()
    assert refunds.filter(status="succeeded").count() >= 5
    assert not refunds.filter(failure_code="provider_not_configured").exists()
    assert len({r.customer_id for r in refunds}) == refunds.count()
    assert type(get_provider("stripe")).__name__ == "StripeProvider"
