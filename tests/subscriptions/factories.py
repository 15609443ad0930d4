import datetime

import factory
from djmoney.money import Money

from monetization import clock
from monetization.models import Provider
from subscriptions.models import Entitlement, Grant, Plan, Platform, Price, Product, Sku, Subscription
from tests.monetization.factories import CustomerFactory


class EntitlementFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Entitlement
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"feature_{n}")
    name = factory.LazyAttribute(lambda o: o.key.replace("_", " ").title())


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product
        skip_postgeneration_save = True

    code = factory.Sequence(lambda n: f"product-{n}")
    name = factory.Sequence(lambda n: f"Product {n}")

    @factory.post_generation
    def entitlements(self, create, extracted, **kwargs):
        if create and extracted:
            self.entitlements.add(*extracted)


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan

    product = factory.SubFactory(ProductFactory)
    code = factory.Sequence(lambda n: f"plan-{n}")
    interval = Plan.Interval.MONTH


class SkuFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Sku

    plan = factory.SubFactory(PlanFactory)
    platform = Platform.WEB
    store_product_id = factory.Sequence(lambda n: f"price_{n:010d}")


class PriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Price

    plan = factory.SubFactory(PlanFactory)
    country = "US"
    amount = Money("8.00", "USD")
    valid_from = factory.LazyFunction(lambda: clock.now() - datetime.timedelta(days=30))


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    customer = factory.SubFactory(CustomerFactory)
    plan = factory.SubFactory(PlanFactory)
    platform = Platform.WEB
    provider = Provider.STRIPE
    provider_subscription_id = factory.Sequence(lambda n: f"sub_{n:014d}")
    state = Subscription.State.ACTIVE
    current_period_start = factory.LazyFunction(lambda: clock.now() - datetime.timedelta(days=3))
    current_period_end = factory.LazyFunction(lambda: clock.now() + datetime.timedelta(days=27))


class GrantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Grant

    customer = factory.SubFactory(CustomerFactory)
    entitlement = factory.SubFactory(EntitlementFactory)
    reason = "Goodwill after an outage"
