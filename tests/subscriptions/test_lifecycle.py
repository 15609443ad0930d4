import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monetization import clock
from monetization.errors import IllegalTransition, InvalidInput, PermissionDenied
from monetization.models import AuditEvent
from monetization.roles import COMPLIANCE, SUPPORT, sync_roles
from subscriptions import platform_rules
from subscriptions.models import Subscription
from subscriptions.services.lifecycle import SNAPSHOT_FIELDS, Cause, subscription_change_state
from tests.subscriptions.factories import SubscriptionFactory

S = Subscription.State
LIVE = [S.PENDING, S.TRIALING, S.ACTIVE, S.IN_GRACE_PERIOD, S.ON_HOLD, S.PAUSED, S.CANCELED]

# The lifecycle as the platforms document it: transition -> (sources, target). None = state unchanged.
EXPECTED = {
    "start_trial": ([S.PENDING], S.TRIALING),
    "activate": ([*LIVE, S.EXPIRED], S.ACTIVE),
    "enter_grace_period": ([S.TRIALING, S.ACTIVE], S.IN_GRACE_PERIOD),
    "put_on_hold": ([S.TRIALING, S.ACTIVE, S.IN_GRACE_PERIOD], S.ON_HOLD),
    "pause": ([S.ACTIVE], S.PAUSED),
    "resume": ([S.PAUSED], S.ACTIVE),
    "cancel": ([S.TRIALING, S.ACTIVE, S.IN_GRACE_PERIOD, S.ON_HOLD, S.PAUSED], S.CANCELED),
    "extend": ([S.TRIALING, S.ACTIVE, S.CANCELED], None),
    "expire": (LIVE, S.EXPIRED),
    "revoke": ([*LIVE, S.EXPIRED], S.REVOKED),
}
PROVIDERS = {"app_store": "ios", "google_play": "android", "stripe": "web"}


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def staff(*perms, username="agent"):
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user(username, is_staff=True)
    for dotted in perms:
        app_label, codename = dotted.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return get_user_model().objects.get(pk=user.pk)  # fresh permission cache


def _allowed(transition, sub) -> bool:
    sources, _ = EXPECTED[transition]
    if sub.state not in sources:
        return False
    if transition == "enter_grace_period":
        return sub.provider != "stripe"  # Stripe has no grace by default
    if transition == "pause":
        return sub.provider != "app_store"  # the App Store cannot pause
    return True


@pytest.mark.django_db
def test_grace_only_where_the_platform_grants_it():
    lapse = utc(2027, 1, 31)
    web = SubscriptionFactory(state=S.ACTIVE, current_period_end=lapse)
    with pytest.raises(IllegalTransition):
        subscription_change_state(subscription=web, transition="enter_grace_period", cause=Cause.task("t"))
    web.refresh_from_db()
    assert web.state == S.ACTIVE and web.grace_end is None
    ios = SubscriptionFactory(state=S.ACTIVE, current_period_end=lapse, provider="app_store", platform="ios")
    subscription_change_state(subscription=ios, transition="enter_grace_period", cause=Cause.task("t"))
    ios.refresh_from_db()
    assert ios.state == S.IN_GRACE_PERIOD and ios.grace_end == lapse + timedelta(days=16)
    subscription_change_state(subscription=ios, transition="put_on_hold", cause=Cause.task("t"))
    ios.refresh_from_db()
    assert ios.hold_end == lapse + timedelta(days=60)
    subscription_change_state(subscription=ios, transition="activate", cause=Cause.provider_event("app_store", "n1"))
    ios.refresh_from_db()
    assert (ios.state, ios.grace_end, ios.hold_end, ios.billing_issue_at) == (S.ACTIVE, None, None, None)


@pytest.mark.django_db
def test_pause_is_refused_on_the_app_store():
    ios = SubscriptionFactory(provider="app_store", platform="ios")
    with pytest.raises(IllegalTransition):
        subscription_change_state(subscription=ios, transition="pause", cause=Cause.task("t"))
    play = SubscriptionFactory(provider="google_play", platform="android")
    subscription_change_state(subscription=play, transition="pause", cause=Cause.task("t"))
    play.refresh_from_db()
    assert play.state == S.PAUSED


