import datetime

import pytest

from monetization import clock
from monetization.models import AuditEvent
from monetization.providers.base import ProviderError
from tests.monetization.factories import CustomerFactory
from tests.verified_orgs.factories import compliance_user, verified_org
from verified_orgs.models import Affiliation, SeatLedgerEntry
from verified_orgs.services.affiliations import affiliations_expire_due
from verified_orgs.services.organizations import organization_set_seat_limit

pytestmark = pytest.mark.django_db


@pytest.fixture
def org():
    return verified_org()


@pytest.fixture
def admin(org):
    return org.billing_customer


@pytest.fixture
def app(client_with_scopes):
    return client_with_scopes("orgs:write", "entitlements:read")


def _as(app, customer):
    app.credentials(
        HTTP_AUTHORIZATION=app._credentials["HTTP_AUTHORIZATION"], HTTP_X_ACTING_CUSTOMER=customer.external_id
    )
    return app


def _invite(app, org, admin, invitee):
    return _as(app, admin).post(
        f"/api/v1/orgs/{org.handle}/affiliates", {"customer": invitee.external_id}, format="json"
    )


def _accept(app, invitee, token):
    return _as(app, invitee).post("/api/v1/org-invitations/accept", {"token": token}, format="json")


def test_invite_accept_list_remove(app, org, admin):
    invitee = CustomerFactory()
    r = _invite(app, org, admin, invitee)
    assert r.status_code == 201, r.content
    token, aff_id = r.json()["token"], r.json()["id"]
    assert r.json()["state"] == "invited"
    r = _accept(app, invitee, token)
    assert r.status_code == 200, r.content
    assert r.json()["state"] == "active" and r.json()["organization"] == org.handle
    assert _accept(app, invitee, token).status_code == 200  # idempotent

    r = _as(app, admin).get(f"/api/v1/orgs/{org.handle}/affiliates?state=active")
    assert r.status_code == 200
    assert [row["customer"] for row in r.json()["results"]] == [invitee.external_id]
    r = _as(app, admin).get(f"/api/v1/orgs/{org.handle}/subscription")
    assert r.json()["seats"] == 1 and r.json()["subscription"]["quantity"] == 1

    r = _as(app, admin).delete(f"/api/v1/orgs/{org.handle}/affiliates/{aff_id}")
    assert r.status_code == 200 and r.json()["state"] == "removed"
    assert list(SeatLedgerEntry.objects.filter(organization=org).order_by("id").values_list("quantity", flat=True)) == [
        0,
        1,
        0,
    ]
    r = _as(app, admin).get(f"/api/v1/orgs/{org.handle}/invoices")
    invoice = r.json()["results"][0]
    # The seat changes' prorations are Stripe invoice items of the next invoice, not of this one.
    assert [line["kind"] for line in invoice["lines"]] == ["base", "seats"]
    assert invoice["status"] == "open" and invoice["number"].startswith("VO-")
    actions = set(AuditEvent.objects.filter(object_type="verified_orgs.affiliation").values_list("action", flat=True))
    assert actions == {"affiliation.invite", "affiliation.accept", "affiliation.remove"}


def test_error_codes(app, org, admin):
    stranger = CustomerFactory()
    r = _as(app, stranger).get(f"/api/v1/orgs/{org.handle}/affiliates")
    assert (r.status_code, r.json()["code"]) == (403, "not_org_admin")
    r = _as(app, admin).get("/api/v1/orgs/nope/affiliates")
    assert (r.status_code, r.json()["code"]) == (404, "org_not_found")
    app.credentials(HTTP_AUTHORIZATION=app._credentials["HTTP_AUTHORIZATION"])
    r = app.get(f"/api/v1/orgs/{org.handle}/affiliates")
    assert (r.status_code, r.json()["code"]) == (400, "acting_customer_required")
    r = _as(app, admin).get(f"/api/v1/orgs/{org.handle}/affiliates?state=bogus")
    assert (r.status_code, r.json()["code"]) == (400, "invalid_input")

    invitee = CustomerFactory()
    assert _invite(app, org, admin, invitee).status_code == 201
    r = _invite(app, org, admin, invitee)
    assert (r.status_code, r.json()["code"]) == (409, "already_affiliated")
    other_org = verified_org()
    r = _invite(app, other_org, other_org.billing_customer, invitee)
    assert (r.status_code, r.json()["code"]) == (409, "already_affiliated")

    organization_set_seat_limit(organization=org, actor=compliance_user("limits"), seat_limit=1, reason="trial")
    r = _invite(app, org, admin, CustomerFactory())
    assert (r.status_code, r.json()["code"]) == (409, "seat_limit_reached")
    r = _accept(app, CustomerFactory(), "not-a-token")
    assert (r.status_code, r.json()["code"]) == (404, "invitation_not_found")


def test_scope_required(client_with_scopes, org, admin):
    client = client_with_scopes("entitlements:read")
    r = client.get(f"/api/v1/orgs/{org.handle}/affiliates", HTTP_X_ACTING_CUSTOMER=admin.external_id)
    assert r.status_code == 403 and r.json()["code"] == "api_key_scope_missing"


def test_invitation_expires_after_seven_days(app, org, admin):
    start = datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.UTC)
    late, swept = CustomerFactory(), CustomerFactory()
    with clock.frozen(start):
        token = _invite(app, org, admin, late).json()["token"]
        _invite(app, org, admin, swept)
    with clock.frozen(start + datetime.timedelta(days=7) - datetime.timedelta(seconds=1)):
        assert affiliations_expire_due() == 0
    with clock.frozen(start + datetime.timedelta(days=7, seconds=1)):
        r = _accept(app, late, token)
        assert (r.status_code, r.json()["code"]) == (410, "invitation_expired")
        assert Affiliation.objects.get(customer=late).state == "expired"  # kept despite the error
        assert affiliations_expire_due() == 1
        assert Affiliation.objects.get(customer=swept).state == "expired"
        assert AuditEvent.objects.filter(action="affiliation.expire").count() == 2
        # The account is free again: a new invitation works.
        assert _invite(app, org, admin, late).status_code == 201


def test_stale_invitation_does_not_block_a_new_one_before_the_sweep(app, org, admin):
    start = datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.UTC)
    invitee = CustomerFactory()
    other = verified_org()
    with clock.frozen(start):
        assert _invite(app, org, admin, invitee).status_code == 201
    with clock.frozen(start + datetime.timedelta(days=8)):
        assert _invite(app, other, other.billing_customer, invitee).status_code == 201


def test_stripe_refusing_the_seat_change_is_a_clear_error_that_changes_nothing(app, org, admin, stripe_billing):
    invitee = CustomerFactory()
    token = _invite(app, org, admin, invitee).json()["token"]
    stripe_billing.fail_next["billing_quantity_set"] = ProviderError("Stripe is down", retryable=True)
    r = _accept(app, invitee, token)
    assert (r.status_code, r.json()["code"]) == (503, "billing_provider_failed")
    assert Affiliation.objects.get(customer=invitee).state == Affiliation.State.INVITED
    assert SeatLedgerEntry.objects.filter(organization=org).count() == 1  # the period start only
    # Tried again: Stripe's invoice item from the first attempt is found by its key, not made twice.
    assert _accept(app, invitee, token).status_code == 200
    sub_id = org.subscription.provider_subscription_id
    assert len(stripe_billing.pending_items[sub_id]) == 1 and stripe_billing.billing[sub_id].quantity == 1
