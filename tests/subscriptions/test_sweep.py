import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.db import connection

from monetization import clock
from monetization.models import AuditEvent
from subscriptions.entitlements import cached_entitlements_json, resolve_entitlements
from subscriptions.models import DunningAttempt, Subscription
from subscriptions.periods import add_interval
from subscriptions.services.sweep import ACTOR_LABEL, lifecycle_sweep
from tests.subscriptions.factories import EntitlementFactory, PlanFactory, ProductFactory, SubscriptionFactory

S = Subscription.State
IOS = {"platform": "ios", "provider": "app_store"}
ANDROID = {"platform": "android", "provider": "google_play"}
WEB = {"platform": "web", "provider": "stripe"}


def utc(*args):
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def plan(db):
    product = ProductFactory(code="premium", entitlements=[EntitlementFactory(key="verified_badge")])
    return PlanFactory(product=product, code="premium-monthly")


def make(plan, state, *, start=None, end=None, **kwargs):
    start = start or utc(2027, 1, 1)
    return SubscriptionFactory(
        plan=plan,
        state=state,
        current_period_start=start,
        current_period_end=end or add_interval(start, "month"),
        started_at=start,
        **kwargs,
    )


def history(sub):
    return list(
        AuditEvent.objects.filter(object_type="subscriptions.subscription", object_id=str(sub.pk))
        .order_by("id")
        .values_list("action", "before__state", "after__state")
    )


def sweep_at(at, **kwargs):
    with clock.frozen(at):
        return lifecycle_sweep(**kwargs)


@pytest.mark.django_db
def test_app_store_lapse_grace_billing_retry_then_expiry(plan):
    lapse = utc(2027, 1, 31, 12)
    sub = make(plan, S.ACTIVE, start=utc(2026, 12, 31, 12), end=lapse, **IOS)
    customer = sub.customer

    # Apple's DID_RENEW gets an hour's leeway after the period end before the sweep calls it a lapse.
    assert sweep_at(lapse + timedelta(minutes=59, seconds=59)).total == 0
    result = sweep_at(lapse + timedelta(hours=1))
    sub.refresh_from_db()
    assert sub.state == S.IN_GRACE_PERIOD and result.total == 1
    assert sub.grace_end == lapse + timedelta(days=16) and sub.billing_issue_at == lapse
    with clock.frozen(lapse + timedelta(days=1)):
        assert [e.key for e in resolve_entitlements(customer.pk)] == ["verified_badge"]  # grace keeps access

    sweep_at(lapse + timedelta(days=16))
    sub.refresh_from_db()
    assert sub.state == S.ON_HOLD
    assert sub.hold_end == lapse + timedelta(days=60)  # billing retry: 60 days from the lapse
    with clock.frozen(lapse + timedelta(days=17)):
        assert resolve_entitlements(customer.pk) == []

    sweep_at(lapse + timedelta(days=59, hours=23))
    sub.refresh_from_db()
    assert sub.state == S.ON_HOLD
    sweep_at(lapse + timedelta(days=60))
    sub.refresh_from_db()
    assert sub.state == S.EXPIRED and sub.ended_at == lapse + timedelta(days=60)
    assert history(sub) == [
        ("subscription.enter_grace_period", "active", "in_grace_period"),
        ("subscription.put_on_hold", "in_grace_period", "on_hold"),
        ("subscription.expire", "on_hold", "expired"),
    ]
    event = AuditEvent.objects.filter(object_id=str(sub.pk)).order_by("id").first()
    assert event.actor_kind == "system" and event.actor_label == ACTOR_LABEL and event.customer_id == customer.pk
    assert event.before["grace_end"] is None
    assert datetime.fromisoformat(event.after["grace_end"]) == lapse + timedelta(days=16)


@pytest.mark.django_db
def test_google_play_hold_follows_the_rule_in_force_when_the_subscription_lapsed(plan):
    # Lapsed before 2025-12-01: 7 days grace + 30 days hold. After: hold defaults to 60 - grace = 53.
    old = make(plan, S.ACTIVE, start=utc(2025, 10, 20), end=utc(2025, 11, 20), **ANDROID)
    new = make(plan, S.ACTIVE, start=utc(2025, 11, 5), end=utc(2025, 12, 5), **ANDROID)
    sweep_at(utc(2025, 12, 20))  # both swept after the change
    old.refresh_from_db()
    new.refresh_from_db()
    assert old.state == S.ON_HOLD and old.hold_end == utc(2025, 11, 27) + timedelta(days=30)
    assert new.state == S.ON_HOLD and new.hold_end == utc(2025, 12, 12) + timedelta(days=53)
    # A late sweep still records both steps, each exactly once.
    assert [a for a, _, _ in history(old)] == ["subscription.enter_grace_period", "subscription.put_on_hold"]


