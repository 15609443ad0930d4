"""Console fault 4 (part): the customer page's summary header, and timeline events linked to their objects."""

import datetime
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from djmoney.money import Money

from monetization import clock
from monetization.models import AuditEvent, Payment, Provider
from monetization.selectors_support import customer_summary, customer_timeline
from monetization.services.refunds import refund_request
from tests.monetization.factories import CustomerFactory
from tests.monetization.support_fixtures import fake_providers, make_payment, make_staff  # noqa: F401

pytestmark = pytest.mark.django_db


def test_summary_counts_lifetime_value_refunds_and_two_platforms(fake_providers, make_payment, make_staff):
    customer = CustomerFactory()
    first = make_payment(amount="1200.00", customer=customer)
    make_payment(amount="4.99", customer=customer, provider=Provider.APP_STORE)
    make_payment(amount="10.00", currency="EUR", customer=customer)
    refund_request(
        payment=first, amount=Money(10, "USD"), reason_code="goodwill", requested_by=make_staff(superuser=True)
    )
    make_payment(amount="99.00")  # someone else's

    summary = customer_summary(customer.pk)
    assert summary.refunds_30d == 1
    assert summary.disputes == 0
    assert summary.paying_providers == ["App Store", "Stripe"] and summary.paying_twice
    # A small refund goes through at once (fake provider): lifetime value is charged less refunded.
    assert summary.lifetime_value["EUR"] == 10
    assert summary.lifetime_value["USD"] == Decimal("1194.99")

    client = Client()
    client.force_login(make_staff("Support"))
    html = client.get(reverse("admin:monetization_customer_support", args=[customer.pk])).content.decode()
    assert 'id="customer-summary"' in html
    assert "1,194.99 USD" in html and "paying on two platforms at once" in html


def test_a_customer_without_history_has_an_empty_summary():
    summary = customer_summary(CustomerFactory().pk)
    assert summary.lifetime_value == {} and summary.refunds_30d == 0 and not summary.paying_twice


def test_timeline_events_link_to_their_objects(make_payment, make_staff):
    payment = make_payment()
    customer = payment.customer
    AuditEvent.objects.create(
        customer=customer,
        occurred_at=clock.now() - datetime.timedelta(minutes=1),
        actor_kind="system",
        action="payment.note",
        object_type="monetization.payment",
        object_id=str(payment.pk),
    )
    client = Client()
    client.force_login(make_staff(superuser=True))
    html = client.get(reverse("admin:monetization_customer_support", args=[customer.pk])).content.decode()
    link = reverse("admin:monetization_payment_change", args=[payment.pk])
    assert f'<a href="{link}">monetization.payment#{payment.pk}</a>' in html


def test_timeline_shows_charges_and_renewals_linked(make_payment, make_staff):
    payment = make_payment(amount="7.50")
    client = Client()
    client.force_login(make_staff("Support"))
    html = client.get(reverse("admin:monetization_customer_support", args=[payment.customer.pk])).content.decode()
    timeline = html[html.index('id="timeline"') :]
    assert f"payment.{payment.kind}" in timeline and "7.50 USD" in timeline
    assert reverse("admin:monetization_payment_change", args=[payment.pk]) in timeline


def test_paged_timeline_shows_each_payment_once(make_payment):
    customer = CustomerFactory()
    now = clock.now()
    payments = []
    for minutes in range(0, 50, 10):
        payment = make_payment(customer=customer)
        Payment.objects.filter(pk=payment.pk).update(occurred_at=now - datetime.timedelta(minutes=minutes + 5))
        payments.append(payment.pk)
    AuditEvent.objects.bulk_create(
        AuditEvent(
            customer=customer,
            occurred_at=now - datetime.timedelta(minutes=i),
            actor_kind="system",
            action="subscription.renew",
            object_type="subscriptions.subscription",
            object_id="1",
        )
        for i in range(60)
    )
    seen, cursor = [], ""
    while True:
        page = customer_timeline(customer.pk, cursor=cursor, limit=7)
        seen += [p.pk for p in page.payments]
        rows = page.rows
        assert [r.occurred_at for r in rows] == sorted((r.occurred_at for r in rows), reverse=True)
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(payments)
