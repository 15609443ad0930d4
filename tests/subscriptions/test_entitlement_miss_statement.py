"""The entitlement endpoint's cache miss runs its query compiled once per process
(subscriptions.entitlements._compiled): it must answer what building the query each time answers,
for every source and any time, and fall back to building it when a source's SQL is not a plain
function of the external id and the time."""

import datetime

import pytest
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext

from monetization import clock
from subscriptions import entitlements as ent
from subscriptions.entitlement_sources import subscription_entitlements
from subscriptions.models import Grant, Subscription
from subscriptions.services.grants import grant_create
from tests.monetization.factories import CustomerFactory
from tests.subscriptions.factories import EntitlementFactory, PlanFactory, ProductFactory, SubscriptionFactory
from tests.verified_orgs.factories import verified_org
from verified_orgs.services.affiliations import affiliation_accept, affiliation_invite

pytestmark = pytest.mark.django_db(transaction=True)

DAY = datetime.timedelta(days=1)


def _built(external_id: str, at: datetime.datetime):
    """What the miss answers when its query is built for the call (the path before compiling once)."""
    rows = list(ent._by_external_id(external_id, at))
    if not any(row[0] == ent._CUSTOMER_FOUND for row in rows):
        return None
    return ent._entitlements(rows)


def _by_statement(external_id: str, at: datetime.datetime):
    statement = ent._compiled()
    assert statement is not None
    rows = statement.rows("default", external_id, at)
    if not any(row[0] == ent._CUSTOMER_FOUND for row in rows):
        return None
    return ent._entitlements(rows)


@pytest.fixture
def customers(stripe_billing_double):
    """Customers holding entitlements from every source, in states whose answer depends on the time."""
    product = ProductFactory(entitlements=[EntitlementFactory(key="premium"), EntitlementFactory(key="hd")])
    plan = PlanFactory(product=product)
    now = clock.now()
    active, canceled, grace, granted = (CustomerFactory() for _ in range(4))
    SubscriptionFactory(customer=active, plan=plan)
    SubscriptionFactory(
        customer=canceled, plan=plan, state=Subscription.State.CANCELED, current_period_end=now + 2 * DAY
    )
    SubscriptionFactory(
        customer=grace,
        plan=plan,
        state=Subscription.State.IN_GRACE_PERIOD,
        current_period_end=now - DAY,
        grace_end=now + 3 * DAY,
    )
    grant_create(
        customer=granted,
        entitlement=EntitlementFactory(key="goodwill"),
        starts_at=now - DAY,
        ends_at=now + 5 * DAY,
        reason="Goodwill after an outage",
        granted_by=None,
    )
    org = verified_org()
    affiliate = CustomerFactory()
    _, token = affiliation_invite(organization=org, customer=affiliate, invited_by=org.billing_customer)
    affiliation_accept(token=token, customer=affiliate)
    return [active, canceled, grace, granted, affiliate, org.billing_customer, CustomerFactory()]


def test_the_compiled_miss_answers_what_the_built_query_answers(customers):
    now = clock.now()
    sources_seen = set()
    for at in (now, now + 2.5 * DAY, now + 4 * DAY, now + 6 * DAY, now + 60 * DAY):
        for customer in customers:
            expected = _built(customer.external_id, at)
            assert _by_statement(customer.external_id, at) == expected
            sources_seen |= {e.source for e in expected}
        assert _by_statement("no-such-customer", at) is None
    assert sources_seen == {"subscription", "grant", "organization"}  # every source was compared


def test_a_miss_is_one_query_and_the_compiled_statement_is_in_use(customers):
    assert ent._compiled() is not None  # the real sources compile once
    ent.resolve_entitlements_by_external_id(customers[0].external_id)  # the cache-trust check, if due
    with CaptureQueriesContext(connection) as queries:
        found = ent.resolve_entitlements_by_external_id(customers[0].external_id)
    assert [e.key for e in found] == ["hd", "premium"]
    assert len(queries.captured_queries) == 1


def test_a_source_not_a_plain_function_of_the_time_is_built_each_miss(customers, monkeypatch):
    """A source whose query uses a value made from the time (a day of leeway): compiling once would keep
    the first miss's value for good, so the miss builds its query instead, and answers correctly."""

    def with_leeway(customer, at):
        return subscription_entitlements(customer, at - DAY)

    def grants_with_leeway(customer, at):
        rows = Grant.objects.filter(customer_id=customer, revoked_at__isnull=True).filter(
            Q(ends_at__isnull=True) | Q(ends_at__gt=at - DAY)
        )
        return [
            ent.entitlement_rows(rows, source="grant", source_id="id", key="entitlement__key", expires_at="ends_at")
        ]

    monkeypatch.setattr(ent.entitlement_sources, "_entries", {"leeway": with_leeway, "grants": grants_with_leeway})
    assert ent._compiled() is None
    granted = customers[3]
    assert [e.key for e in ent.resolve_entitlements_by_external_id(granted.external_id)] == ["goodwill"]
    canceled = customers[1]
    with clock.frozen(clock.now() + 2.5 * DAY):  # the period ended half a day ago: a day of leeway keeps it
        assert {e.key for e in ent.resolve_entitlements_by_external_id(canceled.external_id)} == {"hd", "premium"}
