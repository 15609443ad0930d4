"""The support console's pages cost a fixed number of queries, whatever the data: an upper bound per page.

``python -m bench support`` times these pages on a million rows a table; these bounds keep the query counts
it reports (load-independent) from creeping back. A bound that must rise says so in the commit that raises it.
"""

import pytest
from django.test import Client
from django.urls import reverse
from djmoney.money import Money

from monetization.models import ProviderIdentity
from monetization.services.refunds import refund_request
from tests.monetization.support_fixtures import fake_providers, make_payment, make_staff  # noqa: F401
from tests.monetization.test_support_admin import add_events, add_org_and_creator_history
from tests.subscriptions.factories import GrantFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db

SUPPORT = "Support"


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def queries(client, url, params, django_assert_max_num_queries, bound) -> int:
    with django_assert_max_num_queries(bound) as ctx:
        response = client.get(url, params)
    assert response.status_code in (200, 302), response.status_code
    return len(ctx.captured_queries)


@pytest.fixture
def console(fake_providers, make_payment, make_staff):
    """A customer with a history on every panel, and 60 customers, subscriptions and payments besides
    (more than a list page of 50)."""
    boss = make_staff(superuser=True)
    sub = SubscriptionFactory()
    customer = sub.customer
    ProviderIdentity.objects.create(customer=customer, provider="stripe", kind="customer_id", value="cus_COUNT1")
    payment = make_payment(amount="500", customer=customer, subscription=sub)
    refund_request(payment=payment, amount=Money(10, "USD"), reason_code="goodwill", requested_by=boss)
    GrantFactory(customer=customer)
    add_events(customer, 60)
    add_org_and_creator_history(customer, 2)
    for _ in range(60):
        other = SubscriptionFactory()
        make_payment(customer=other.customer, subscription=other)
    return {"customer": customer, "subscription": sub, "payment": payment}


# Bounds as measured for a Support member, session and permission queries included (the bench signs in as a
# superuser, and its million-row lists take the planner's estimate instead of a count). By the bench's counts,
# main at ac05ca7 made 3 more on the customer page, 5 more on the front search, and 6, 2 and 2 more on the
# customer, subscription and payment searches.
CUSTOMER_PAGE = 27
FIND_BY_PROVIDER_ID = 7
LIST_PAGE = {"customer": 9, "subscription": 7, "payment": 7}
SEARCH = {"customer": 9, "subscription": 7, "payment": 7}


def test_the_customer_page_has_a_bounded_query_count(console, make_staff, django_assert_max_num_queries):
    client = login(make_staff(SUPPORT))
    url = reverse("admin:monetization_customer_support", args=[console["customer"].pk])
    n = queries(client, url, None, django_assert_max_num_queries, CUSTOMER_PAGE)
    print(f"customer page: {n} queries")


def test_the_front_search_by_a_provider_id_has_a_bounded_query_count(
    console, make_staff, django_assert_max_num_queries
):
    client = login(make_staff(SUPPORT))
    url = reverse("admin:monetization_customer_find")
    term = console["payment"].provider_reference
    n = queries(client, url, {"q": term}, django_assert_max_num_queries, FIND_BY_PROVIDER_ID)
    print(f"front search: {n} queries")


@pytest.mark.parametrize("model", ["customer", "subscription", "payment"])
def test_each_list_page_and_its_exact_id_search_have_a_bounded_query_count(
    console, make_staff, django_assert_max_num_queries, model
):
    client = login(make_staff(SUPPORT))
    app = "subscriptions" if model == "subscription" else "monetization"
    url = reverse(f"admin:{app}_{model}_changelist")
    page = queries(client, url, None, django_assert_max_num_queries, LIST_PAGE[model])
    term = console["customer"].external_id if model == "customer" else str(console[model].pk)
    with django_assert_max_num_queries(SEARCH[model]) as ctx:
        response = client.get(url, {"q": term})
    assert response.status_code == 200
    assert console[model].pk in [row.pk for row in response.context["cl"].result_list]
    print(f"{model} list: {page} queries; exact-id search: {len(ctx.captured_queries)}")
