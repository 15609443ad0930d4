import io
import json
import random
from collections import Counter

import pytest
from django.conf import settings
from django.core.management import call_command
from djmoney.money import Money

from monetization import clock
from monetization.models import AuditEvent, Customer, JournalEntry, Payment, WebhookEvent
from monetization.providers.app_store.parsing import snapshot_from_transaction
from monetization.providers.base import RetryableApplyError
from monetization.providers.stripe.parsing import snapshot_from_subscription
from monetization.services.ledger import ledger_report
from monetization.services.webhooks import webhook_event_apply
from subscriptions.demo import overlaps as overlaps_demo
from subscriptions.demo import subscriptions as demo
from subscriptions.models import DunningAttempt, Grant, OverlapCase, Plan, Subscription
from subscriptions.services.provider_sync import target_state
from subscriptions.services.sweep import lifecycle_sweep
from tests.monetization.factories import CustomerFactory
from tests.subscriptions.factories import EntitlementFactory, PlanFactory, PriceFactory, ProductFactory, SkuFactory


@pytest.fixture
def catalog(db):
    ad_free = EntitlementFactory(key="ad_free")
    product = ProductFactory(code="premium", entitlements=[ad_free], kind="consumer")
    for interval, usd, jpy in ((Plan.Interval.MONTH, "8.00", 1380), (Plan.Interval.YEAR, "84.00", 14300)):
        plan = PlanFactory(product=product, code=f"premium-{interval}", interval=interval)
        for platform in ("ios", "android", "web"):
            SkuFactory(plan=plan, platform=platform, store_product_id=f"{platform}.premium.{interval}")
        PriceFactory(plan=plan, country="US", amount=Money(usd, "USD"))
        PriceFactory(plan=plan, country="JP", amount=Money(jpy, "JPY"))
    org = ProductFactory(code="org", kind="organization")
    SkuFactory(plan=PlanFactory(product=org, code="org-monthly"), platform="web")  # never picked for consumers


def run_seed():
    out = io.StringIO()
    demo.seed(rng=random.Random(1), out=out, options={"seed": 7})
    return out.getvalue()


@pytest.mark.django_db
def test_demo_covers_every_state_on_every_platform_and_is_idempotent(catalog):
    for i in range(120):
        CustomerFactory(country="JP" if i % 4 == 0 else "US")
    run_seed()
    counts = (
        Subscription.objects.count(),
        Payment.objects.count(),
        JournalEntry.objects.count(),
        AuditEvent.objects.count(),
        DunningAttempt.objects.count(),
        Grant.objects.count(),
        WebhookEvent.objects.count(),
    )
    seen = Counter(Subscription.objects.values_list("platform", "state"))
    for platform, states in demo.STATES.items():
        for state in states:
            assert seen[(platform, state)] > 0, (platform, state)
    assert not Subscription.objects.filter(plan__product__kind="organization").exists()
    assert Payment.objects.filter(status="succeeded").count() == JournalEntry.objects.count()
    assert Payment.objects.filter(amount_currency="JPY").exists()
    assert ledger_report().balanced
    assert DunningAttempt.objects.exists()

    out = run_seed()
    assert "0 new" in out
    assert "inbox events: 0" in out
    assert counts == (
        Subscription.objects.count(),
        Payment.objects.count(),
        JournalEntry.objects.count(),
        AuditEvent.objects.count(),
        DunningAttempt.objects.count(),
        Grant.objects.count(),
        WebhookEvent.objects.count(),
    )
    # The data is consistent with the lifecycle rules: nothing is overdue for the sweep.
    assert lifecycle_sweep().total == 0


def _seeded(count=120):
    for i in range(count):
        CustomerFactory(country="JP" if i % 4 == 0 else "US")
    return run_seed()


