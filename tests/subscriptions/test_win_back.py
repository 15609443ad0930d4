"""Win-back: rules pick lapsed and churned customers set-based, each targeting is one outbound event with the
offer per platform, a customer is targeted once per rule per window (even by two runs at once), the
scheduled task runs on a real worker, and conversions show in the admin."""

import datetime

import jsonschema
import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from monetization import clock
from monetization.event_catalogue import event_schema
from monetization.models import AuditEvent, OutboxEvent
from monetization.outbox.delivery import entitlements_fill, event_envelope
from monetization.services.outbox import outbox_relay
from subscriptions.models import Subscription, WinBackRule, WinBackTarget
from subscriptions.services.win_back import win_back_run
from tests.celery_worker import wait_for
from tests.concurrency import run_at_once
from tests.monetization.factories import CustomerFactory
from tests.subscriptions.factories import PlanFactory, SubscriptionFactory

DAY = datetime.timedelta(days=1)


def _ended(days_ago: int, **fields) -> Subscription:
    ended = clock.now() - days_ago * DAY
    fields.setdefault("customer", CustomerFactory())
    return SubscriptionFactory(
        state=Subscription.State.EXPIRED,
        current_period_start=ended - 30 * DAY,
        current_period_end=ended,
        ended_at=ended,
        auto_renew=False,
        **fields,
    )


def _rule(key: str, reason: str, **fields) -> WinBackRule:
    fields.setdefault("lapsed_days", 7)
    return WinBackRule.objects.create(
        key=key,
        name=key,
        reason=reason,
        window_days=30,
        apple_win_back_offer_id="winback-1m-half",
        play_offer_id="winback-offer",
        stripe_coupon_id="WINBACK50",
        **fields,
    )


def _targeted(rule: WinBackRule) -> set[str]:
    return set(WinBackTarget.objects.filter(rule=rule).values_list("customer__external_id", flat=True))


@pytest.mark.django_db
def test_each_rule_picks_its_customers_and_emits_one_event_each():
    lapsed = _rule("lapsed-7d", WinBackRule.Reason.LAPSED)
    price = _rule("price", WinBackRule.Reason.CANCELLED_FOR_PRICE)
    billing = _rule("billing", WinBackRule.Reason.BILLING_ISSUE)

    plain = _ended(10, cancel_reason="auto_renew_disabled")
    too_expensive = _ended(10, cancel_reason="too_expensive", platform="ios", provider="app_store")
    unpaid = _ended(9, billing_issue_at=clock.now() - 40 * DAY)
    _ended(3)  # lapsed too recently
    _ended(60)  # lapsed before this window
    came_back = _ended(12)
    SubscriptionFactory(customer=came_back.customer)  # subscribed again: nothing to win back

    result = win_back_run()

    everyone = {s.customer.external_id for s in (plain, too_expensive, unpaid)}
    assert _targeted(lapsed) == everyone
    assert _targeted(price) == {too_expensive.customer.external_id}
    assert _targeted(billing) == {unpaid.customer.external_id}
    assert result.targeted == {"billing": 1, "lapsed-7d": 3, "price": 1}

    # Each target's audit row is its event; the relay publishes it.
    assert AuditEvent.objects.filter(action="win_back.target").count() == 5
    outbox_relay()
    events = OutboxEvent.objects.filter(type="WIN_BACK_TARGETED")
    assert events.count() == 5
    event = events.get(customer=too_expensive.customer, data__rule="price")
    assert event.data["platform"] == "ios" and event.data["reason"] == "cancelled_for_price"
    assert event.data["offers"] == {
        "ios": {"win_back_offer_id": "winback-1m-half"},
        "android": {"offer_id": "winback-offer"},
        "web": {"coupon_id": "WINBACK50"},
    }
    assert event.cause["kind"] == "schedule" and event.version == 1
    entitlements_fill([event])
    event.refresh_from_db()
    jsonschema.validate(event_envelope(event), event_schema("WIN_BACK_TARGETED"))


@pytest.mark.django_db
def test_a_rule_for_one_product_ignores_the_others():
    premium = PlanFactory(code="premium-monthly")
    rule = _rule("premium-only", WinBackRule.Reason.LAPSED, product=premium.product)
    mine = _ended(10, plan=premium)
    _ended(10)
    win_back_run()
    assert _targeted(rule) == {mine.customer.external_id}