@pytest.mark.django_db
def test_stripe_trial_without_payment_goes_past_due_with_dunning_then_expires(plan):
    trial_end = utc(2027, 1, 31, 8)
    sub = make(plan, S.TRIALING, start=utc(2027, 1, 1, 8), end=trial_end, trial_end=trial_end, **WEB)
    assert sweep_at(trial_end + timedelta(minutes=90)).total == 0  # Stripe's invoice may still be paid
    sweep_at(trial_end + timedelta(hours=2))
    sub.refresh_from_db()
    assert sub.state == S.ON_HOLD and sub.hold_end == trial_end + timedelta(days=14)
    assert sub.billing_issue_at == trial_end  # counted from the trial end, not from the sweep

    assert DunningAttempt.objects.count() == 0  # the first retry is due a day after the lapse
    result = sweep_at(trial_end + timedelta(days=3))
    assert result.dunning_attempts == 2
    assert list(DunningAttempt.objects.values_list("attempt", "due_at")) == [
        (1, trial_end + timedelta(days=1)),
        (2, trial_end + timedelta(days=3)),
    ]
    assert sweep_at(trial_end + timedelta(days=3)).dunning_attempts == 0  # exactly once per attempt
    result = sweep_at(trial_end + timedelta(days=14))
    sub.refresh_from_db()
    assert sub.state == S.EXPIRED
    assert DunningAttempt.objects.count() == 8  # all 8 Smart Retries scheduled before the window closed


@pytest.mark.django_db
def test_canceled_incomplete_and_non_renewing_subscriptions_expire(plan):
    at = utc(2027, 3, 1)
    canceled = make(plan, S.CANCELED, end=at - timedelta(seconds=1), auto_renew=False, **ANDROID)
    canceled_later = make(plan, S.CANCELED, end=at + timedelta(days=1), auto_renew=False, **ANDROID)
    incomplete = make(plan, S.PENDING, start=at - timedelta(hours=23), **WEB)
    incomplete_young = make(plan, S.PENDING, start=at - timedelta(hours=22), **WEB)
    trial_no_renew = make(plan, S.TRIALING, trial_end=at - timedelta(days=1), auto_renew=False, **IOS)
    result = sweep_at(at)
    states = {s.pk: s.state for s in Subscription.objects.all()}
    assert states[canceled.pk] == S.EXPIRED
    assert states[canceled_later.pk] == S.CANCELED
    assert states[incomplete.pk] == S.EXPIRED
    assert states[incomplete_young.pk] == S.PENDING
    assert states[trial_no_renew.pk] == S.EXPIRED
    assert result.total == 3


@pytest.mark.django_db
def test_sweep_is_idempotent_and_invalidates_cached_entitlements(plan, client_with_scopes):
    client = client_with_scopes("entitlements:read")
    lapse = utc(2027, 2, 28)
    sub = make(plan, S.CANCELED, start=utc(2027, 1, 31), end=lapse, **WEB)
    external_id = sub.customer.external_id
    with clock.frozen(lapse - timedelta(hours=1)):
        assert client.get(f"/api/v1/customers/{external_id}/entitlements").json()["entitlements"]
    assert cached_entitlements_json(external_id) is not None
    assert sweep_at(lapse).total == 1
    assert sweep_at(lapse).total == 0
    assert sweep_at(lapse + timedelta(days=400)).total == 0
    assert len(history(sub)) == 1


@pytest.mark.django_db(transaction=True)
def test_cache_is_invalidated_when_the_chunk_commits(plan, client_with_scopes):
    client = client_with_scopes("entitlements:read")
    lapse = utc(2027, 2, 28)
    sub = make(plan, S.CANCELED, start=utc(2027, 1, 31), end=lapse, **WEB)
    external_id = sub.customer.external_id
    with clock.frozen(lapse - timedelta(hours=1)):
        assert client.get(f"/api/v1/customers/{external_id}/entitlements").json()["entitlements"]
    assert cached_entitlements_json(external_id) is not None
    sweep_at(lapse)
    assert cached_entitlements_json(external_id) is None
    with clock.frozen(lapse):
        assert client.get(f"/api/v1/customers/{external_id}/entitlements").json()["entitlements"] == []


