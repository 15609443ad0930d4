"""Least privilege over HTTP: client-app scopes pass only for API keys, never for a staff session.

Each misuse below was possible with a staff session (Support, Compliance): client endpoints
acted for customers on the say-so of an ``X-Acting-Customer`` header.
"""

import datetime
import json

import pytest

from creators.models import DailyEngagement
from monetization import clock
from monetization.models import AuditEvent
from tests.creators.factories import make_creator
from tests.monetization.factories import CustomerFactory
from tests.verified_orgs.factories import staff_user, verified_org
from verified_orgs.models import Affiliation

pytestmark = pytest.mark.django_db
NOW = datetime.datetime(2026, 10, 5, tzinfo=datetime.UTC)


def _engagement_body(creator) -> str:
    row = {"customer": creator.customer.external_id, "day": "2026-10-01", "source": "premium", "impressions": 10**9}
    return json.dumps([row])


def test_support_session_cannot_post_creator_engagement(client):
    creator = make_creator()
    client.force_login(staff_user("sam", "Support"))
    with clock.frozen(NOW):
        r = client.post("/api/v1/creators/engagement", _engagement_body(creator), content_type="application/json")
    assert (r.status_code, r.json()["code"]) == (403, "api_key_scope_missing")
    assert not DailyEngagement.objects.exists()


@pytest.mark.usefixtures("stripe_billing_double")
def test_support_session_cannot_invite_an_org_affiliate(client):
    org = verified_org()
    client.force_login(staff_user("sam", "Support"))
    r = client.post(
        f"/api/v1/orgs/{org.handle}/affiliates",
        {"customer": CustomerFactory().external_id},
        content_type="application/json",
        HTTP_X_ACTING_CUSTOMER=org.billing_customer.external_id,
    )
    assert r.status_code == 403
    assert not Affiliation.objects.filter(organization=org).exists()


@pytest.mark.usefixtures("stripe_billing_double")
def test_compliance_session_cannot_remove_an_org_affiliate(client, client_with_scopes):
    org = verified_org()
    app = client_with_scopes("orgs:write")
    admin = {"HTTP_X_ACTING_CUSTOMER": org.billing_customer.external_id}
    r = app.post(f"/api/v1/orgs/{org.handle}/affiliates", {"customer": CustomerFactory().external_id}, **admin)
    assert r.status_code == 201, r.content
    affiliation_id = r.json()["id"]
    client.force_login(staff_user("cora", "Compliance"))
    r = client.delete(f"/api/v1/orgs/{org.handle}/affiliates/{affiliation_id}", **admin)
    assert r.status_code == 403
    assert Affiliation.objects.get(pk=affiliation_id).state == "invited"


@pytest.mark.parametrize("role", ["Support", "Finance", "Compliance", None])
def test_staff_session_gets_403_on_client_reads(client, role):
    customer = CustomerFactory()
    client.force_login(staff_user(f"u-{role}", role))
    assert client.get(f"/api/v1/customers/{customer.external_id}/entitlements").status_code == 403
    assert client.get("/api/v1/catalog?platform=web&country=US").status_code == 403


def test_staff_without_a_role_cannot_use_the_staff_api(client, client_with_scopes):
    customer = CustomerFactory()
    client.force_login(staff_user("nobody"))
    assert client.get(f"/api/v1/staff/customers/{customer.external_id}").status_code == 403
    app = client_with_scopes("entitlements:read", "orgs:write", "engagement:write", "creators:read")
    assert app.get(f"/api/v1/staff/customers/{customer.external_id}").status_code in (401, 403)


def test_engagement_ingestion_is_audited_with_its_key(client_with_scopes):
    creator = make_creator()
    app = client_with_scopes("engagement:write")
    with clock.frozen(NOW):
        r = app.post("/api/v1/creators/engagement", _engagement_body(creator), content_type="application/json")
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.content
    [event] = AuditEvent.objects.filter(action="creators.engagement_ingest")
    assert event.actor_kind == AuditEvent.ActorKind.CLIENT and event.actor is None
    assert event.actor_label.startswith("api-key:test-app (key ")
    assert event.after["rows"] == 1