@pytest.mark.django_db
def test_a_customer_is_targeted_once_per_rule_per_window():
    rule = _rule("lapsed-7d", WinBackRule.Reason.LAPSED)
    sub = _ended(10)
    win_back_run()
    win_back_run()
    later = clock.now() + 5 * DAY  # still within the window (and still lapsed within the rule's range)
    win_back_run(now=later)
    assert WinBackTarget.objects.filter(rule=rule).count() == 1
    outbox_relay()
    assert OutboxEvent.objects.filter(type="WIN_BACK_TARGETED", customer=sub.customer).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_target_each_customer_once():
    rule = _rule("lapsed-7d", WinBackRule.Reason.LAPSED)
    for _ in range(40):
        _ended(10)
    errors = run_at_once(lambda: win_back_run(), [() for _ in range(4)])
    assert errors == []
    assert WinBackTarget.objects.filter(rule=rule).count() == 40
    outbox_relay()
    assert OutboxEvent.objects.filter(type="WIN_BACK_TARGETED").count() == 40


@pytest.mark.django_db
def test_chunks_cover_every_customer(settings):
    settings.WIN_BACK_CHUNK = 3
    rule = _rule("lapsed-7d", WinBackRule.Reason.LAPSED)
    for _ in range(10):
        _ended(10)
    assert win_back_run().targeted == {"lapsed-7d": 10}
    assert WinBackTarget.objects.filter(rule=rule).count() == 10


@pytest.mark.django_db
def test_conversion_is_a_resubscription_within_the_window_shown_in_the_admin(client):
    rule = _rule("lapsed-7d", WinBackRule.Reason.LAPSED)
    won, lost, late = _ended(10), _ended(10), _ended(10)
    win_back_run()
    target = WinBackTarget.objects.get(customer=won.customer)
    SubscriptionFactory(customer=won.customer, started_at=target.targeted_at + DAY)
    SubscriptionFactory(customer=late.customer, started_at=target.window_ends_at + DAY)
    SubscriptionFactory(customer=lost.customer, state=Subscription.State.PENDING, started_at=target.targeted_at + DAY)

    assert win_back_run().converted == 1
    target.refresh_from_db()
    assert target.converted_at == target.targeted_at + DAY
    assert win_back_run().converted == 0  # measured once

    client.force_login(get_user_model().objects.create_superuser("boss", password="pw-long-enough-123"))
    page = client.get(reverse("admin:subscriptions_winbackrule_changelist")).content.decode()
    assert rule.key in page and "33.3%" in page


@pytest.mark.django_db
def test_an_app_store_resubscribe_on_the_same_subscription_converts():
    _rule("lapsed-7d", WinBackRule.Reason.LAPSED)
    sub = _ended(10, platform="ios", provider="app_store")
    win_back_run()
    target = WinBackTarget.objects.get()
    Subscription.objects.filter(pk=sub.pk).update(
        state=Subscription.State.ACTIVE, current_period_start=target.targeted_at + 2 * DAY, ended_at=None
    )
    assert win_back_run().converted == 1


@pytest.mark.django_db
def test_a_superuser_edits_a_rule_audited(client):
    boss = get_user_model().objects.create_superuser("boss", password="pw-long-enough-123")
    client.force_login(boss)
    response = client.post(
        reverse("admin:subscriptions_winbackrule_add"),
        {
            "key": "billing-14d",
            "name": "Billing issue, 14 days",
            "reason": "billing_issue",
            "lapsed_days": 14,
            "window_days": 30,
            "cancel_reasons": "too_expensive",
            "apple_win_back_offer_id": "wb-1",
            "play_offer_id": "",
            "stripe_coupon_id": "WB50",
            "is_active": "on",
            "created_at_0": "2026-11-30",
            "created_at_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    rule = WinBackRule.objects.get()
    event = AuditEvent.objects.get(action="win_back_rule.created", actor=boss, object_id=str(rule.pk))
    assert event.after["stripe_coupon_id"] == "WB50" and event.after["lapsed_days"] == 14


@pytest.mark.worker
@pytest.mark.worker_env(WIN_BACK_INTERVAL="1", OUTBOX_DELIVER_INTERVAL="0.5")
def test_the_scheduled_run_targets_on_a_real_worker(celery_worker_factory):
    rule = _rule("lapsed-7d", WinBackRule.Reason.LAPSED)
    sub = _ended(10)
    celery_worker_factory().start()
    wait_for(lambda: WinBackTarget.objects.filter(rule=rule).exists(), timeout=60)
    # The same worker's outbox task relays the target's audit row into its event.
    events = OutboxEvent.objects.filter(type="WIN_BACK_TARGETED", customer=sub.customer)
    wait_for(events.exists, timeout=60)
    assert events.count() == 1
