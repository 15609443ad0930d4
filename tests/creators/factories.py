import datetime
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from djmoney.money import Money

from creators.models import CreatorAccount, CreatorStats, DailyEngagement, PayoutProfile, RevenueShareCycle
from monetization import clock
from monetization.services.ledger import Leg, Posting, journal_post
from tests.monetization.factories import CustomerFactory


class CreatorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CreatorAccount

    customer = factory.SubFactory(CustomerFactory)
    state = CreatorAccount.State.ACTIVE


class CreatorStatsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CreatorStats

    creator = factory.SubFactory(CreatorFactory)
    verified_followers = 1000
    account_created_at = factory.LazyFunction(lambda: clock.now() - datetime.timedelta(days=365))


class PayoutProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PayoutProfile

    creator = factory.SubFactory(CreatorFactory)
    payout_account_id = factory.Sequence(lambda n: f"acct_{n:016d}")
    tax_form_status = PayoutProfile.TaxFormStatus.VERIFIED
    tax_form_type = PayoutProfile.TaxFormType.W9


def make_creator(state=CreatorAccount.State.ACTIVE, *, profile=True, followers=1000, **kwargs) -> CreatorAccount:
    creator = CreatorFactory(state=state, **kwargs)
    CreatorStatsFactory(creator=creator, verified_followers=followers)
    if profile:
        PayoutProfileFactory(creator=creator)
    else:
        PayoutProfile.objects.create(creator=creator)
    return creator


def engagement(creator, day, *, source="premium", impressions=0, replies=0, likes=0, reposts=0):
    from creators.services.engagement import ensure_engagement_partitions

    ensure_engagement_partitions([(day.year, day.month)])
    return DailyEngagement.objects.create(
        creator=creator,
        day=day,
        source=source,
        impressions=impressions,
        replies=replies,
        likes=likes,
        reposts=reposts,
    )


_rev = iter(range(10**9))


def post_revenue(amount: str, *, at: datetime.datetime, currency: str = "USD"):
    value = Decimal(amount)
    return journal_post(
        Posting(
            key=f"test:revenue:{next(_rev)}:{at.isoformat()}",
            kind="payment",
            legs=[Leg("cash:stripe", Money(value, currency)), Leg("revenue:subscriptions", Money(-value, currency))],
            posted_at=at,
        )
    )[0]


def staff(username: str, *roles: str, superuser: bool = False):
    from monetization.roles import sync_roles

    sync_roles()
    user = get_user_model().objects.create_user(username=username, password="pw", is_staff=True, is_superuser=superuser)
    for role in roles:
        user.groups.add(Group.objects.get(name=role))
    return get_user_model().objects.get(pk=user.pk)  # fresh permission cache


def cycle(period=datetime.date(2026, 9, 1)) -> RevenueShareCycle:
    return RevenueShareCycle.objects.create(period=period)