@pytest.mark.django_db
@pytest.mark.parametrize(("year", "feb_end"), [(2027, 28), (2028, 29)])
def test_month_end_periods_lapse_at_the_right_day(plan, year, feb_end):
    start = utc(year, 1, 31, 10)
    end = add_interval(start, "month")
    assert end == utc(year, 2, feb_end, 10)
    sub = make(plan, S.ACTIVE, start=start, end=end, **WEB)
    assert sweep_at(utc(year, 2, feb_end, 11, 59, 59)).total == 0  # Stripe's 2-hour renewal leeway
    sweep_at(utc(year, 2, feb_end, 12))
    sub.refresh_from_db()
    assert sub.state == S.ON_HOLD and sub.billing_issue_at == end
    assert sub.hold_end == end + timedelta(days=14)


@pytest.mark.django_db
def test_sweep_fires_at_the_right_instant_across_dst_changes(plan):
    berlin = ZoneInfo("Europe/Berlin")
    new_york = ZoneInfo("America/New_York")
    # Berlin springs forward on 2027-03-28 at 02:00 local: 09:00 local that day is 07:00 UTC (not 08:00).
    spring_end = datetime(2027, 3, 28, 9, 0, tzinfo=berlin)
    spring = make(plan, S.CANCELED, start=datetime(2027, 2, 28, 9, 0, tzinfo=berlin), end=spring_end, **WEB)
    # New York falls back on 2027-11-07: 01:30 happens twice; this is the first (EDT, 05:30 UTC).
    fall_end = datetime(2027, 11, 7, 1, 30, fold=0, tzinfo=new_york)
    fall = make(plan, S.CANCELED, start=datetime(2027, 10, 7, 1, 30, tzinfo=new_york), end=fall_end, **WEB)

    assert sweep_at(datetime(2027, 3, 28, 8, 59, 59, tzinfo=berlin)).total == 0
    assert sweep_at(utc(2027, 3, 28, 7, 0)).total == 1
    spring.refresh_from_db()
    assert spring.state == S.EXPIRED and spring.ended_at == utc(2027, 3, 28, 7)

    assert sweep_at(utc(2027, 11, 7, 5, 29, 59)).total == 0
    # 06:00 UTC is 01:00 EST: the wall clock reads earlier than 01:30, yet the period is over.
    late_wall_clock = datetime(2027, 11, 7, 1, 0, fold=1, tzinfo=new_york)
    assert late_wall_clock.astimezone(UTC) == utc(2027, 11, 7, 6)  # (PEP 495: folds never compare equal across zones)
    assert sweep_at(late_wall_clock).total == 1
    fall.refresh_from_db()
    assert fall.state == S.EXPIRED and fall.ended_at == utc(2027, 11, 7, 5, 30)


@pytest.mark.django_db
def test_platform_rules_come_from_settings(plan, settings):
    settings.SUBSCRIPTION_PLATFORM_RULES = {"app_store": [{"since": "2000-01-01", "grace_days": 3}]}
    lapse = utc(2027, 5, 1)
    sub = make(plan, S.ACTIVE, end=lapse, **IOS)
    sweep_at(lapse)
    sub.refresh_from_db()
    assert sub.grace_end == lapse + timedelta(days=3)


@pytest.mark.django_db
def test_run_sweep_command_prints_progress(plan, capsys):
    make(plan, S.CANCELED, end=utc(2027, 1, 31), **WEB)
    call_command("run_sweep", "--at", "2027-02-01T00:00:00+00:00", "--chunk-size", "1000")
    out = capsys.readouterr().out
    assert "canceled:expire: 1" in out and "Swept 1 subscriptions" in out


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_move_every_subscription_exactly_once(plan):
    lapse = utc(2027, 1, 31, 12)
    providers = [IOS, ANDROID, WEB]
    subs = [make(plan, S.ACTIVE, end=lapse, **providers[i % 3]) for i in range(240)]
    subs += [make(plan, S.CANCELED, end=lapse, **WEB) for _ in range(60)]
    at = lapse + timedelta(days=10)  # iOS: in grace (16 d); Play: grace (7 d) over -> hold; web: past_due
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run(chunk):
        try:
            barrier.wait()
            with clock.frozen(at):
                results.append(lifecycle_sweep(chunk_size=chunk))
        except Exception as exc:  # pragma: no cover - surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(chunk,)) for chunk in (7, 11)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    expected_steps = {"app_store": 1, "google_play": 2, "stripe": 1}
    expected_state = {"app_store": S.IN_GRACE_PERIOD, "google_play": S.ON_HOLD, "stripe": S.ON_HOLD}
    per_sub = Counter(AuditEvent.objects.filter(actor_label=ACTOR_LABEL).values_list("object_id", "action"))
    assert all(count == 1 for count in per_sub.values()), "a transition was recorded twice"
    total_expected = 0
    for sub in subs:
        sub.refresh_from_db()
        if not sub.auto_renew or sub.state == S.EXPIRED:
            assert sub.state == S.EXPIRED
            total_expected += 1
        else:
            assert sub.state == expected_state[sub.provider]
            total_expected += expected_steps[sub.provider]
    assert sum(r.total for r in results) == total_expected == len(per_sub)
    # Dunning: each due retry of a web subscription on hold exists exactly once (unique constraint).
    web_on_hold = sum(1 for s in subs if s.provider == "stripe" and s.state == S.ON_HOLD)
    assert web_on_hold == 80
    assert DunningAttempt.objects.count() == web_on_hold * 5  # retries due by day 10: days 1, 3, 5, 7, 9
    assert sum(r.dunning_attempts for r in results) == web_on_hold * 5