@pytest.mark.django_db
def test_demo_inbox_holds_the_events_behind_every_subscription(catalog):
    out = _seeded()
    inbox = WebhookEvent.objects.all()
    assert f"inbox events: {inbox.count()}" in out
    assert set(inbox.values_list("provider", flat=True)) == {"stripe", "app_store", "google_play"}
    assert {"applied", "ignored", "failed"} <= set(inbox.values_list("status", flat=True))
    events = {(e.provider, e.event_id): e for e in inbox}

    # Every provider-caused step of a subscription's history: its event, under the id its audit label names.
    subs = {str(s.pk): s for s in Subscription.objects.all()}
    steps = AuditEvent.objects.filter(actor_kind="provider", object_type="subscriptions.subscription")
    assert steps.count() > 100
    for step in steps:
        provider, event_id = step.actor_label.split(":", 1)
        event = events[(provider, event_id)]
        sub = subs[step.object_id]
        assert event.status == "applied" and event.attempts == 1, event
        assert event.occurred_at <= event.received_at < event.applied_at
        assert abs((event.occurred_at - step.occurred_at).total_seconds()) < 1
        assert f"subscription {sub.pk} {step.after['state']}" in event.note
        if event.event_type != "charge.refunded":  # the Stripe adapter takes refs from subscriptions and invoices
            assert event.subscription_ref == sub.provider_subscription_id
        family = {
            "stripe": ("customer.subscription.", "charge.refunded"),
            "app_store": ("SUBSCRIBED", "DID_CHANGE_RENEWAL_STATUS", "DID_FAIL_TO_RENEW", "REFUND", "EXPIRED"),
            "google_play": ("SUBSCRIPTION_",),
        }[provider]
        assert event.event_type.startswith(family), event.event_type

    # Every succeeded payment: the event that recorded it names it (the two left for a replay aside).
    recorded = set()
    for event in inbox.filter(status="applied"):
        words = event.note.replace(";", "").split()
        recorded |= {int(words[i + 1]) for i, w in enumerate(words) if w == "payment" and words[i + 1].isdigit()}
    succeeded = Payment.objects.filter(status="succeeded")
    assert recorded == set(succeeded.values_list("id", flat=True))
    for payment in succeeded.filter(provider__in=["stripe", "app_store"]):
        event = next(e for e in events.values() if f"payment {payment.pk}" in e.note)
        if payment.provider == "stripe":
            assert event.event_type == "invoice.paid"
            assert event.payload["data"]["object"]["id"] == payment.provider_reference
            assert json.loads(event.raw_body) == event.payload
        else:
            assert event.event_type in ("SUBSCRIBED.INITIAL_BUY", "DID_RENEW")
            assert event.payload["transaction"]["transactionId"] == payment.provider_reference
    failed_payments = Payment.objects.filter(status="failed")
    assert failed_payments.exists()
    for payment in failed_payments:
        assert inbox.filter(
            event_type="invoice.payment_failed", payload__data__object__id=payment.provider_reference
        ).exists()

    # The payloads are what the adapters would have stored: they map to the state the subscription reached.
    for event in inbox.filter(status="applied"):
        if event.event_type.startswith("customer.subscription."):
            snapshot = snapshot_from_subscription(event.payload["data"]["object"], as_of=event.occurred_at)
        elif event.provider == "app_store" and event.payload["transaction"]:
            notification = event.payload["notification"]
            snapshot = snapshot_from_transaction(
                event.payload["transaction"],
                event.payload["renewal"],
                as_of=event.occurred_at,
                notification_type=notification["notificationType"],
                subtype=notification.get("subtype", ""),
            )
        else:
            continue
        assert event.note.split(";")[0].endswith(f" {target_state(snapshot)}"), event


