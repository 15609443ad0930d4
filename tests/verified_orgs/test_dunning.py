"""An organization's subscription that lapses with no provider event: the lifecycle sweep alone
moves it, with the product's own grace, and the organization follows."""

import datetime

import pytest
from django.core.management import call_command

from monetization import clock
from monetization.models import AuditEvent
from subscriptions.models import Subscription
from tests.monetization.factories import CustomerFactory
from tests.verified_orgs.factories import verified_org
from verified_orgs.models import Organization
from verified_orgs.services.affiliations import affiliation_accept, affiliation_invite

pytestmark = pytest.mark.django_db(transaction=True)

S = Subscription.State
START = datetime.datetime(2026, 3, 1, 9, tzinfo=datetime.UTC)
PERIOD_END = datetime.datetime(2026, 4, 1, 9, tzinfo=datetime.UTC)
STRIPE_RENEWAL_LEEWAY = datetime.timedelta(hours=2)
ORG_GRACE = datetime.timedelta(days=14)


def sweep(at: datetime.datetime) -> None:
    call_command("run_sweep", "--at", at.isoformat(), verbosity=0)


def badges(client, customer) -> list[str]:
    response = client.get(f"/api/v1/customers/{customer.external_id}/entitlements")
    assert response.status_code == 200
    return sorted(e["key"] for e in response.json()["entitlements"])


def test_a_lapsed_org_subscription_gets_its_grace_then_goes_on_hold_and_the_org_is_suspended(client_with_scopes):
    client = client_with_scopes("entitlements:read")
    with clock.frozen(START):
        org = verified_org()
        member = CustomerFactory()
        _, token = affiliation_invite(organization=org, customer=member, invited_by=org.billing_customer)
        affiliation_accept(token=token, customer=member)
    sub = Subscription.objects.get(pk=org.subscription_id)
    assert (sub.state, sub.current_period_end) == (S.ACTIVE, PERIOD_END)

    # No invoice.paid, no customer.subscription.updated: only the clock moves.
    with clock.frozen(PERIOD_END + STRIPE_RENEWAL_LEEWAY):
        sweep(clock.now())
        sub.refresh_from_db()
        org.refresh_from_db()
        assert sub.state == S.IN_GRACE_PERIOD  # the product's 14 days, though Stripe's own rule has no grace
        assert (sub.billing_issue_at, sub.grace_end) == (PERIOD_END, PERIOD_END + ORG_GRACE)
        assert org.state == Organization.State.VERIFIED
        assert badges(client, member) == ["affiliate_badge"]
        assert badges(client, org.billing_customer) == ["org_gold_badge"]

    with clock.frozen(PERIOD_END + ORG_GRACE - datetime.timedelta(minutes=1)):
        sweep(clock.now())
        sub.refresh_from_db()
        assert sub.state == S.IN_GRACE_PERIOD

    with clock.frozen(PERIOD_END + ORG_GRACE):
        sweep(clock.now())
        sub.refresh_from_db()
        org.refresh_from_db()
        assert sub.state == S.ON_HOLD
        assert (org.state, org.suspension_cause) == (Organization.State.SUSPENDED, Organization.SuspensionCause.PAYMENT)
        assert badges(client, member) == [] and badges(client, org.billing_customer) == []
    suspend = AuditEvent.objects.get(action="organization.suspend", object_id=str(org.pk))
    assert suspend.actor_label == "task:lifecycle_sweep"

    with clock.frozen(sub.hold_end):
        sweep(clock.now())
    sub.refresh_from_db()
    org.refresh_from_db()
    assert sub.state == S.EXPIRED and sub.ended_at == sub.hold_end
    assert org.state == Organization.State.SUSPENDED
    assert AuditEvent.objects.filter(action="organization.suspend").count() == 1
