"""The hook registries other apps use: subscription payment hooks and subscription state hooks."""

import pytest
from djmoney.money import Money

from monetization.models import JournalEntry, Payment
from subscriptions.models import Subscription, SubscriptionPayment
from subscriptions.services.lifecycle import Cause, state_hooks, subscription_change_state
from subscriptions.services.payments import payment_hooks, subscription_payment_record
from tests.monetization.factories import CustomerFactory
from tests.subscriptions.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def seen_payments():
    seen = []
    payment_hooks.register("test.seen", lambda payment, subscription: seen.append(payment))
    yield seen
    payment_hooks.unregister("test.seen")


def record(customer, ref="in_hook_1", amount="9.00"):
    sub = Subscription.objects.filter(customer=customer).first() or SubscriptionFactory(customer=customer)
    return subscription_payment_record(
        subscription=sub, customer=customer, provider="stripe", provider_reference=ref, amount=Money(amount, "USD")
    )


def test_payment_hook_runs_once_when_the_payment_succeeds(seen_payments):
    customer = CustomerFactory()
    payment, created = record(customer)
    _again, created_again = record(customer)
    assert (created, created_again) == (True, False)
    assert [p.pk for p in seen_payments] == [payment.pk]
    assert seen_payments[0].status == Payment.Status.SUCCEEDED
    # Linked to its subscription once, in the payment's transaction.
    assert SubscriptionPayment.objects.filter(payment=payment).count() == 1


def test_a_failing_payment_hook_rolls_the_payment_back():
    def broken(payment, subscription):
        raise RuntimeError("hook failed")

    payment_hooks.register("test.broken", broken)
    try:
        with pytest.raises(RuntimeError):
            record(CustomerFactory(), ref="in_hook_broken")
    finally:
        payment_hooks.unregister("test.broken")
    assert not Payment.objects.filter(provider_reference="in_hook_broken").exists()
    assert not SubscriptionPayment.objects.exists()
    assert not JournalEntry.objects.filter(kind="payment", memo__contains="in_hook_broken").exists()
    assert "test.broken" not in payment_hooks


def test_state_hook_sees_saved_state_changes_only():
    calls = []

    def hook(moves):
        # Runs after the save, in the same transaction: the row already says the new state.
        (sub_id,) = moves.subscription_ids
        assert [s.pk for s in moves.subscriptions] == [sub_id]
        calls.append((moves.source, moves.target, Subscription.objects.get(pk=sub_id).state, moves.cause.label))

    state_hooks.register("test.state", hook)
    try:
        sub = SubscriptionFactory(state=Subscription.State.ACTIVE)
        subscription_change_state(subscription=sub, transition=None, cause=Cause.task("t"), updates={"quantity": 3})
        subscription_change_state(subscription=sub, transition="put_on_hold", cause=Cause.task("t"))
    finally:
        state_hooks.unregister("test.state")
    assert calls == [("active", "on_hold", "on_hold", "task:t")]
