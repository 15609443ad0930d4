import datetime
import threading

import pytest
from django.db import connection

from monetization import clock
from monetization.errors import Conflict
from subscriptions.models import Subscription
from subscriptions.services.sweep import lifecycle_sweep
from tests.monetization.factories import CustomerFactory
from tests.verified_orgs.factories import compliance_user, verified_org
from verified_orgs.models import Affiliation, Organization
from verified_orgs.services.affiliations import affiliation_accept, affiliation_invite
from verified_orgs.services.dunning import org_payment_failed, org_payment_recovered
from verified_orgs.services.organizations import organization_reinstate, organization_suspend


@pytest.mark.django_db(transaction=True)
def test_one_organization_per_account_under_concurrent_invitations():
    orgs = [verified_org() for _ in range(6)]
    invitee = CustomerFactory()
    barrier = threading.Barrier(len(orgs))
    results: list[str] = []
    lock = threading.Lock()

    def invite(org):
        try:
            barrier.wait()
            affiliation_invite(organization=org, customer=invitee, invited_by=org.billing_customer)
            outcome = "ok"
        except Conflict as exc:
            outcome = exc.code
        finally:
            connection.close()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=invite, args=(org,)) for org in orgs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["already_affiliated"] * 5 + ["ok"]
    assert Affiliation.objects.filter(customer=invitee, state__in=["invited", "active"]).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_accepts_respect_the_seat_limit():
    org = verified_org()
    Organization.objects.filter(pk=org.pk).update(seat_limit=3)
    tokens = []
    for _ in range(3):
        c = CustomerFactory()
        tokens.append((c, affiliation_invite(organization=org, customer=c, invited_by=org.billing_customer)[1]))
    Organization.objects.filter(pk=org.pk).update(seat_limit=2)
    barrier = threading.Barrier(3)
    results = []

    def accept(customer, token):
        try:
            barrier.wait()
            affiliation_accept(token=token, customer=customer)
            results.append("ok")
        except Conflict as exc:
            results.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=accept, args=ct) for ct in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok", "ok", "seat_limit_reached"]
    org.subscription.refresh_from_db()
    assert org.subscription.quantity == 2


def _badges(client, customer):
    r = client.get(f"/api/v1/customers/{customer.external_id}/entitlements")
    assert r.status_code == 200, r.content
    return sorted((e["key"], e["source"]) for e in r.json()["entitlements"])


def _org_with_affiliates(n=3):
    org = verified_org()
    affiliates = []
    for _ in range(n):
        c = CustomerFactory()
        _, token = affiliation_invite(organization=org, customer=c, invited_by=org.billing_customer)
        affiliation_accept(token=token, customer=c)
        affiliates.append(c)
    return org, affiliates


@pytest.mark.django_db(transaction=True)
def test_suspension_removes_badges_at_once_and_reinstatement_restores_them(client_with_scopes):
    client = client_with_scopes("entitlements:read")
    compliance = compliance_user()
    org, affiliates = _org_with_affiliates()
    admin = org.billing_customer
    assert _badges(client, admin) == [("org_gold_badge", "organization")]
    for c in affiliates:
        assert _badges(client, c) == [("affiliate_badge", "organization")]  # now cached

    organization_suspend(organization=org, actor=compliance, reason="impersonation")
    assert _badges(client, admin) == []
    assert all(_badges(client, c) == [] for c in affiliates)

    organization_reinstate(organization=org, actor=compliance, reason="cleared")
    assert _badges(client, admin) == [("org_gold_badge", "organization")]
    assert all(_badges(client, c) == [("affiliate_badge", "organization")] for c in affiliates)


@pytest.mark.django_db(transaction=True)
def test_failed_payment_grace_then_suspension_then_recovery(client_with_scopes):
    client = client_with_scopes("entitlements:read")
    start = datetime.datetime(2026, 5, 1, tzinfo=datetime.UTC)
    renewal = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)
    with clock.frozen(start):
        org, affiliates = _org_with_affiliates(2)
        assert _badges(client, affiliates[0]) == [("affiliate_badge", "organization")]
    with clock.frozen(renewal):
        org_payment_failed(organization=org, cause=_task())
        org.subscription.refresh_from_db()
        assert org.subscription.state == Subscription.State.IN_GRACE_PERIOD
        assert _badges(client, affiliates[0]) == [("affiliate_badge", "organization")]  # grace keeps access
    with clock.frozen(renewal + datetime.timedelta(days=15)):
        assert lifecycle_sweep().total == 1
        org.refresh_from_db()
        assert org.state == "suspended" and org.suspension_cause == "payment"
        assert _badges(client, affiliates[0]) == [] and _badges(client, org.billing_customer) == []
        org_payment_recovered(organization=org, cause=_task())
        org.refresh_from_db()
        assert org.state == "verified"
        assert _badges(client, affiliates[1]) == [("affiliate_badge", "organization")]


def _task():
    from subscriptions.services.lifecycle import Cause

    return Cause.task("test")


@pytest.mark.django_db(transaction=True)
def test_org_subscription_revoked_by_provider_removes_affiliate_badges_at_once(client_with_scopes):
    from subscriptions.services.lifecycle import Cause, subscription_change_state

    client = client_with_scopes("entitlements:read")
    org, affiliates = _org_with_affiliates(2)
    assert _badges(client, affiliates[0]) == [("affiliate_badge", "organization")]  # cached
    subscription_change_state(
        subscription=org.subscription, transition="revoke", cause=Cause.provider_event("stripe", "evt_1")
    )
    assert _badges(client, affiliates[0]) == []
    assert _badges(client, org.billing_customer) == []


@pytest.mark.django_db(transaction=True)
def test_database_refuses_a_second_live_affiliation():
    from django.db import IntegrityError

    org_a, org_b = verified_org(), verified_org()
    customer = CustomerFactory()
    affiliation_invite(organization=org_a, customer=customer, invited_by=org_a.billing_customer)
    now = clock.now()
    with pytest.raises(IntegrityError):
        Affiliation.objects.create(
            organization=org_b, customer=customer, token_hash="x" * 64, expires_at=now, state="active"
        )
