"""Offers in the admin: superusers create and edit product families and introductory offers (audited);
staff roles may only look."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse

from monetization.models import AuditEvent
from monetization.roles import SUPPORT, sync_roles
from subscriptions.models import IntroductoryOffer, ProductFamily
from tests.subscriptions.factories import PlanFactory, ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def family():
    family = ProductFamily.objects.create(key="premium", name="Premium")
    family.products.add(ProductFactory(code="premium"))
    return family


def _offer_form(family, plan, **overrides):
    form = {
        "family": family.pk,
        "plan": plan.pk,
        "platform": "android",
        "payment_mode": "pay_as_you_go",
        "duration": 3,
        "duration_unit": "month",
        "price_0": "4.00",
        "price_1": "USD",
        "countries": "us,de",
        "play_offer_id": "intro-3m",
        "play_offer_tags": "intro,spring",
        "stripe_coupon_id": "",
        "is_active": "on",
        "created_at_0": "2026-11-30",
        "created_at_1": "00:00:00",
    }
    form.update(overrides)
    return form


def test_a_superuser_creates_and_edits_an_introductory_offer_audited(client, family):
    plan = PlanFactory(product=family.products.get(), code="premium-monthly")
    boss = get_user_model().objects.create_superuser("boss", password="pw-long-enough-123")
    client.force_login(boss)
    response = client.post(reverse("admin:subscriptions_introductoryoffer_add"), _offer_form(family, plan))
    assert response.status_code == 302, response.content.decode()[:3000]
    offer = IntroductoryOffer.objects.get()
    assert offer.countries == ["DE", "US"] and offer.play_offer_tags == ["intro", "spring"]
    created = AuditEvent.objects.get(action="introductory_offer.created", actor=boss, object_id=str(offer.pk))
    assert created.after["play_offer_id"] == "intro-3m"

    response = client.post(
        reverse("admin:subscriptions_introductoryoffer_change", args=[offer.pk]), _offer_form(family, plan, duration=6)
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    changed = AuditEvent.objects.get(action="introductory_offer.changed", object_id=str(offer.pk))
    assert changed.before["duration"] == 3 and changed.after["duration"] == 6


def test_a_free_trial_with_a_price_is_refused_and_nothing_saved(client, family):
    plan = PlanFactory(product=family.products.get(), code="premium-monthly")
    client.force_login(get_user_model().objects.create_superuser("boss", password="pw-long-enough-123"))
    response = client.post(
        reverse("admin:subscriptions_introductoryoffer_add"), _offer_form(family, plan, payment_mode="free_trial")
    )
    assert response.status_code == 200  # the form again, with the constraint's error
    assert not IntroductoryOffer.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="introductory_offer").exists()


def test_a_family_change_is_audited_with_its_products(client, family):
    plus = ProductFactory(code="premium-plus")
    boss = get_user_model().objects.create_superuser("boss", password="pw-long-enough-123")
    client.force_login(boss)
    response = client.post(
        reverse("admin:subscriptions_productfamily_change", args=[family.pk]),
        {
            "key": "premium",
            "name": "Premium",
            "apple_subscription_group_id": "21482345",
            "products": [family.products.get().pk, plus.pk],
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    event = AuditEvent.objects.get(action="product_family.changed")
    assert event.before["products"] == ["premium"] and event.after["products"] == ["premium", "premium-plus"]


def test_support_sees_offers_but_cannot_change_them(client, family):
    plan = PlanFactory(product=family.products.get(), code="premium-monthly")
    offer = IntroductoryOffer.objects.create(
        family=family, plan=plan, platform="ios", payment_mode="free_trial", duration=7
    )
    sync_roles()
    agent = get_user_model().objects.create_user("support1", password="pw-long-enough-123", is_staff=True)
    agent.groups.add(Group.objects.get(name=SUPPORT))
    client.force_login(agent)
    assert client.get(reverse("admin:subscriptions_introductoryoffer_changelist")).status_code == 200
    edit = client.post(
        reverse("admin:subscriptions_introductoryoffer_change", args=[offer.pk]), _offer_form(family, plan)
    )
    assert edit.status_code == 403
    assert IntroductoryOffer.objects.get().payment_mode == "free_trial"
    assert not AuditEvent.objects.filter(action__startswith="introductory_offer").exists()
