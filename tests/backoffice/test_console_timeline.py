"""Console fault 4: the customer page's summary line names the current plan and platform, and the timeline
holds every kind of event (payments and renewals, refunds, grants, provider events, staff actions, org and
creator events), each linked to its admin page."""

import datetime

import pytest
from django.test import Client
from django.urls import reverse
from djmoney.money import Money

from creators.services.accounts import creator_transition
from monetization import clock
from monetization.models import AuditEvent, WebhookEvent
from monetization.services.refunds import refund_request
from subscriptions.models import Plan
from subscriptions.services.grants import grant_create
from tests.creators.factories import make_creator
from tests.monetization.factories import CustomerFactory
from tests.monetization.support_fixtures import fake_providers, make_payment, make_staff  # noqa: F401
from tests.subscriptions.factories import EntitlementFactory, PlanFactory, SubscriptionFactory
from tests.verified_orgs.factories import applied_org

pytestmark = pytest.mark.django_db


def support_page(user, customer) -> str:
    client = Client()
    client.force_login(user)
    return client.get(reverse("admin:monetization_customer_support", args=[customer.pk])).content.decode()


def summary_of(html: str) -> str:
    start = html.index('id="customer-summary"')
    return html[start : html.index("</p>", start)]


def test_the_summary_names_the_current_plan_and_its_platform_linked(make_staff):
    customer = CustomerFactory()
    plan = PlanFactory(interval=Plan.Interval.MONTH)
    live = SubscriptionFactory(customer=customer, plan=plan, platform="ios", provider="app_store")
    SubscriptionFactory(customer=customer, plan=plan, state="expired")  # not current
    summary = summary_of(support_page(make_staff("Support"), customer))
    link = reverse("admin:subscriptions_subscription_change", args=[live.pk])
    assert "Current plan" in summary
    assert f'<a href="{link}">{plan.product.name} monthly on iOS (App Store) (active)</a>' in summary
    assert summary.count("subscriptions/subscription/") == 1

    nobody = summary_of(support_page(make_staff("Support"), CustomerFactory()))
    assert "<strong>Current plan</strong> none" in nobody


def test_the_timeline_links_every_kind_of_event(fake_providers, make_payment, make_staff):
    customer = CustomerFactory()
    boss = make_staff(superuser=True)
    payment = make_payment(amount="20.00", customer=customer)
    refund = refund_request(payment=payment, amount=Money(5, "USD"), reason_code="goodwill", requested_by=boss)
    grant = grant_create(
        customer=customer,
        reason="outage",
        granted_by=boss,
        entitlement=EntitlementFactory(),
        ends_at=clock.now() + datetime.timedelta(days=7),
    )
    creator = make_creator(customer=customer)
    creator_transition(creator_id=creator.pk, transition="suspend", actor=boss, reason="spam wave")
    org = applied_org(billing_customer=customer)
    sub = SubscriptionFactory(customer=customer)
    received = WebhookEvent.objects.create(
        provider="stripe", event_id="evt_timeline_1", event_type="invoice.paid", occurred_at=clock.now(), payload={}
    )
    AuditEvent.objects.create(
        customer=customer,
        occurred_at=clock.now(),
        actor_kind="provider",
        actor_label="stripe:evt_timeline_1",
        action="subscription.renew",
        object_type="subscriptions.subscription",
        object_id=str(sub.pk),
    )

    html = support_page(make_staff("Support"), customer)
    timeline = html[html.index('id="timeline"') :]
    for link in (
        reverse("admin:monetization_payment_change", args=[payment.pk]),
        reverse("admin:monetization_refund_change", args=[refund.pk]),
        reverse("admin:subscriptions_grant_change", args=[grant.pk]),
        reverse("admin:creators_creatoraccount_change", args=[creator.pk]),
        reverse("admin:verified_orgs_organization_change", args=[org.pk]),
        reverse("admin:subscriptions_subscription_change", args=[sub.pk]),
        reverse("admin:monetization_webhookevent_change", args=[received.pk]),  # what the provider sent
        reverse("admin:monetization_auditevent_changelist") + f"?actor={boss.pk}",  # what the staff member did
    ):
        assert f'href="{link}"' in timeline, link
    for action in ("refund.", "grant.", "creator.suspend", "organization.", "subscription.renew", "payment."):
        assert action in timeline, action