@pytest.mark.django_db
def test_beat_runs_the_sweep_task(plan, settings):
    from backoffice.celery import app
    from subscriptions.tasks import lifecycle_sweep_task

    entry = settings.CELERY_BEAT_SCHEDULE["subscriptions-lifecycle-sweep"]
    assert entry["task"] == lifecycle_sweep_task.name
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks
    sub = make(plan, S.CANCELED, end=utc(2027, 1, 31), **WEB)
    with clock.frozen(utc(2027, 2, 1)):
        summary = lifecycle_sweep_task.apply().get()
    sub.refresh_from_db()
    assert sub.state == S.EXPIRED and summary["total"] == 1


def test_run_sweep_rejects_a_naive_time():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("run_sweep", "--at", "2027-02-01T00:00:00")


@pytest.mark.django_db(transaction=True)
def test_sweep_skips_a_subscription_a_webhook_is_renewing(plan):
    from django.db import transaction

    from subscriptions.services.lifecycle import Cause, subscription_change_state

    lapse = utc(2027, 1, 31, 12)
    renewing = make(plan, S.ACTIVE, end=lapse, **IOS)
    other = make(plan, S.ACTIVE, end=lapse, **IOS)
    results = []

    def sweep_in_thread():
        try:
            with clock.frozen(lapse + timedelta(hours=1)):
                results.append(lifecycle_sweep())
        finally:
            connection.close()

    with transaction.atomic():
        # The renewal webhook holds the row lock while the sweep runs.
        Subscription.objects.select_for_update().get(pk=renewing.pk)
        thread = threading.Thread(target=sweep_in_thread)
        thread.start()
        thread.join()
        subscription_change_state(
            subscription=renewing,
            transition="activate",
            cause=Cause.provider_event("app_store", "DID_RENEW-1"),
            updates={"current_period_start": lapse, "current_period_end": add_interval(lapse, "month")},
        )
    assert results[0].total == 1  # only the other subscription
    assert sweep_at(lapse + timedelta(hours=2)).total == 0
    renewing.refresh_from_db()
    other.refresh_from_db()
    assert renewing.state == S.ACTIVE and renewing.current_period_end == utc(2027, 2, 28, 12)
    assert other.state == S.IN_GRACE_PERIOD
    assert [a for a, _, _ in history(renewing)] == ["subscription.activate"]


@pytest.mark.django_db
def test_a_web_renewal_paid_within_the_leeway_never_loses_access(plan):
    from subscriptions.services.lifecycle import Cause, subscription_change_state

    end = utc(2027, 1, 31, 23, 30)
    sub = make(plan, S.ACTIVE, start=utc(2026, 12, 31, 23, 30), end=end, **WEB)
    assert sweep_at(end + timedelta(minutes=5)).total == 0
    with clock.frozen(end + timedelta(minutes=70)):  # invoice.paid, about an hour after the period end
        subscription_change_state(
            subscription=sub,
            transition="activate",
            cause=Cause.provider_event("stripe", "evt_paid"),
            updates={"current_period_start": end, "current_period_end": add_interval(end, "month", anchor_day=31)},
        )
    assert sweep_at(end + timedelta(hours=3)).total == 0
    sub.refresh_from_db()
    assert sub.state == S.ACTIVE and sub.current_period_end == utc(2027, 2, 28, 23, 30)
    assert [a for a, _, _ in history(sub)] == ["subscription.activate"]
