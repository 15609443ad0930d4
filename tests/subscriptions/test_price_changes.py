"""Price changes under the stores' rules, scheduled by a superuser in the admin: new subscribers pay the new
price from its date; existing ones keep theirs unless a web change with enough notice moves them; a change
moving App Store or Play subscribers is refused (the store asks them) and writes nothing."""

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse
from djmoney.money import Money

from monetization import clock
from monetization.models import AuditEvent
from monetization.roles import SUPPORT, sync_roles
from subscriptions import selectors
from subscriptions.models import Price, PriceChange
from subscriptions.services.price_changes import subscription_price
from tests.subscriptions.factories import PlanFactory, PriceFactory, SkuFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db
DAY = datetime.timedelta(days=1)


@pytest.fixture
def plan():
    plan = PlanFactory(code="premium-monthly")
    SkuFactory(plan=plan, platform="web", store_product_id="price_web")
    PriceFactory(plan=plan, country="US", amount=Money("8.00", "USD"), valid_from=clock.now() - 400 * DAY)
    return plan


@pytest.fixture
def boss(client):
    user = get_user_model().objects.create_superuser("boss", password="pw-long-enough-123")
    client.force_login(user)
    return user


def _form(plan, *, platform="web", days=40, existing="keep", amount="10.00"):
    when = clock.now() + days * DAY
    return {
        "plan": plan.pk,
        "platform": platform,
        "country": "us",
        "amount_0": amount,
        "amount_1": "USD",
        "effective_at_0": when.strftime("%Y-%m-%d"),
        "effective_at_1": when.strftime("%H:%M:%S"),
        "existing_subscribers": existing,
        "reason": "2027 price review",
    }


def _schedule(client, plan, **kw):
    return client.post(reverse("admin:subscriptions_pricechange_add"), _form(plan, **kw))


def test_new_subscribers_pay_the_new_price_from_its_date_existing_ones_keep_theirs(client, boss, plan):
    existing = SubscriptionFactory(plan=plan, platform="web", started_at=clock.now() - 100 * DAY)
    response = _schedule(client, plan, days=10)  # keeping existing prices needs no notice
    assert response.status_code == 302, response.content.decode()[:3000]
    change = PriceChange.objects.get()
    assert change.country == "US" and change.price.amount == Money("10.00", "USD")
    event = AuditEvent.objects.get(action="price_change.scheduled", actor=boss)
    assert event.after["existing_subscribers"] == "keep" and event.reason == "2027 price review"

    def catalog_price(at):
        products = selectors.catalog_for(platform="web", country="US", at=at)
        return products[0].plans[0].price.amount

    assert catalog_price(clock.now()) == Money("8.00", "USD")
    assert catalog_price(change.effective_at + DAY) == Money("10.00", "USD")
    assert subscription_price(existing, country="US", at=change.effective_at + 60 * DAY).amount == Money("8.00", "USD")
    newcomer = SubscriptionFactory(plan=plan, platform="web", started_at=change.effective_at + DAY)
    assert subscription_price(newcomer, country="US", at=change.effective_at + 40 * DAY).amount == Money("10.00", "USD")


def test_a_web_change_that_moves_existing_subscribers_applies_from_the_effective_date(client, boss, plan):
    existing = SubscriptionFactory(plan=plan, platform="web", started_at=clock.now() - 100 * DAY)
    assert _schedule(client, plan, days=31, existing="move").status_code == 302
    change = PriceChange.objects.get()
    assert subscription_price(existing, country="US", at=change.effective_at - DAY).amount == Money("8.00", "USD")
    assert subscription_price(existing, country="US", at=change.effective_at + DAY).amount == Money("10.00", "USD")


@pytest.mark.parametrize(
    ("platform", "days", "code"),
    [
        ("web", 20, "price_change_notice_too_short"),  # moving web subscribers needs 30 days' notice
        ("ios", 60, "price_change_store_consent"),  # Apple asks each subscriber
        ("android", 60, "price_change_store_consent"),  # Google runs the change on the base plan
    ],
)
def test_moving_subscribers_against_the_rules_is_refused_and_writes_nothing(client, boss, plan, platform, days, code):
    response = _schedule(client, plan, platform=platform, days=days, existing="move")
    assert response.status_code == 200  # the form again, with the rule's sentence
    errors = response.context["adminform"].form.non_field_errors().as_data()
    assert errors[0].code == code  # (a store change moving subscribers also breaks the table's constraint)
    assert not PriceChange.objects.exists() and Price.objects.count() == 1
    assert not AuditEvent.objects.filter(action="price_change.scheduled").exists()


def test_the_notice_period_is_a_dated_setting(client, boss, plan, settings):
    settings.SUBSCRIPTION_PRICE_CHANGE_RULES = {
        "stripe": [{"since": "2000-01-01", "notice_days": 30}, {"since": "2026-01-01", "notice_days": 45}]
    }
    response = _schedule(client, plan, days=40, existing="move")
    assert [e.code for e in response.context["adminform"].form.non_field_errors().as_data()] == [
        "price_change_notice_too_short"
    ]
    assert _schedule(client, plan, days=46, existing="move").status_code == 302


def test_support_sees_price_changes_but_cannot_schedule_one(client, plan):
    sync_roles()
    agent = get_user_model().objects.create_user("support1", password="pw-long-enough-123", is_staff=True)
    agent.groups.add(Group.objects.get(name=SUPPORT))
    client.force_login(agent)
    assert client.get(reverse("admin:subscriptions_pricechange_changelist")).status_code == 200
    assert _schedule(client, plan).status_code == 403
    assert not PriceChange.objects.exists()
