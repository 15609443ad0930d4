import io
import random
from collections import Counter

import pytest
from django.core.management import call_command
from djmoney.money import Money

from monetization.models import AuditEvent, Customer, JournalEntry, Payment
from monetization.services.ledger import ledger_report
from subscriptions import demo
from subscriptions.models import DunningAttempt, Grant, Plan, Subscription
from subscriptions.services.sweep import lifecycle_sweep
from tests.monetization.factories import CustomerFactory
from tests.subscriptions.factories import EntitlementFactory, PlanFactory, PriceFactory, ProductFactory, SkuFactory


@pytest.fixture
def catalog(db):
    ad_free = EntitlementFactory(key="ad_free")
    product = ProductFactory(code="premium", entitlements=[ad_free], kind="consumer")
    for interval, usd, jpy in ((Plan.Interval.MONTH, "8.00", 1380), (Plan.Interval.YEAR, "84.00", 14300)):
        plan = PlanFactory(product=product, code=f"premium-{interval}", interval=interval)
        for platform in ("ios", "android", "web"):
            SkuFactory(plan=plan, platform=platform, store_product_id=f"{platform}.premium.{interval}")
        PriceFactory(plan=plan, country="US", amount=Money(usd, "USD"))
        PriceFactory(plan=plan, country="JP", amount=Money(jpy, "JPY"))
    org = ProductFactory(code="org", kind="organization")
    SkuFactory(plan=PlanFactory(product=org, code="org-monthly"), platform="web")  # never picked for consumers


def run_seed():
    out = io.StringIO()
    demo.seed(rng=random.Random(1), out=out, options={"seed": 7})
    return out.getvalue()


@pytest.mark.django_db
def test_demo_covers_every_state_on_every_platform_and_is_idempotent(catalog):
    for i in range(120):
        CustomerFactory(country="JP" if i % 4 == 0 else "US")
    run_seed()
    counts = (
        Subscription.objects.count(),
        Payment.objects.count(),
        JournalEntry.objects.count(),
        AuditEvent.objects.count(),
        DunningAttempt.objects.count(),
        Grant.objects.count(),
    )
    seen = Counter(Subscription.objects.values_list("platform", "state"))
    for platform, states in demo.STATES.items():
        for state in states:
            assert seen[(platform, state)] > 0, (platform, state)
    assert not Subscription.objects.filter(plan__product__kind="organization").exists()
    assert Payment.objects.filter(status="succeeded").count() == JournalEntry.objects.count()
    assert Payment.objects.filter(amount_currency="JPY").exists()
    assert ledger_report().balanced
    assert DunningAttempt.objects.exists()

    out = run_seed()
    assert "0 new" in out
    assert counts == (
        Subscription.objects.count(),
        Payment.objects.count(),
        JournalEntry.objects.count(),
        AuditEvent.objects.count(),
        DunningAttempt.objects.count(),
        Grant.objects.count(),
    )
    # The data is consistent with the lifecycle rules: nothing is overdue for the sweep.
    assert lifecycle_sweep().total == 0


@pytest.mark.django_db
def test_demo_skips_without_a_catalog():
    CustomerFactory()
    assert "skipping" in run_seed()
    assert not Subscription.objects.exists()


@pytest.mark.django_db
def test_seed_demo_command_runs_the_subscriptions_step(catalog):
    for _ in range(30):
        CustomerFactory()
    out = io.StringIO()
    call_command("seed_demo", "--customers", "30", stdout=out)
    assert "seeding subscriptions.demo" in out.getvalue()
    # The money core's step adds its own 30 demo customers beside the factory's; each gets one.
    assert Subscription.objects.count() == Customer.objects.count() == 60
