"""The audit row is the event: written with the change, never without it, and published by the relay once the
change's transaction is final."""

from datetime import UTC, datetime

import pytest
from django.db import connection, transaction

from monetization import clock
from monetization.event_catalogue import CATALOGUE, event_schema, event_type_for_audit
from monetization.models import AuditEvent, EventDelivery, EventEndpoint, OutboxEvent, OutboxRelay
from monetization.models.outbox import event_id_for_audit
from monetization.outbox.delivery import entitlements_fill, event_envelope
from monetization.services.outbox import outbox_relay
from subscriptions.models import Subscription
from subscriptions.services.grants import grant_create
from subscriptions.services.sweep import ACTOR_LABEL, lifecycle_sweep
from tests.monetization.factories import CustomerFactory
from tests.monetization.support_fixtures import make_staff  # noqa: F401
from tests.subscriptions.factories import EntitlementFactory, PlanFactory, ProductFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db

S = Subscription.State


@pytest.fixture
def plan(db):
    product = ProductFactory(code="premium", entitlements=[EntitlementFactory(key="verified_badge")])
    return PlanFactory(product=product, code="premium-monthly")


def test_a_staff_grant_publishes_its_event_with_entitlements_cause_and_audit_id(make_staff):
    staff = make_staff(superuser=True)
    endpoint = EventEndpoint.objects.create(url="http://127.0.0.1:9/hook", secret="s1")
    EventEndpoint.objects.create(url="http://127.0.0.1:9/other", secret="s2", event_types=["EXPIRATION"])
    customer = CustomerFactory()
    entitlement = EntitlementFactory(key="ads_free")
    grant = grant_create(customer=customer, entitlement=entitlement, reason="Outage goodwill", granted_by=staff)
    assert not OutboxEvent.objects.exists()  # the change wrote its audit row and nothing else

    assert outbox_relay() == 1
    event = OutboxEvent.objects.get()
    audit = AuditEvent.objects.get(action="grant.create")
    assert event.type == "TEMPORARY_ENTITLEMENT_GRANT"
    assert event.audit_event_id == audit.pk
    assert event.event_id == event_id_for_audit(audit.pk)
    assert event.customer_external_id == customer.external_id
    assert event.object_id == str(grant.pk)
    assert event.entitlements is None  # resolved by the first delivery, not inside the grant's transaction
    entitlements_fill([event])
    assert [e["key"] for e in event.entitlements] == ["ads_free"]
    assert event.cause == {
        "kind": "staff_action",
        "label": staff.get_username(),
        "actor": staff.get_username(),
        "reason": "Outage goodwill",
    }
    # Only the endpoint that wants this type gets a delivery.
    assert list(EventDelivery.objects.values_list("endpoint_id", "event_id", "status")) == [
        (endpoint.pk, event.pk, "pending")
    ]


def test_a_change_that_rolls_back_leaves_no_event(make_staff):
    staff = make_staff(superuser=True)
    EventEndpoint.objects.create(url="http://127.0.0.1:9/hook", secret="s1")
    customer = CustomerFactory()
    with pytest.raises(RuntimeError), transaction.atomic():
        grant_create(customer=customer, entitlement=EntitlementFactory(), reason="x", granted_by=staff)
        raise RuntimeError("crash after the change")
    assert outbox_relay() == 0
    assert not OutboxEvent.objects.exists()
    assert not EventDelivery.objects.exists()


def test_the_sweep_bulk_expiry_emits_one_expiration_per_subscription_in_its_own_transactions(plan, settings):
    """10,000 expired in chunks: 10,000 EXPIRATION events, each written by the transaction that wrote
    its audit row (same xmin), each with a delivery to the subscribed endpoint."""
    n = 10_000
    endpoint = EventEndpoint.objects.create(url="http://127.0.0.1:9/hook", secret="s1")
    start, end = datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC)
    customers = CustomerFactory._meta.model.objects.bulk_create(
        [CustomerFactory.build(external_id=f"sweep-{i}", handle=f"h{i}") for i in range(n)]
    )
    Subscription.objects.bulk_create(
        [
            SubscriptionFactory.build(
                customer=c,
                plan=plan,
                state=S.CANCELED,
                auto_renew=False,
                current_period_start=start,
                current_period_end=end,
                started_at=start,
            )
            for c in customers
        ]
    )
    with clock.frozen(datetime(2027, 2, 2, tzinfo=UTC)):
        result = lifecycle_sweep(chunk_size=2_500)
    assert result.total == n

    # Each expiry's audit row (the event) was written by the transaction that moved its subscription.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*), count(DISTINCT a.object_id), count(DISTINCT a.xmin::text)
            FROM monetization_auditevent a JOIN subscriptions_subscription s ON s.id::text = a.object_id
            WHERE a.action = 'subscription.expire' AND a.xmin = s.xmin AND s.state = 'expired'
            """
        )
        same_transaction, subscriptions, transactions = cursor.fetchone()
    assert same_transaction == n
    assert subscriptions == n
    assert transactions == 4  # one per chunk
    assert not OutboxEvent.objects.exists()  # the sweep writes no event rows of its own

    assert outbox_relay(batch=3_000) == n
    assert outbox_relay() == 0  # published once
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*) FROM monetization_outboxevent o JOIN monetization_auditevent a ON a.id = o.audit_event_id
            WHERE o.type = 'EXPIRATION' AND a.action = 'subscription.expire' AND a.object_id = o.object_id
              AND o.customer_id = a.customer_id
            """
        )
        (published,) = cursor.fetchone()
    assert published == OutboxEvent.objects.count() == n
    assert EventDelivery.objects.filter(endpoint=endpoint, status="pending").count() == n

    event = OutboxEvent.objects.order_by("id").first()
    assert event.cause["label"] == ACTOR_LABEL and event.cause["kind"] == "schedule"
    assert event.entitlements is None  # resolved once, by the first delivery
    entitlements_fill([event])
    event.refresh_from_db()
    assert event.entitlements == []  # the customer had only this subscription
    assert event.customer_external_id.startswith("sweep-")


