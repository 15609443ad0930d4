"""Staff actions on subscriptions and grants: permission-checked, reasoned, audited, through the provider."""

import datetime

import pytest

from monetization.errors import DomainError, IllegalTransition, PermissionDenied
from monetization.models import AuditEvent, Provider
from monetization.providers.base import ProviderError
from subscriptions.entitlements import resolve_entitlements
from subscriptions.models import Grant, Subscription
from subscriptions.services import actions
from tests.monetization.support_fixtures import fake_providers, make_staff, register_with_fake  # noqa: F401
from tests.subscriptions.factories import EntitlementFactory, ProductFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def support(make_staff):
    return make_staff("Support")


def test_cancel_at_period_end_tells_the_provider_and_keeps_access(fake_providers, support):
    sub = SubscriptionFactory()
    sub = actions.subscription_cancel(subscription=sub, user=support, reason="customer asked")
    assert sub.state == Subscription.State.CANCELED and sub.auto_renew is False
    call = fake_providers("stripe").calls[-1]
    assert call == ("cancel_subscription", {"id": sub.provider_subscription_id, "at_period_end": True})
    event = AuditEvent.objects.get(action="subscription.cancel", object_id=str(sub.pk))
    assert event.actor == support and event.reason == "customer asked"
    assert event.before["state"] == "active" and event.after["state"] == "canceled"


def test_cancel_now_ends_access(fake_providers, support):
    sub = SubscriptionFactory()
    sub = actions.subscription_cancel(subscription=sub, user=support, reason="chargeback", at_period_end=False)
    assert sub.state == Subscription.State.EXPIRED
    assert resolve_entitlements(sub.customer_id) == []


def test_extend_goes_through_the_provider(fake_providers, support):
    sub = SubscriptionFactory()
    register_with_fake(sub)
    end = sub.current_period_end
    sub = actions.subscription_extend(subscription=sub, user=support, reason="outage", days=7)
    assert sub.current_period_end == end + datetime.timedelta(days=7)
    assert AuditEvent.objects.filter(action="subscription.extend", reason="outage").exists()


@pytest.mark.parametrize("days", [0, -1, 366])
def test_extend_bounds(fake_providers, support, days):
    with pytest.raises(DomainError):
        actions.subscription_extend(subscription=SubscriptionFactory(), user=support, reason="x", days=days)


def test_pause_and_resume_on_stripe_reach_the_provider(fake_providers, support):
    sub = SubscriptionFactory(provider=Provider.STRIPE)
    sub = actions.subscription_pause(subscription=sub, user=support, reason="travelling")
    assert sub.state == Subscription.State.PAUSED
    assert resolve_entitlements(sub.customer_id) == []
    sub = actions.subscription_resume(subscription=sub, user=support, reason="back")
    assert sub.state == Subscription.State.ACTIVE
    calls = [name for name, _ in fake_providers("stripe").calls]
    assert calls == ["pause_subscription", "resume_subscription"]


def test_a_provider_failure_leaves_the_subscription_unpaused(fake_providers, support):
    sub = SubscriptionFactory(provider=Provider.STRIPE)
    fake_providers("stripe").fail_next["pause_subscription"] = ProviderError("timeout", retryable=True)
    with pytest.raises(DomainError):
        actions.subscription_pause(subscription=sub, user=support, reason="travelling")
    sub.refresh_from_db()
    assert sub.state == Subscription.State.ACTIVE


def test_pause_refused_on_google_play(fake_providers, support):
    sub = SubscriptionFactory(provider=Provider.GOOGLE_PLAY, platform="android")
    with pytest.raises(DomainError) as err:
        actions.subscription_pause(subscription=sub, user=support, reason="x")
    assert err.value.code == "unsupported_by_provider"
    sub.refresh_from_db()
    assert sub.state == Subscription.State.ACTIVE


def test_pause_refused_on_app_store(fake_providers, support):
    sub = SubscriptionFactory(provider=Provider.APP_STORE, platform="ios")
    with pytest.raises(DomainError) as err:
        actions.subscription_pause(subscription=sub, user=support, reason="x")
    assert err.value.code == "unsupported_by_provider"


