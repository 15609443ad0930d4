"""Seams between the apps, driven by signed Stripe webhooks.

- An organization's subscription going past_due keeps the badges (product grace), the lifecycle
  sweep ends the grace and the org is suspended (badges gone), and the subscription turning active
  again reinstates it (badges back); the provider's invoice is that period's one charge.
- A fan's invoice for a creator-subscription plan posts the creator's share once.
"""

import datetime
from decimal import Decimal

import pytest
from django.db.models import Sum

from creators.models import CreatorSubscriptionLink, CreatorSubscriptionShare
from monetization import clock
from monetization.models import AuditEvent, JournalEntry, JournalLine, Payment, WebhookEvent
from monetization.providers.base import reset_providers
from monetization.services.ledger import Account, ledger_report
from subscriptions.entitlements import resolve_entitlements
from subscriptions.models import Platform, Product, Subscription
from subscriptions.services.sweep import lifecycle_sweep
from tests.creators.factories import make_creator
from tests.monetization.factories import CustomerFactory
from tests.subscriptions.factories import PlanFactory, ProductFactory, SkuFactory
from tests.verified_orgs.factories import verified_org
from verified_orgs.entitlement_sources import AFFILIATE_BADGE, ORG_GOLD_BADGE
from verified_orgs.models import Organization, OrgInvoice
from verified_orgs.services.affiliations import affiliation_accept, affiliation_invite

from .support import post_stripe, stripe_invoice_event, stripe_subscription_event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def stripe_billing(provider_settings):
    """Organizations are billed through the Stripe Billing double; webhooks still go through the
    real adapter's signature check (the double verifies with it)."""
    provider_settings.PAYMENT_PROVIDERS = {
        **provider_settings.PAYMENT_PROVIDERS,
        "stripe": "monetization.demo.providers.StripeBillingDouble",
    }
    reset_providers()
    yield
    reset_providers()


UTC = datetime.UTC
START = datetime.datetime(2026, 1, 1, tzinfo=UTC)  # 1767225600: the fixtures' period start
FEB_1 = datetime.datetime(2026, 2, 1, tzinfo=UTC)  # 1769904000
MAR_1 = datetime.datetime(2026, 3, 1, tzinfo=UTC)


def ts(at: datetime.datetime) -> int:
    return int(at.timestamp())


def badges(customer) -> set[str]:
    return {e.key for e in resolve_entitlements(customer.pk)} & {AFFILIATE_BADGE, ORG_GOLD_BADGE}


@pytest.fixture
def org_with_affiliate(db):
    with clock.frozen(START):
        org = verified_org()
        member = CustomerFactory()
        _, token = affiliation_invite(organization=org, customer=member, invited_by=org.billing_customer)
        affiliation_accept(token=token, customer=member)
    org.refresh_from_db()
    return org, org.billing_customer, member


def org_event(org, *, event_id, at, status, period=(START, FEB_1)):
    return stripe_subscription_event(
        event_id=event_id,
        created=ts(at),
        status=status,
        sub_id=org.subscription.provider_subscription_id,
        external_id=org.billing_customer.external_id,
        price_id="price_verified_org",
        period_start=ts(period[0]),
        period_end=ts(period[1]),
    )


def org_invoice(org, *, event_id, invoice_id, paid_at, amount):
    event = stripe_invoice_event(
        event_id=event_id,
        created=ts(paid_at),
        invoice_id=invoice_id,
        sub_id=org.subscription.provider_subscription_id,
        amount=amount,
    )
    event["data"]["object"]["status_transitions"]["paid_at"] = ts(paid_at)
    return event


