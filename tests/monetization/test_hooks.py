"""The hook registries other apps use: payment hooks (payment_record) and subscription state hooks."""

import pytest
from djmoney.money import Money

from monetization.models import JournalEntry, Payment
from monetization.services import payments
from monetization.services.payments import payment_record, register_payment_hook, unregister_payment_hook
from subscriptions.models import Subscription
from subscriptions.services import lifecycle
from subscriptions.services.lifecycle import Cause, register_state_hook, subscription_change_state
from tests.monetization.factories import CustomerFactory
from tests.subscriptions.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def seen_payments():
    seen = []
    register_payment_hook(seen.append, name="test.seen")
    yield seen
    unregister_payment_hook("test.seen")


def record(customer, ref="in_hook_1", amount="9.00"):
    return payment_record(customer=customer, provider="stripe", provider_reference=ref, amount=Money(amount, "USD"))


def test_payment_hook_runs_once_when_the_payment_succeeds(seen_payments):
    customer = CustomerFactory()
    payment, created = record(customer)
    _again, created_again = record(customer)
    assert (created, created_again) == (True, False)
    assert [p.pk for p in seen_payments] == [payment.pk]
    assert seen_payments[0].status == Payment.Status.SUCCEEDED


def test_a_failing_payment_hook_rolls_the_payment_back():
    def broken(payment):
        raise RuntimeError("hook failed")

    register_payment_hook(broken, name="test.broken")
    try:
        with pytest.raises(RuntimeError):
            record(CustomerFactory(), ref="in_hook_broken")
    finally:
        unregister_payment_hook("test.broken")
    assert not Payment.objects.filter(provider_reference="in_hook_broken").exists()
    assert not JournalEntry.objects.filter(kind="payment", memo__contains="in_hook_broken").exists()
    assert "test.broken" not in payments._payment_hooks


def test_state_hook_sees_saved_state_changes_only():
    calls = []

    def hook(moves):
        # Runs after the save, in the same transaction: the row already says the new state.
        (sub_id,) = moves.subscription_ids
        assert [s.pk for s in moves.subscriptions] == [sub_id]
        calls.append((moves.source, moves.target, Subscription.objects.get(pk=sub_id).state, moves.cause.label))

    register_state_hook(hook, name="test.state")
    try:
        sub = SubscriptionFactory(state=Subscription.State.ACTIVE)
        subscription_change_state(subscription=sub, transition=None, cause=Cause.task("t"), updates={"quantity": 3})
        subscription_change_state(subscription=sub, transition="put_on_hold", cause=Cause.task("t"))
    finally:
        lifecycle._state_hooks.pop("test.state")
    assert calls == [("active", "on_hold", "on_hold", "task:t")]