def test_illegal_transition_changes_nothing(fake_providers, support):
    sub = SubscriptionFactory(state=Subscription.State.EXPIRED)
    with pytest.raises(IllegalTransition):
        actions.subscription_cancel(subscription=sub, user=support, reason="x")
    assert fake_providers("stripe").calls == []


@pytest.mark.parametrize(
    ("role", "fn"),
    [
        ("Finance", lambda s, u: actions.subscription_cancel(subscription=s, user=u, reason="r")),
        ("Compliance", lambda s, u: actions.subscription_extend(subscription=s, user=u, reason="r", days=1)),
        ("Support", lambda s, u: actions.subscription_revoke(subscription=s, user=u, reason="r")),
        (None, lambda s, u: actions.subscription_pause(subscription=s, user=u, reason="r")),
    ],
)
def test_services_check_permissions(fake_providers, make_staff, role, fn):
    sub = SubscriptionFactory()
    with pytest.raises(PermissionDenied):
        fn(sub, make_staff(role))
    sub.refresh_from_db()
    assert sub.state == Subscription.State.ACTIVE


def test_reason_required(fake_providers, support):
    with pytest.raises(DomainError) as err:
        actions.subscription_cancel(subscription=SubscriptionFactory(), user=support, reason=" ")
    assert err.value.code == "reason_required"


def test_compliance_revokes(fake_providers, make_staff):
    sub = actions.subscription_revoke(subscription=SubscriptionFactory(), user=make_staff("Compliance"), reason="fraud")
    assert sub.state == Subscription.State.REVOKED


def test_grant_for_days_or_until_and_revoke(fake_providers, make_staff, support):
    ent = EntitlementFactory(key="premium")
    product = ProductFactory(entitlements=[EntitlementFactory(key="premium_plus")])
    sub = SubscriptionFactory()
    customer = sub.customer
    g1 = actions.staff_grant_create(customer=customer, user=support, reason="outage", entitlement=ent, days=10)
    assert (g1.ends_at - g1.starts_at) == datetime.timedelta(days=10)
    until = g1.starts_at + datetime.timedelta(days=3)
    g2 = actions.staff_grant_create(customer=customer, user=support, reason="vip", product=product, until=until)
    keys = {(e.key, e.source) for e in resolve_entitlements(customer.pk)}
    assert {("premium", "grant"), ("premium_plus", "grant")} <= keys
    with pytest.raises(PermissionDenied):
        actions.staff_grant_revoke(grant=g2, user=support, reason="x")
    actions.staff_grant_revoke(grant=g2, user=make_staff("Compliance"), reason="abuse")
    assert Grant.objects.get(pk=g2.pk).revoked_at is not None
    with pytest.raises(DomainError):
        actions.staff_grant_create(customer=customer, user=support, reason="x", entitlement=ent, days=2, until=until)


def test_a_retried_staff_action_sends_the_provider_the_same_idempotency_key(fake_providers, support):
    """A timeout leaves nothing changed here: the retry is the same request at the provider."""
    sub = SubscriptionFactory(provider=Provider.STRIPE)
    stripe = fake_providers("stripe")
    stripe.fail_next["pause_subscription"] = ProviderError("timed out", code="provider_unavailable", retryable=True)
    with pytest.raises(DomainError):
        actions.subscription_pause(subscription=sub, user=support, reason="travelling")
    actions.subscription_pause(subscription=sub, user=support, reason="travelling")
    first, retry = [kwargs["key"] for name, kwargs in stripe.calls if name == "pause_subscription"]
    assert first == retry
    # The next action on the changed subscription is a new request.
    actions.subscription_resume(subscription=sub, user=support, reason="back")
    actions.subscription_pause(subscription=sub, user=support, reason="travelling again")
    keys = [kwargs["key"] for name, kwargs in stripe.calls if name in ("pause_subscription", "resume_subscription")]
    assert len(set(keys)) == 3


def test_an_action_id_names_the_provider_request(fake_providers, support):
    sub = SubscriptionFactory(provider=Provider.STRIPE)
    actions.subscription_pause(subscription=sub, user=support, reason="travelling", action_id="key-1")
    assert fake_providers("stripe").calls[-1][1]["key"] == f"pause:{sub.pk}:key-1"
