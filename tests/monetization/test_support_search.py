"""Console fault 2: the customer search is case-insensitive and partial, exact ids ranked first."""

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from djmoney.money import Money

from monetization.models import Customer, Refund
from monetization.selectors_support import customer_find
from tests.monetization.factories import CustomerFactory
from tests.monetization.support_fixtures import fake_providers, make_payment, make_staff  # noqa: F401

pytestmark = pytest.mark.django_db


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "term",
    ["ALICE.Liddell@Wonderland.ORG", "@Alice.L", "alice.l", "LIDDELL", "wonderland.org", "@ALICE.LIDDELL"],
)
def test_search_finds_part_of_a_handle_or_email_in_any_case(term):
    alice = CustomerFactory(handle="alice.liddell", email="alice.liddell@wonderland.org")
    CustomerFactory(handle="bob", email="bob@example.com")
    assert [c.pk for c in customer_find(term)] == [alice.pk]


def test_a_short_fragment_matches_only_exactly():
    # Under three characters no trigram narrows the search: exact (any case) only, never a scan.
    CustomerFactory(handle="abc123", email="abc@example.com")
    exact = CustomerFactory(handle="Ab", email="x@example.com")
    assert [c.pk for c in customer_find("ab")] == [exact.pk]


def test_an_exact_id_is_answered_before_any_partial_search(make_payment):
    by_handle = CustomerFactory(handle="ref_holder_fan", email="fan@example.com")
    payer = CustomerFactory(handle="someone", email="someone@example.com")
    payment = make_payment(customer=payer)
    # A handle that contains the payment reference would match partially: the id names the payer, so the
    # trigram search (10-30 ms on a million customers) is not run and the payer is the one answer.
    by_handle.handle = f"x{payment.provider_reference}x"
    by_handle.save(update_fields=["handle"])
    assert [c.pk for c in customer_find(payment.provider_reference)] == [payer.pk]
    # Part of it names no one exactly: then the partial search finds the handle.
    assert [c.pk for c in customer_find(payment.provider_reference[1:])] == [by_handle.pk]


def test_exact_matches_rank_ids_before_a_handle_in_any_case():
    by_handle = CustomerFactory(handle="Shared-Term", email="shared@example.com")
    by_id = CustomerFactory(external_id="shared-term", handle="other", email="other@example.com")
    assert [c.pk for c in customer_find("shared-term")] == [by_id.pk, by_handle.pk]
    # A number is a customer's number before it is anyone's handle.
    numbered = CustomerFactory(handle=str(by_id.pk), email="n@example.com")
    assert [c.pk for c in customer_find(str(by_id.pk))] == [by_id.pk, numbered.pk]


def test_a_provider_refund_id_finds_its_customer(make_payment):
    payment = make_payment()
    Refund.objects.create(
        customer=payment.customer,
        payment=payment,
        amount=Money(1, "USD"),
        reason_code="goodwill",
        provider_refund_id="re_3PZKq2Abc",
    )
    CustomerFactory()
    assert [c.pk for c in customer_find("re_3PZKq2Abc")] == [payment.customer.pk]


def test_the_console_finder_and_the_customer_list_use_the_same_search(make_staff):
    alice = CustomerFactory(handle="alice.liddell", email="alice@wonderland.org")
    CustomerFactory(handle="bob")
    client = login(make_staff("Support"))
    response = client.get(reverse("admin:monetization_customer_find"), {"q": "ALICE.lid"})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:monetization_customer_support", args=[alice.pk])
    listing = login(make_staff(superuser=True)).get(reverse("admin:monetization_customer_changelist"), {"q": "Wonder"})
    assert [c.pk for c in listing.context["cl"].result_list] == [alice.pk]


@pytest.mark.parametrize(
    ("lookup", "index"), [("handle", "customer_handle_trgm_idx"), ("email", "customer_email_trgm_idx")]
)
def test_the_partial_search_uses_the_trigram_indexes(lookup, index):
    CustomerFactory.create_batch(5)
    qs = Customer.objects.filter(**{f"{lookup}__icontains": "lidd"}).order_by()
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        # Few rows: take the planner off the table and primary-key scans, so the plan shows whether the
        # trigram index can serve UPPER(column) LIKE '%...%' at all.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert index in plan