@pytest.mark.django_db
def test_demo_inbox_failed_events_replay(catalog):
    _seeded()
    failed = list(WebhookEvent.objects.filter(status="failed"))
    assert len(failed) == 3
    known = set(Subscription.objects.values_list("provider_subscription_id", flat=True))
    replayable = [e for e in failed if e.subscription_ref in known]
    assert len(replayable) == 2
    tries = 1 + settings.WEBHOOK_APPLY_MAX_RETRIES
    for event in failed:
        assert event.attempts == tries and event.applied_at is None
        assert event.last_error == f"RetryableApplyError: subscription {event.subscription_ref} not known yet"
        assert event.received_at > event.occurred_at
    for event in replayable:
        reference = event.payload["data"]["object"]["id"]
        assert not Payment.objects.filter(provider_reference=reference).exists()
        applied = webhook_event_apply(event_id=event.pk)
        assert applied.status == "applied" and applied.attempts == tries + 1
        payment = Payment.objects.get(provider_reference=reference)
        assert applied.note == f"payment {payment.pk} recorded"
        assert payment.subscription_link.subscription.provider_subscription_id == event.subscription_ref
        assert payment.status == "succeeded" and payment.kind == "initial" and payment.fee.amount > 0
    (unknown,) = [e for e in failed if e not in replayable]
    with pytest.raises(RetryableApplyError):
        webhook_event_apply(event_id=unknown.pk)
    unknown.refresh_from_db()
    # Still unknown: it waits for its subscription again (the demo's events are recent), or fails if too old.
    assert unknown.status in ("waiting", "failed") and unknown.attempts == tries + 1
    assert ledger_report().balanced


@pytest.mark.django_db
def test_demo_inbox_shows_in_the_admin(catalog, admin_client):
    _seeded(30)
    assert admin_client.get("/admin/monetization/webhookevent/").status_code == 200
    failed = admin_client.get("/admin/monetization/webhookevent/?status__exact=failed")
    assert failed.status_code == 200
    for event in WebhookEvent.objects.filter(status="failed"):
        assert event.event_id.encode() in failed.content
        detail = admin_client.get(f"/admin/monetization/webhookevent/{event.pk}/change/")
        assert b"not known yet" in detail.content
    for provider in ("stripe", "app_store", "google_play"):
        event = WebhookEvent.objects.filter(provider=provider, status="applied").first()
        page = admin_client.get(f"/admin/monetization/webhookevent/{event.pk}/change/")
        assert page.status_code == 200 and event.event_id.encode() in page.content


@pytest.mark.django_db
def test_demo_skips_without_a_catalog():
    CustomerFactory()
    assert "skipping" in run_seed()
    assert not Subscription.objects.exists()


@pytest.mark.django_db
def test_seed_demo_command_runs_the_subscriptions_step(catalog):
    for _ in range(30):
        CustomerFactory()
    out = io.StringIO()
    call_command("seed_demo", "--customers", "30", stdout=out)
    assert "seeding subscriptions.demo.subscriptions" in out.getvalue()
    # The money core's step adds its own 30 demo customers beside the factory's; each gets one (and a
    # few a second one on another platform, for the two-platform queue).
    seeded = Subscription.objects.exclude(provider_subscription_id__startswith=overlaps_demo.PREFIX)
    assert seeded.count() == Customer.objects.count() == 60
    assert OverlapCase.objects.count() == Subscription.objects.count() - 60 > 0


def test_demo_history_and_payments_are_never_dated_in_the_future():
    """The customer page's timeline shows these at when they happened: nothing may happen after now (an
    iOS subscription on hold had its hold begin when its 16-day grace would end, days from now)."""
    now = clock.now()
    customer = Customer(pk=1, external_id="demo-future")
    for interval in (Plan.Interval.MONTH, Plan.Interval.YEAR):
        plan = Plan(code=f"p-{interval}", interval=interval)
        for platform, states in demo.STATES.items():
            for state in states:
                for seed in range(25):
                    _, payments, history = demo._build(
                        customer, platform, plan, state, random.Random(seed), now, {}, {}
                    )
                    late = [h for h in history if h[3] > now] + [p for p in payments if p[1] > now]
                    assert not late, (platform, state, interval, seed, late)
