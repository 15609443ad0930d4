"""GET /api/v1/events: committed events in commit-safe order after a cursor; the catalogue beside it."""

import psycopg
import pytest

from monetization.services.outbox import outbox_event_write
from tests.monetization.factories import CustomerFactory
from tests.processes import database_url

pytestmark = pytest.mark.django_db(transaction=True)


def write(customer, n):
    return [
        outbox_event_write(type="RENEWAL", customer=customer, cause={"kind": "schedule", "label": "t"}, data={"n": i})
        for i in range(n)
    ]


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
    """T1 takes an outbox id and stays open; T2 takes the next id and commits: a reader must not move past
    T2's event until T1 has committed, or it would never see T1's."""
    client = client_with_scopes("events:read")
    customer = CustomerFactory()
    with psycopg.connect(database_url()) as slow:
        slow.execute(
            "INSERT INTO monetization_outboxevent (event_id, type, version, occurred_at, customer_id, "
            "customer_external_id, object_type, object_id, cause, data, entitlements) "
            "VALUES (gen_random_uuid(), 'RENEWAL', 1, now(), %s, %s, '', '', '{}', '{}', '[]')",
            [customer.pk, customer.external_id],
        )
        (fast,) = write(customer, 1)  # committed, with a higher id
        page = pull(client, limit=100)
        assert page["events"] == []  # held back while an older transaction may still add events
        slow.commit()
    page = pull(client, limit=100)
    sequences = [e["sequence"] for e in page["events"]]
    assert len(sequences) == 2 and sequences[1] == fast.pk and sequences[0] < fast.pk


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
