"""Offerings: the paywall per platform and country, cached per arm, forgotten on every edit."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse
from djmoney.money import Money

from monetization import clock
from monetization.models import AuditEvent
from monetization.roles import FINANCE, SUPPORT
from monetization.services.permissions import System
from subscriptions.models import (
    Experiment,
    ExperimentArm,
    ExperimentExposure,
    Offering,
    OfferingCountry,
    OfferingPackage,
    Platform,
    Price,
)
from subscriptions.services.experiments import experiment_start, experiment_stop
from tests.creators.factories import staff
from tests.monetization.factories import CustomerFactory
from tests.monetization.test_cache_outage import private_redis  # noqa: F401 (a fixture)
from tests.subscriptions.factories import PlanFactory, PriceFactory, ProductFactory, SkuFactory

# Services' on_commit cache deletes run, as in production.
pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/offerings"
SYSTEM = System("test")


@pytest.fixture
def catalog():
    product = ProductFactory(code="premium", name="Premium")
    monthly = PlanFactory(product=product, code="premium-monthly", interval="month")
    annual = PlanFactory(product=product, code="premium-annual", interval="year", trial_days=7)
    ios_only = PlanFactory(product=product, code="premium-weekly", interval="week")
    for plan in (monthly, annual):
        SkuFactory(plan=plan, platform=Platform.WEB, store_product_id=f"price_{plan.code}")
        SkuFactory(plan=plan, platform=Platform.IOS, store_product_id=f"com.x.{plan.code}")
    SkuFactory(plan=ios_only, platform=Platform.IOS, store_product_id="com.x.weekly")
    for plan, us, de in ((monthly, "9.99", "8.99"), (annual, "79.99", "69.99"), (ios_only, "2.99", "2.49")):
        PriceFactory(plan=plan, country="US", amount=Money(us, "USD"))
        PriceFactory(plan=plan, country="DE", amount=Money(de, "EUR"))
    default = Offering.objects.create(key="default", name="Default", is_current=True, metadata={"title": "Go Premium"})
    OfferingPackage.objects.create(offering=default, key="annual", position=0, plan=annual)
    OfferingPackage.objects.create(offering=default, key="monthly", position=1, plan=monthly)
    OfferingPackage.objects.create(offering=default, key="weekly", position=2, plan=ios_only, platform=Platform.IOS)
    sale = Offering.objects.create(key="sale", name="Sale")
    OfferingPackage.objects.create(offering=sale, key="monthly", position=0, plan=monthly)
    return {"monthly": monthly, "annual": annual, "default": default, "sale": sale}


def _get(client, **params):
    response = client.get(URL, params)
    assert response.status_code == 200, response.content
    return response.json()


def _packages(body):
    return [(p["key"], p["plan"], p["price"]["amount"], p["price"]["currency"]) for p in body["packages"]]


def test_the_current_offering_lists_its_packages_in_order_for_the_platform_and_country(catalog, client_with_scopes):
    client = client_with_scopes("catalog:read")
    web = _get(client, platform="web", country="us")
    assert web["offering"] == {"key": "default", "name": "Default", "metadata": {"title": "Go Premium"}}
    assert web["country"] == "US" and web["arms"] == []
    assert _packages(web) == [
        ("annual", "premium-annual", "79.99", "USD"),
        ("monthly", "premium-monthly", "9.99", "USD"),
    ]
    assert web["packages"][0]["trial_days"] == 7 and web["packages"][0]["store_product_id"] == "price_premium-annual"
    ios = _get(client, platform="ios", country="US")
    assert [p["key"] for p in ios["packages"]] == ["annual", "monthly", "weekly"]
    assert ios["packages"][2]["store_product_id"] == "com.x.weekly"


def test_a_country_override_shows_another_offering_there_only(catalog, client_with_scopes):
    OfferingCountry.objects.create(country="de", offering=catalog["sale"])
    client = client_with_scopes("catalog:read")
    assert _get(client, platform="web", country="DE")["offering"]["key"] == "sale"
    assert _packages(_get(client, platform="web", country="DE")) == [("monthly", "premium-monthly", "8.99", "EUR")]
    assert _get(client, platform="web", country="US")["offering"]["key"] == "default"


def test_hits_come_from_the_cache_and_any_edit_forgets_them_on_commit(catalog, client_with_scopes):
    client = client_with_scopes("catalog:read")
    first = _get(client, platform="web", country="US")
    # A set-based update announces nothing: the cached body still answers (it is a hit).
    Price.objects.filter(plan=catalog["monthly"], country="US").update(amount=Money("1.00", "USD"))
    assert _get(client, platform="web", country="US") == first
    # A saved edit (an admin form, a service) forgets every cached body once it commits.
    package = OfferingPackage.objects.get(offering=catalog["default"], key="monthly")
    package.position = 0
    package.save()
    OfferingPackage.objects.filter(pk=OfferingPackage.objects.get(offering=catalog["default"], key="annual").pk).update(
        position=5
    )
    catalog["default"].save()
    after = _get(client, platform="web", country="US")
    assert _packages(after) == [
        ("monthly", "premium-monthly", "1.00", "USD"),
        ("annual", "premium-annual", "79.99", "USD"),
    ]


def test_an_edit_rolled_back_keeps_the_cache(catalog, client_with_scopes):
    from django.db import transaction

    client = client_with_scopes("catalog:read")
    _get(client, platform="web", country="US")
    with pytest.raises(RuntimeError), transaction.atomic():
        catalog["default"].save()
        raise RuntimeError
    Price.objects.filter(plan=catalog["monthly"], country="US").update(amount=Money("1.00", "USD"))
    assert _packages(_get(client, platform="web", country="US"))[1][2] == "9.99"


def test_bad_input_is_a_400_with_a_code_and_an_unknown_customer_a_404(catalog, client_with_scopes):
    client = client_with_scopes("catalog:read")
    assert client.get(URL, {"platform": "blackberry", "country": "US"}).json()["code"] == "unknown_platform"
    assert client.get(URL, {"platform": "web", "country": "XX"}).json()["code"] == "unknown_country"
    assert client.get(URL, {"country": "US"}).status_code == 400
    assert client.get(URL, {"platform": "web", "country": "US", "customer": "nobody"}).status_code == 404
    assert client_with_scopes("entitlements:read").get(URL, {"platform": "web", "country": "US"}).status_code == 403


def _paywall_experiment(catalog, key="paywall-test"):
    experiment = Experiment.objects.create(key=key, name=key, salt="salt-1")
    ExperimentArm.objects.create(experiment=experiment, key="control", weight=1, paywall=catalog["default"])
    ExperimentArm.objects.create(experiment=experiment, key="sale", weight=1, paywall=catalog["sale"])
    experiment_start(actor=SYSTEM, experiment_id=experiment.pk)
    return experiment


def test_an_offering_experiment_shows_each_customer_their_arm_and_records_one_exposure(catalog, client_with_scopes):
    experiment = _paywall_experiment(catalog)
    client = client_with_scopes("catalog:read")
    customers = [CustomerFactory() for _ in range(12)]
    seen = {}
    for customer in customers:
        for _ in range(3):  # a miss, then hits
            body = _get(client, platform="web", country="US", customer=customer.external_id)
            seen.setdefault(customer.pk, set()).add((body["offering"]["key"], tuple(body["arms"])))
    exposures = dict(ExperimentExposure.objects.filter(experiment=experiment).values_list("customer_id", "arm__key"))
    assert len(exposures) == len(customers)
    for customer in customers:
        (shown,) = seen[customer.pk]
        arm = exposures[customer.pk]
        assert shown == ({"control": "default", "sale": "sale"}[arm], (f"paywall-test.{arm}",))
    assert set(exposures.values()) == {"control", "sale"}
    # Without a customer the client sees the default paywall and nobody is exposed.
    assert _get(client, platform="web", country="US")["arms"] == []


def test_stopping_a_price_experiment_keeps_every_assigned_customers_price(catalog, client_with_scopes):
    arm_price = Price.objects.create(
        plan=catalog["monthly"], country="US", amount=Money("4.99", "USD"), valid_from=clock.now(), valid_until=None
    )
    # A price row of its own for the arm: it is no catalog price, so it only reaches the arm's customers.
    Price.objects.filter(pk=arm_price.pk).update(valid_from=clock.now() + datetime.timedelta(days=3650))
    arm_price.refresh_from_db()
    experiment = Experiment.objects.create(key="monthly-price", name="monthly price", salt="p")
    ExperimentArm.objects.create(experiment=experiment, key="control", weight=1, offering={"price": "catalog"})
    ExperimentArm.objects.create(experiment=experiment, key="cheaper", weight=1, price=arm_price)
    experiment_start(actor=SYSTEM, experiment_id=experiment.pk)
    client = client_with_scopes("catalog:read")

    def monthly(customer):
        body = _get(client, platform="web", country="US", customer=customer.external_id)
        return next(p["price"]["amount"] for p in body["packages"] if p["key"] == "monthly")

    exposed = [CustomerFactory() for _ in range(10)]
    before = {c.pk: monthly(c) for c in exposed}
    arms = dict(ExperimentExposure.objects.values_list("customer_id", "arm__key"))
    assert {before[c.pk] for c in exposed if arms[c.pk] == "cheaper"} == {"4.99"}
    assert {before[c.pk] for c in exposed if arms[c.pk] == "control"} == {"9.99"}
    assert set(arms.values()) == {"control", "cheaper"}

    experiment_stop(actor=SYSTEM, experiment_id=experiment.pk)  # forgets the cache: answers are recomputed
    assert {c.pk: monthly(c) for c in exposed} == before
    newcomer = CustomerFactory()
    assert monthly(newcomer) == "9.99"
    assert not ExperimentExposure.objects.filter(customer=newcomer).exists()


def test_support_edits_offerings_in_the_admin_audited_and_finance_may_only_look(catalog, client, client_with_scopes):
    api = client_with_scopes("catalog:read")
    assert _get(api, platform="web", country="US")["offering"]["key"] == "default"
    changelist = reverse("admin:subscriptions_offering_changelist")
    client.force_login(staff("fin", FINANCE))
    assert client.get(changelist).status_code == 200
    # Without the change permission the action is not offered: nothing happens.
    client.post(changelist, {"action": "make_current", "_selected_action": [catalog["sale"].pk]})
    assert not Offering.objects.get(key="sale").is_current
    assert _get(api, platform="web", country="US")["offering"]["key"] == "default"

    agent = staff("agent", SUPPORT)
    client.force_login(agent)
    client.post(changelist, {"action": "make_current", "_selected_action": [catalog["sale"].pk]})
    assert _get(api, platform="web", country="US")["offering"]["key"] == "sale"
    event = AuditEvent.objects.get(action="offering.made_current")
    assert event.actor_id == agent.pk and event.before["previous"] == "default"

    # The change form with its package inline: saved, audited with the packages, served at once.
    change = reverse("admin:subscriptions_offering_change", args=[catalog["sale"].pk])
    package = catalog["sale"].packages.get()
    response = client.post(
        change,
        {
            "key": "sale",
            "name": "Summer sale",
            "metadata": '{"title": "50% off"}',
            "packages-TOTAL_FORMS": "2",
            "packages-INITIAL_FORMS": "1",
            "packages-0-id": package.pk,
            "packages-0-offering": catalog["sale"].pk,
            "packages-0-position": "1",
            "packages-0-key": "monthly",
            "packages-0-plan": catalog["monthly"].pk,
            "packages-0-platform": "",
            "packages-1-offering": catalog["sale"].pk,
            "packages-1-position": "0",
            "packages-1-key": "annual",
            "packages-1-plan": catalog["annual"].pk,
            "packages-1-platform": "",
            "countries-TOTAL_FORMS": "0",
            "countries-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    body = _get(api, platform="web", country="US")
    assert body["offering"] == {"key": "sale", "name": "Summer sale", "metadata": {"title": "50% off"}}
    assert [p["key"] for p in body["packages"]] == ["annual", "monthly"]
    changed = AuditEvent.objects.get(action="offering.changed")
    assert changed.actor_id == agent.pk
    assert changed.before["packages"] == ["0:monthly:premium-monthly:all"]
    assert changed.after["packages"] == ["0:annual:premium-annual:all", "1:monthly:premium-monthly:all"]


def test_concurrent_first_requests_expose_a_customer_once_and_agree(catalog, make_api_key):
    from rest_framework.test import APIClient

    from tests.concurrency import run_at_once

    experiment = _paywall_experiment(catalog)
    customer = CustomerFactory()
    full, _ = make_api_key("catalog:read")
    seen = []

    def ask():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {full}")
        seen.append(_get(client, platform="web", country="US", customer=customer.external_id)["offering"]["key"])

    assert run_at_once(ask, [()] * 8) == []
    assert len(seen) == 8 and len(set(seen)) == 1
    exposure = ExperimentExposure.objects.get(experiment=experiment, customer=customer)
    assert seen[0] == {"control": "default", "sale": "sale"}[exposure.arm.key]


def test_an_edit_during_a_redis_outage_holds_during_and_after(catalog, client_with_scopes, private_redis):
    from monetization.models import CacheInvalidation
    from subscriptions.services.offerings import GENERATION_KEY

    client = client_with_scopes("catalog:read")
    assert _get(client, platform="web", country="US")["offering"]["name"] == "Default"
    assert private_redis.raw_exists(GENERATION_KEY)

    private_redis.stop()
    catalog["default"].name = "Edited while Redis is down"
    catalog["default"].save()
    assert _get(client, platform="web", country="US")["offering"]["name"] == "Edited while Redis is down"
    assert CacheInvalidation.objects.exists()  # the forgetting waits for Redis

    private_redis.start()
    assert private_redis.raw_exists(GENERATION_KEY)  # the stale generation came back with Redis
    assert _get(client, platform="web", country="US")["offering"]["name"] == "Edited while Redis is down"
    assert not CacheInvalidation.objects.exists()