def test_org_past_due_grace_suspension_and_recovery_through_webhooks(client, org_with_affiliate):
    org, admin, member = org_with_affiliate
    assert badges(admin) == {ORG_GOLD_BADGE} and badges(member) == {AFFILIATE_BADGE}

    # Stripe: the renewal failed, Smart Retries run (past_due). Organizations have product grace.
    with clock.frozen(FEB_1 + datetime.timedelta(hours=3)):
        event = org_event(org, event_id="evt_org_pd", at=clock.now(), status="past_due")
        assert post_stripe(client, event).status_code == 200
        org.refresh_from_db()
        org.subscription.refresh_from_db()
        assert org.subscription.state == Subscription.State.IN_GRACE_PERIOD
        assert org.subscription.grace_end == FEB_1 + datetime.timedelta(days=14)
        assert org.state == Organization.State.VERIFIED
        assert badges(admin) == {ORG_GOLD_BADGE} and badges(member) == {AFFILIATE_BADGE}

    # Grace runs out unpaid: the sweep puts the subscription on hold, the organization is suspended
    # in the same transaction (the state hook), every badge goes.
    with clock.frozen(FEB_1 + datetime.timedelta(days=15)):
        assert lifecycle_sweep().total == 1
        org.subscription.refresh_from_db()
        assert org.subscription.state == Subscription.State.ON_HOLD
        assert lifecycle_sweep().total == 0  # re-running changes nothing
    org.refresh_from_db()
    assert (org.state, org.suspension_cause) == (Organization.State.SUSPENDED, Organization.SuspensionCause.PAYMENT)
    assert badges(admin) == set() and badges(member) == set()

    # A retry succeeded: Stripe says active again. The payment suspension lifts, the badges come back.
    with clock.frozen(FEB_1 + datetime.timedelta(days=16)):
        event = org_event(org, event_id="evt_org_ok", at=clock.now(), status="active", period=(FEB_1, MAR_1))
        assert post_stripe(client, event).status_code == 200
    org.refresh_from_db()
    org.subscription.refresh_from_db()
    assert org.subscription.state == Subscription.State.ACTIVE
    assert (org.state, org.suspension_cause) == (Organization.State.VERIFIED, "")
    assert badges(admin) == {ORG_GOLD_BADGE} and badges(member) == {AFFILIATE_BADGE}
    actions = list(
        AuditEvent.objects.filter(object_type="verified_orgs.organization", object_id=str(org.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions[-2:] == ["organization.suspend", "organization.reinstate"]
    reinstate = AuditEvent.objects.filter(action="organization.reinstate").get()
    assert reinstate.actor_label == "stripe:evt_org_ok"

    # The invoice that paid the period: one charge for it (the org billing's period charge *is*
    # the provider's payment), also when Stripe delivers it twice under two event ids.
    paid_at = FEB_1 + datetime.timedelta(days=16, minutes=5)
    with clock.frozen(paid_at):
        for event_id in ("evt_org_inv", "evt_org_inv_again"):
            event = org_invoice(org, event_id=event_id, invoice_id="in_org_feb", paid_at=paid_at, amount=110000)
            assert post_stripe(client, event).status_code == 200
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"applied"}
    feb = OrgInvoice.objects.get(organization=org, period_start=FEB_1)
    # base 1000 + 1 seat x 50, and the seat added in January (a whole period: 50) as Stripe's invoice item
    assert feb.total == Decimal("1100.00") and feb.status == OrgInvoice.Status.PAID
    renewals = Payment.objects.filter(subscription_link__subscription=org.subscription, kind=Payment.Kind.RENEWAL)
    assert [p.provider_reference for p in renewals] == ["in_org_feb"]
    assert feb.payment.provider_reference == "in_org_feb" and feb.provider_invoice_id == "in_org_feb"
    assert JournalEntry.objects.filter(key=f"payment:{renewals[0].pk}:capture").count() == 1
    assert not AuditEvent.objects.filter(action__startswith="organization.invoice_amount").exists()
    assert ledger_report().balanced


def test_invoice_paid_recovers_a_suspended_org_before_the_subscription_event(client, org_with_affiliate):
    """Stripe does not order events: the paid invoice alone opens the period and lifts the suspension."""
    org, _admin, member = org_with_affiliate
    with clock.frozen(FEB_1 + datetime.timedelta(hours=3)):
        post_stripe(client, org_event(org, event_id="evt_pd", at=clock.now(), status="past_due"))
    with clock.frozen(FEB_1 + datetime.timedelta(days=15)):
        lifecycle_sweep()
    org.refresh_from_db()
    assert org.state == Organization.State.SUSPENDED
    paid_at = FEB_1 + datetime.timedelta(days=15, hours=2)
    with clock.frozen(paid_at):
        post_stripe(client, org_invoice(org, event_id="evt_inv", invoice_id="in_org_1", paid_at=paid_at, amount=110000))
    org.refresh_from_db()
    org.subscription.refresh_from_db()
    assert org.state == Organization.State.VERIFIED
    assert org.subscription.state == Subscription.State.ACTIVE
    assert org.subscription.current_period_end == MAR_1
    assert badges(member) == {AFFILIATE_BADGE}
    assert (
        Payment.objects.filter(subscription_link__subscription=org.subscription, kind=Payment.Kind.RENEWAL).count() == 1
    )
    # The subscription event arriving afterwards converges to the same place.
    with clock.frozen(paid_at + datetime.timedelta(minutes=1)):
        post_stripe(client, org_event(org, event_id="evt_ok", at=clock.now(), status="active", period=(FEB_1, MAR_1)))
    org.refresh_from_db()
    assert org.state == Organization.State.VERIFIED
    assert AuditEvent.objects.filter(action="organization.reinstate").count() == 1
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"applied"}


def test_provider_invoice_for_a_period_the_org_billing_already_charged_is_flagged_not_booked_twice(
    client, org_with_affiliate
):
    org, _, _ = org_with_affiliate
    first = OrgInvoice.objects.get(organization=org, period_start=START)
    paid_at = START + datetime.timedelta(minutes=5)
    with clock.frozen(paid_at):
        event = org_invoice(org, event_id="evt_first", invoice_id="in_org_first", paid_at=paid_at, amount=100000)
        event["data"]["object"]["billing_reason"] = "subscription_create"
        post_stripe(client, event)
    assert OrgInvoice.objects.filter(organization=org).count() == 1
    flagged = AuditEvent.objects.get(action="organization.provider_payment_unmatched")
    assert flagged.after["invoice"] == first.pk
    assert ledger_report().balanced


def test_consumer_subscriptions_do_not_touch_organizations(client, catalog, customers, org_with_affiliate):
    org, _, _ = org_with_affiliate
    post_stripe(client, stripe_subscription_event(event_id="evt_c1", created=ts(START), status="active"))
    post_stripe(client, stripe_subscription_event(event_id="evt_c2", created=ts(START) + 60, status="unpaid"))
    org.refresh_from_db()
    assert org.state == Organization.State.VERIFIED


# --- creators -------------------------------------------------------------------------


@pytest.fixture
def creator_plan(db):
    creator = make_creator()
    product = ProductFactory(code="creator-alice", kind=Product.Kind.CREATOR)
    plan = PlanFactory(product=product, code="creator-alice-monthly")
    SkuFactory(plan=plan, platform=Platform.WEB, store_product_id="price_creator_alice")
    CreatorSubscriptionLink.objects.create(plan=plan, creator=creator)
    return creator, plan


def payable_balance() -> Decimal:
    return JournalLine.objects.filter(account=Account.CREATOR_PAYABLE).aggregate(s=Sum("amount"))["s"] or Decimal(0)


def test_fan_invoice_paid_posts_the_creators_share_once(client, creator_plan):
    creator, _plan = creator_plan
    fan = CustomerFactory()
    sub_id = "sub_fan_alice_0001"
    event = stripe_subscription_event(
        event_id="evt_fan_sub",
        created=ts(START),
        status="active",
        sub_id=sub_id,
        external_id=fan.external_id,
        price_id="price_creator_alice",
    )
    assert post_stripe(client, event).status_code == 200
    invoice = stripe_invoice_event(
        event_id="evt_fan_inv", created=ts(START) + 5, invoice_id="in_fan_0001", sub_id=sub_id, amount=500
    )
    invoice["data"]["object"]["billing_reason"] = "subscription_create"
    assert post_stripe(client, invoice).status_code == 200
    assert post_stripe(client, invoice).json()["duplicates"] == 1  # the same delivery again
    invoice["id"] = "evt_fan_inv_resent"  # the same invoice under a new event id
    assert post_stripe(client, invoice).status_code == 200

    payment = Payment.objects.get(provider_reference="in_fan_0001")
    share = CreatorSubscriptionShare.objects.get()
    assert (share.payment_id, share.creator_id, share.amount) == (payment.pk, creator.pk, Decimal("4.85"))
    assert JournalEntry.objects.filter(key=f"payment:{payment.pk}:creator_share").count() == 1
    assert payable_balance() == Decimal("-4.85")  # owed to the creator (a credit on the liability)
    assert ledger_report().balanced


def test_consumer_payments_post_no_creator_share(client, catalog, customers, creator_plan):
    post_stripe(client, stripe_subscription_event(event_id="evt_s", created=ts(START), status="active"))
    post_stripe(client, stripe_invoice_event(event_id="evt_i", created=ts(START) + 5, invoice_id="in_consumer_1"))
    assert Payment.objects.filter(provider_reference="in_consumer_1").exists()
    assert not CreatorSubscriptionShare.objects.exists() and payable_balance() == 0
