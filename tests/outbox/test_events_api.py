"""GET /api/v1/events: committed events in commit-safe order after a cursor; the catalogue beside it."""

import psycopg
import pytest

from monetization.services.audit import audit_record
from monetization.services.outbox import outbox_relay
from tests.monetization.factories import CustomerFactory
from tests.outbox.test_delivery import write
from tests.processes import database_url

pytestmark = pytest.mark.django_db(transaction=True)


def pull(client, after=None, limit=2):
    params = {"limit": limit, **({"after": after} if after else {})}
    response = client.get("/api/v1/events", params)
    assert response.status_code == 200, response.content
    return response.json()


def test_pages_through_every_event_in_order_and_waits_at_the_end(client_with_scopes):
    client = client_with_scopes("events:read")
    customer = CustomerFactory()
    written = write(customer, 5)
    seen, after = [], None
    while True:
        page = pull(client, after)
        seen += page["events"]
        after = page["next"]
        if not page["has_more"]:
            break
    assert [e["id"] for e in seen] == [str(e.event_id) for e in written]
    assert seen[0]["customer"] == {"external_id": customer.external_id}
    assert pull(client, after)["events"] == []  # nothing new: the same cursor comes back
    assert pull(client, after)["next"] == after
    later = write(customer, 1)
    assert [e["id"] for e in pull(client, after)["events"]] == [str(later[0].event_id)]


def test_an_event_whose_transaction_commits_late_is_not_skipped(client_with_scopes):
    """T1 writes an audit row (an event) and stays open; T2 writes the next one and commits: the relay must not
    move past T2's row until T1 has committed, or it would never publish T1's."""
    client = client_with_scopes("events:read")
    customer = CustomerFactory()
    with psycopg.connect(database_url()) as slow:
        slow.execute(
            "INSERT INTO monetization_auditevent (occurred_at, actor_kind, actor_label, action, object_type, "
            "object_id, customer_id, reason, request_id) "
            "VALUES (now(), 'system', 't', 'subscription.payment_recovered', 'subscriptions.subscription', '1', %s, "
            "'', '')",
            [customer.pk],
        )
        fast = audit_record(
            action="subscription.payment_recovered",
            object_type="subscriptions.subscription",
            object_id=2,
            customer=customer,
            actor_label="t",
        )  # committed, with a higher id
        assert outbox_relay() == 0  # held back while an older transaction may still add events
        assert pull(client, limit=100)["events"] == []
        slow.commit()
    assert outbox_relay() == 2
    page = pull(client, limit=100)
    audit_ids = [e["audit_event_id"] for e in page["events"]]
    assert len(audit_ids) == 2 and audit_ids[1] == fast.pk and audit_ids[0] < fast.pk


def test_bad_cursor_and_missing_scope_are_refused(client_with_scopes, api_client):
    response = client_with_scopes("events:read").get("/api/v1/events", {"after": "not-a-cursor"})
    assert response.status_code == 400 and response.json()["code"] == "invalid_input"
    response = client_with_scopes("entitlements:read").get("/api/v1/events")
    assert response.status_code == 403


def test_the_catalogue_is_published_with_the_api_docs(client_with_scopes, admin_client):
    catalogue = client_with_scopes("events:read").get("/api/v1/events/catalogue").json()
    assert {"INITIAL_PURCHASE", "EXPIRATION", "REFUND_REVERSED", "ORGANIZATION_SUSPENDED"} <= set(catalogue["events"])
    assert catalogue["events"]["EXPIRATION"]["schema"]["properties"]["version"] == {"const": 1}
    schema = admin_client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/events" in schema.content
