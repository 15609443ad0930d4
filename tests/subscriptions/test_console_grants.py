"""Issue 14, console fault 3: a grant needs an explicit end, what to grant is picked from a list, and a
double-submitted grant form grants once."""

import datetime
import threading

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from monetization import clock
from monetization.errors import ErrorCode, InvalidInput
from subscriptions.models import Grant
from subscriptions.services import actions
from tests.monetization.factories import CustomerFactory
from tests.monetization.support_fixtures import fake_providers, make_staff  # noqa: F401
from tests.subscriptions.factories import EntitlementFactory


def _page(user, customer) -> tuple[Client, str]:
    client = Client()
    client.force_login(user)
    return client, reverse("admin:monetization_customer_support", args=[customer.pk])


@pytest.mark.django_db
def test_a_grant_without_an_end_is_refused_and_writes_nothing(make_staff):
    support, customer, ent = make_staff("Support"), CustomerFactory(), EntitlementFactory(key="premium")
    with pytest.raises(InvalidInput) as refused:
        actions.staff_grant_create(customer=customer, user=support, reason="vip", entitlement=ent)
    assert refused.value.code == ErrorCode.GRANT_END_REQUIRED
    with pytest.raises(InvalidInput):
        actions.staff_grant_create(
            customer=customer, user=support, reason="vip", entitlement=ent, until=clock.now() - datetime.timedelta(1)
        )
    assert not Grant.objects.exists()
    # Open-ended is a choice made by name, not a blank left by mistake.
    grant = actions.staff_grant_create(customer=customer, user=support, reason="vip", entitlement=ent, open_ended=True)
    assert grant.ends_at is None

    client, url = _page(support, customer)
    answer = client.post(url, {"op": "grant", "entitlement": "premium", "reason": "forever?"}, follow=True)
    assert "A grant needs an end" in answer.content.decode()
    assert Grant.objects.count() == 1


@pytest.mark.django_db
def test_the_grant_form_offers_the_catalog_entitlements_to_pick(make_staff):
    EntitlementFactory(key="premium")
    EntitlementFactory(key="hd_video")
    client, url = _page(make_staff("Support"), CustomerFactory())
    html = client.get(url).content.decode()
    form = html[html.index('id="grant-form"') :]
    assert '<select name="entitlement"' in form
    assert '<option value="hd_video">' in form and '<option value="premium">' in form
    assert 'name="idempotency_key"' in form


@pytest.mark.django_db
def test_a_resubmitted_grant_form_grants_once(make_staff):
    EntitlementFactory(key="premium")
    customer = CustomerFactory()
    client, url = _page(make_staff("Support"), customer)
    form = {"op": "grant", "idempotency_key": "k" * 32, "entitlement": "premium", "days": "7", "reason": "outage"}
    client.post(url, form)
    second = client.post(url, form, follow=True)
    assert "already submitted" in second.content.decode()
    assert Grant.objects.filter(customer=customer).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_double_click_on_grant_grants_once(make_staff):
    """Two submissions of one rendered form at the same moment, in two connections."""
    EntitlementFactory(key="premium")
    customer = CustomerFactory()
    support = make_staff("Support")
    form = {"op": "grant", "idempotency_key": "d" * 32, "entitlement": "premium", "days": "3", "reason": "outage"}
    start = threading.Barrier(2)
    codes: list[int] = []

    def submit():
        try:
            client, url = _page(support, customer)
            start.wait()
            codes.append(client.post(url, form).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [302, 302]
    assert Grant.objects.filter(customer=customer).count() == 1
