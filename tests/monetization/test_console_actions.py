"""Issue 14, console fault 1: the customer page offers each staff member only what they may do, and only
in the states and on the platforms where it applies."""

import re

import pytest
from django.test import Client
from django.urls import reverse
from djmoney.money import Money

from monetization.models import Provider
from monetization.services.refunds import refund_request
from subscriptions.models import Subscription
from tests.monetization.support_fixtures import fake_providers, make_payment, make_staff  # noqa: F401
from tests.subscriptions.factories import EntitlementFactory, GrantFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


def page(user, customer) -> str:
    client = Client()
    client.force_login(user)
    return client.get(reverse("admin:monetization_customer_support", args=[customer.pk])).content.decode()


def offered(html: str, subscription) -> list[str]:
    """The actions in the subscription's row (an empty list when the row offers none)."""
    row = re.search(rf'name="target" value="{subscription.pk}">\s*<select[^>]*>(.*?)</select>', html, re.S)
    return re.findall(r'<option value="([a-z_]+)"', row.group(1)) if row else []


@pytest.fixture
def customer_page_world(fake_providers, make_payment, make_staff):
    EntitlementFactory(key="premium")
    support = make_staff("Support")
    active = SubscriptionFactory()
    customer = active.customer
    expired = SubscriptionFactory(customer=customer, state=Subscription.State.EXPIRED, auto_renew=False)
    stripe_payment = make_payment(amount="500", customer=customer, subscription=active)
    apple_payment = make_payment(amount="9.99", customer=customer, provider=Provider.APP_STORE)
    pending = refund_request(
        payment=stripe_payment, amount=Money(300, "USD"), reason_code="goodwill", requested_by=support
    )
    GrantFactory(customer=customer)
    return {
        "customer": customer,
        "support": support,
        "active": active,
        "expired": expired,
        "stripe_payment": stripe_payment,
        "apple_payment": apple_payment,
        "pending": pending,
    }


def test_finance_and_compliance_are_not_offered_supports_forms(customer_page_world, make_staff):
    w = customer_page_world
    for role in ("Finance", "Compliance"):
        html = page(make_staff(role), w["customer"])
        assert "Request refund" not in html, role
        assert 'id="grant-form"' not in html, role
        assert "cancel" not in offered(html, w["active"]), role


def test_support_is_offered_neither_approval_nor_grant_revocation(customer_page_world):
    w = customer_page_world
    html = page(w["support"], w["customer"])
    assert 'value="approve_refund"' not in html
    assert "your own request" in html
    assert ">Revoke</button>" not in html
    # ... but its own tools: refunds, grants, subscription actions.
    assert "Request refund" in html and 'id="grant-form"' in html


def test_app_store_payments_offer_no_refund(customer_page_world):
    w = customer_page_world
    html = page(w["support"], w["customer"])
    refund_links = re.findall(r"/customer/payment/(\d+)/refund/", html)
    assert str(w["stripe_payment"].pk) in refund_links
    assert str(w["apple_payment"].pk) not in refund_links
    form = html[html.index('id="refund-form"') : html.index('id="refunds"')]
    assert f'value="{w["apple_payment"].pk}"' not in form


def test_subscription_actions_follow_the_state(customer_page_world, make_staff):
    w = customer_page_world
    html = page(w["support"], w["customer"])
    active = offered(html, w["active"])
    assert "cancel" in active and "extend" in active
    assert "resume" not in active  # not paused
    assert offered(html, w["expired"]) == []
    # Compliance revokes, and does nothing else to a subscription.
    html = page(make_staff("Compliance"), w["customer"])
    assert offered(html, w["active"]) == ["revoke"]
    assert ">Revoke</button>" in html
    # A paused subscription is offered resume, not pause.
    Subscription.objects.filter(pk=w["active"].pk).update(state=Subscription.State.PAUSED)
    paused = offered(page(w["support"], w["customer"]), w["active"])
    assert "resume" in paused and "pause" not in paused


def test_finance_sees_the_approval_of_someone_elses_refund(customer_page_world, make_staff):
    html = page(make_staff("Finance"), customer_page_world["customer"])
    assert 'value="approve_refund"' in html
