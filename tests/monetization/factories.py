import factory
from djmoney.money import Money

from monetization.models import (
    ApiKey,
    AuditEvent,
    Customer,
    JournalEntry,
    JournalLine,
    Payment,
    Provider,
    ProviderIdentity,
)


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    external_id = factory.Sequence(lambda n: f"17{n:010d}")
    handle = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.handle}@example.com")
    country = "US"


class ProviderIdentityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProviderIdentity

    customer = factory.SubFactory(CustomerFactory)
    provider = Provider.STRIPE
    kind = ProviderIdentity.Kind.CUSTOMER_ID
    value = factory.Sequence(lambda n: f"cus_{n:014d}")


class ApiKeyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApiKey

    name = factory.Sequence(lambda n: f"app-{n}")
    prefix = factory.Sequence(lambda n: f"{n:012x}")
    key_hash = factory.LazyFunction(lambda: ApiKey.generate()[2])
    scopes = factory.LazyFunction(lambda: ["entitlements:read"])


class AuditEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditEvent

    actor_kind = AuditEvent.ActorKind.SYSTEM
    action = "test.event"
    object_type = "monetization.customer"
    object_id = "1"


class PaymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Payment

    customer = factory.SubFactory(CustomerFactory)
    provider = Provider.STRIPE
    provider_reference = factory.Sequence(lambda n: f"in_{n:014d}")
    amount = Money("8.00", "USD")
    fee = Money("0.53", "USD")
    tax = Money("0.00", "USD")


class JournalEntryFactory(factory.django.DjangoModelFactory):
    """A balanced entry: its two lines are inserted in one statement (the balance trigger checks per statement)."""

    class Meta:
        model = JournalEntry
        skip_postgeneration_save = True

    key = factory.Sequence(lambda n: f"test:entry:{n}")
    kind = "test"

    @factory.post_generation
    def lines(self, create, extracted, **kwargs):
        if not create:
            return
        amount = extracted or Money("10.00", "USD")
        JournalLine.objects.bulk_create(
            [
                JournalLine(entry=self, account="cash:stripe", amount=amount.amount, currency=str(amount.currency)),
                JournalLine(
                    entry=self, account="revenue:subscriptions", amount=-amount.amount, currency=str(amount.currency)
                ),
            ]
        )