@pytest.mark.django_db
def test_revoke_from_any_state_but_revoked():
    for state in [*LIVE, S.EXPIRED]:
        sub = SubscriptionFactory(state=state)
        subscription_change_state(subscription=sub, transition="revoke", cause=Cause.task("t"))
        sub.refresh_from_db()
        assert sub.state == S.REVOKED
    with pytest.raises(IllegalTransition):
        subscription_change_state(subscription=sub, transition="revoke", cause=Cause.task("t"))


@pytest.mark.django_db
def test_staff_need_the_transition_permission_and_a_reason():
    sub = SubscriptionFactory()
    nobody = staff(username="nobody")
    with pytest.raises(PermissionDenied):
        subscription_change_state(subscription=sub, transition="cancel", cause=Cause.staff(nobody, "asked by user"))
    agent = staff("subscriptions.cancel_subscription", "subscriptions.extend_subscription")
    with pytest.raises(InvalidInput):
        subscription_change_state(subscription=sub, transition="cancel", cause=Cause.staff(agent, "  "))
    with pytest.raises(PermissionDenied):
        subscription_change_state(subscription=sub, transition="revoke", cause=Cause.staff(agent, "fraud"))
    assert not AuditEvent.objects.exists()

    end = sub.current_period_end
    subscription_change_state(
        subscription=sub, transition="extend", cause=Cause.staff(agent, "outage"), transition_kwargs={"days": 7}
    )
    subscription_change_state(
        subscription=sub,
        transition="cancel",
        cause=Cause.staff(agent, "customer asked"),
        transition_kwargs={"reason": "customer asked"},
    )
    sub.refresh_from_db()
    assert sub.current_period_end == end + timedelta(days=7)
    assert sub.state == S.CANCELED and not sub.auto_renew and sub.cancel_reason == "customer asked"
    events = list(AuditEvent.objects.order_by("id"))
    assert [e.action for e in events] == ["subscription.extend", "subscription.cancel"]
    assert all(e.actor_id == agent.pk and e.actor_kind == "staff" for e in events)
    with pytest.raises(InvalidInput):
        subscription_change_state(
            subscription=sub, transition="extend", cause=Cause.staff(agent, "x"), transition_kwargs={"days": 0}
        )


@pytest.mark.django_db
def test_roles_carry_the_transition_permissions():
    sync_roles()
    support = set(Group.objects.get(name=SUPPORT).permissions.values_list("codename", flat=True))
    compliance = set(Group.objects.get(name=COMPLIANCE).permissions.values_list("codename", flat=True))
    assert {"cancel_subscription", "extend_subscription", "pause_subscription", "resume_subscription"} <= support
    assert {"grant_entitlement", "view_subscription"} <= support and "revoke_grant" not in support
    assert "revoke_subscription" not in support
    assert "revoke_subscription" in compliance and "cancel_subscription" not in compliance