def test_an_event_id_is_derived_from_its_audit_row_and_a_second_relay_makes_no_copy(make_staff):
    staff, customer, entitlement = make_staff(superuser=True), CustomerFactory(), EntitlementFactory(key="ads_free")
    EventEndpoint.objects.create(url="http://127.0.0.1:9/hook", secret="s1")
    for _ in range(3):
        grant_create(customer=customer, entitlement=entitlement, reason="Outage goodwill", granted_by=staff)
    assert outbox_relay() == 3
    events = list(OutboxEvent.objects.order_by("id").values_list("event_id", "audit_event_id"))
    assert [e for e, _ in events] == [event_id_for_audit(a) for _, a in events]
    assert [e for e, _ in events] == sorted(e for e, _ in events)  # increasing: appended to the unique index
    # A relay killed after publishing but before moving on publishes the same rows again: same ids, no copies.
    OutboxRelay.objects.update(txid=0, audit_id=0)
    outbox_relay()
    assert list(OutboxEvent.objects.order_by("id").values_list("event_id", "audit_event_id")) == events
    assert EventDelivery.objects.count() == 3


def test_every_catalogue_event_has_a_versioned_schema_that_its_envelope_satisfies(make_staff):
    jsonschema = pytest.importorskip("jsonschema")
    staff = make_staff(superuser=True)
    grant_create(customer=CustomerFactory(), entitlement=EntitlementFactory(), reason="x", granted_by=staff)
    outbox_relay()
    event = OutboxEvent.objects.get()
    for name in CATALOGUE:
        schema = event_schema(name)
        assert schema["$id"].endswith(f":{name}:v{CATALOGUE[name].version}")
    jsonschema.validate(event_envelope(event), event_schema(event.type))


@pytest.mark.parametrize(
    ("action", "before", "after", "expected"),
    [
        ("subscription.create", None, {"state": "active"}, "INITIAL_PURCHASE"),
        ("subscription.activate", {"state": "trialing"}, {"state": "active"}, "RENEWAL"),
        ("subscription.update", {"auto_renew": True}, {"auto_renew": False}, "CANCELLATION"),
        ("subscription.update", {"auto_renew": False}, {"auto_renew": True}, "UNCANCELLATION"),
        ("subscription.update", {"current_period_end": "a"}, {"current_period_end": "b"}, "RENEWAL"),
        ("subscription.update", {"quantity": 1}, {"quantity": 1}, None),
        ("subscription.enter_grace_period", None, None, "BILLING_ISSUE"),
        ("subscription.expire", None, None, "EXPIRATION"),
        ("refund.succeed", None, None, "REFUND"),
        ("refund.request", None, None, None),
        ("organization.verify", None, None, "ORGANIZATION_VERIFIED"),
        ("organization.start_review", {"state": "applied"}, {"state": "in_review"}, "ORGANIZATION_STATE_CHANGED"),
        ("affiliation.accept", None, None, "ORGANIZATION_SEATS_CHANGED"),
        ("creator.activate", {"state": "onboarding"}, {"state": "active"}, "CREATOR_ELIGIBILITY_CHANGED"),
        ("cycle.approve", None, None, "CREATOR_CYCLE_CHANGED"),
        ("cycle.dry_run", None, None, None),
        ("payout.hold", None, None, "CREATOR_PAYOUT_CHANGED"),
        ("api_key.create", None, None, None),
        ("payment.succeed", None, {"kind": "charge"}, "PAYMENT_SUCCEEDED"),
        ("win_back.target", None, {"rule": "r"}, "WIN_BACK_TARGETED"),
    ],
)
def test_audited_actions_map_to_catalogue_events(action, before, after, expected):
    found = event_type_for_audit(action, before, after)
    assert found == expected
    assert found is None or found in CATALOGUE