def test_platform_rules_are_dated_and_validated(settings):
    play = platform_rules.rule_for("google_play", utc(2025, 11, 30, 23, 59))
    assert (play.grace_days, play.hold().days) == (7, 30)
    play = platform_rules.rule_for("google_play", utc(2025, 12, 1))
    assert (play.grace_days, play.hold().days) == (7, 53)
    ios = platform_rules.rule_for("app_store", utc(2027, 1, 1))
    assert ios.grace().days == 16 and ios.grace(weekly=True).days == 6
    assert ios.hold_end(lapsed_at=utc(2027, 1, 1)) == utc(2027, 3, 2)
    stripe = platform_rules.rule_for("stripe", utc(2027, 1, 1))
    assert len(stripe.dunning_offsets) == 8 and stripe.dunning_offsets[-1] == timedelta(days=14)
    assert stripe.incomplete_hours == 23

    settings.SUBSCRIPTION_PLATFORM_RULES = {"google_play": [{"since": "2000-01-01", "grace_days": 14, "hold_days": 50}]}
    with pytest.raises(ImproperlyConfigured):
        platform_rules.all_rules()  # grace + hold must be 30..60
    settings.SUBSCRIPTION_PLATFORM_RULES = {"app_store": [{"since": "2000-01-01", "grace_days": 5}]}
    with pytest.raises(ImproperlyConfigured):
        platform_rules.all_rules()  # 3, 16 or 28 only
    settings.SUBSCRIPTION_PLATFORM_RULES = {"google_play": [{"since": "2000-01-01", "grace_days": 30, "hold_days": 0}]}
    assert platform_rules.rule_for("google_play", utc(2027, 1, 1)).hold().days == 0


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    provider=st.sampled_from(sorted(PROVIDERS)),
    start=st.sampled_from([S.PENDING, S.TRIALING, S.ACTIVE, S.CANCELED, S.EXPIRED]),
    attempts=st.lists(st.sampled_from(sorted(EXPECTED)), min_size=1, max_size=12),
)
def test_random_transition_attempts_never_reach_an_illegal_state(provider, start, attempts):
    with clock.frozen(utc(2027, 1, 31, 12)):
        sub = SubscriptionFactory(provider=provider, platform=PROVIDERS[provider], state=start)
        events = AuditEvent.objects.count()
        for name in attempts:
            sub.refresh_from_db()
            before = {f: getattr(sub, f) for f in SNAPSHOT_FIELDS}
            expected_ok = _allowed(name, sub)
            kwargs = {"days": 3} if name == "extend" else {}
            try:
                subscription_change_state(
                    subscription=sub, transition=name, cause=Cause.task("prop"), transition_kwargs=kwargs
                )
                ok = True
            except IllegalTransition:
                ok = False
            sub.refresh_from_db()
            assert ok == expected_ok, f"{name} from {before['state']} ({provider})"
            assert sub.state in S.values
            if ok:
                target = EXPECTED[name][1]
                assert sub.state == (target or before["state"])
                # A change is recorded once; a no-op (activating an active subscription) records nothing.
                events += {f: getattr(sub, f) for f in SNAPSHOT_FIELDS} != before
            else:
                assert {f: getattr(sub, f) for f in SNAPSHOT_FIELDS} == before
            assert AuditEvent.objects.count() == events
            if ok and EXPECTED[name][1] in (S.EXPIRED, S.REVOKED):
                assert sub.ended_at is not None


step = st.one_of(
    st.tuples(st.just("advance"), st.integers(min_value=1, max_value=24 * 40)),  # hours
    st.tuples(st.just("sweep"), st.just(0)),
    st.tuples(st.just("renew"), st.integers(min_value=0, max_value=2)),
    st.tuples(
        st.sampled_from(["cancel", "pause", "resume", "revoke", "expire"]), st.integers(min_value=0, max_value=2)
    ),
)


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=15))
def test_history_stays_a_contiguous_chain_whatever_the_sweep_and_events_do(steps):
    """Random clock jumps, sweeps and provider events: each subscription's history is one unbroken
    chain of states ending in its current state, and a sweep at the same instant never moves anything twice."""
    from subscriptions.periods import add_interval
    from subscriptions.services.sweep import lifecycle_sweep

    now = utc(2028, 1, 31, 9)
    with clock.frozen(now):
        subs = [
            SubscriptionFactory(
                provider=provider,
                platform=PROVIDERS[provider],
                current_period_start=now - timedelta(days=20),
                current_period_end=now + timedelta(days=2),
            )
            for provider in ("app_store", "google_play", "stripe")
        ]
        for kind, arg in steps:
            if kind == "advance":
                clock.advance(timedelta(hours=arg))
            elif kind == "sweep":
                lifecycle_sweep()
                assert lifecycle_sweep().total == 0  # idempotent at the same instant
            else:
                sub = subs[arg]
                sub.refresh_from_db()
                updates = {}
                name = kind
                if kind == "renew":  # a DID_RENEW / invoice.paid: a new period from the old end
                    name = "activate"
                    start = sub.current_period_end
                    updates = {"current_period_start": start, "current_period_end": add_interval(start, "month")}
                with contextlib.suppress(IllegalTransition):
                    subscription_change_state(
                        subscription=sub, transition=name, cause=Cause.task("prop"), updates=updates
                    )
        for sub in subs:
            sub.refresh_from_db()
            chain = list(
                AuditEvent.objects.filter(object_type="subscriptions.subscription", object_id=str(sub.pk))
                .order_by("id")
                .values_list("before__state", "after__state")
            )
            state = S.ACTIVE
            for before, after in chain:
                assert before == state, chain
                state = after
            assert state == sub.state
