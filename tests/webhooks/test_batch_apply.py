"""A worker applies waiting events in batches: the same outcome as one at a time, in fewer statements."""

import itertools
import threading

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monetization.models import AuditEvent, JournalEntry, Payment, WebhookEvent
from monetization.providers.base import get_provider
from monetization.providers.stripe.parsing import event_from_dict
from monetization.services.webhooks import (
    APPLY_SCHEDULED_KEY,
    webhook_event_apply,
    webhook_events_apply_batch,
    webhook_events_apply_waiting,
    webhook_store,
)
from monetization.tasks import apply_waiting_webhook_events
from monetization.webhook_queue import webhook_accept
from subscriptions.models import Subscription, SubscriptionPayment

from .support import PLAY_PUSH_TOKEN, play_push, play_resource, stripe_invoice_event, stripe_subscription_event
from .test_convergence import _app_store_sequence, _deliver, _state, _stripe_sequence

_run = itertools.count()


def _store(events) -> list[int]:
    return [pk for pk, _created in webhook_store(events=events)]


def _apply_in_batches(ids: list[int], size: int) -> None:
    """What a worker does: batches, then the waiting and retrying ones again (the sweep's retries)."""
    for start in range(0, len(ids), size):
        webhook_events_apply_batch(event_ids=ids[start : start + size])
    for _ in range(3):
        failed = list(WebhookEvent.objects.filter(status__in=["waiting", "retrying"]).values_list("id", flat=True))
        if failed:
            webhook_events_apply_batch(event_ids=failed)


def _trail(provider: str, ref: str) -> list[tuple]:
    sub = Subscription.objects.get(provider=provider, provider_subscription_id=ref)
    return list(
        AuditEvent.objects.filter(object_type="subscriptions.subscription", object_id=str(sub.pk))
        .order_by("id")
        .values_list("action", "before", "after", "actor_label")
    )


@pytest.mark.django_db
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_batch_ends_where_one_at_a_time_ends(catalog, customers, data):
    """In delivery order: the same states, payments and audit trail. Shuffled and duplicated: the same end state."""
    n = next(_run)
    length = data.draw(st.integers(min_value=1, max_value=8), label="prefix")
    size = data.draw(st.integers(min_value=1, max_value=10), label="batch size")
    reference, batched, shuffled = (_stripe_sequence(f"sub_{k}{n}")[:length] for k in ("ref", "bat", "shf"))
    _deliver(reference, range(length))
    _apply_in_batches(_store(batched), size)
    order = list(data.draw(st.permutations(range(length)), label="order"))
    order += data.draw(st.lists(st.sampled_from(range(length)), max_size=length), label="duplicates")
    _apply_in_batches(_store([shuffled[i] for i in order]), size)

    assert _state("stripe", f"sub_ref{n}") == _state("stripe", f"sub_bat{n}") == _state("stripe", f"sub_shf{n}")
    # Ids differ per run; what was recorded, and why, does not.
    ref_trail = [(a, b, x, label.replace(f"sub_ref{n}", "S")) for a, b, x, label in _trail("stripe", f"sub_ref{n}")]
    bat_trail = [(a, b, x, label.replace(f"sub_bat{n}", "S")) for a, b, x, label in _trail("stripe", f"sub_bat{n}")]
    assert ref_trail == bat_trail
    assert not WebhookEvent.objects.filter(status__in=["received", "waiting", "retrying", "failed"]).exists()


def _new_subscription_events(prefix: str, count: int) -> list:
    return [
        event_from_dict(
            stripe_subscription_event(event_id=f"evt_{prefix}_{i}", created=1767225600 + i, sub_id=f"sub_{prefix}_{i}")
        )
        for i in range(count)
    ]


@pytest.mark.django_db
def test_statements_per_batch_do_not_grow_with_the_batch(catalog, customers):
    webhook_events_apply_batch(event_ids=_store(_new_subscription_events("warm", 1)))  # SKU cached, identity known
    counts = []
    for prefix, size in (("small", 5), ("large", 40)):
        ids = _store(_new_subscription_events(prefix, size))
        with CaptureQueriesContext(connection) as queries:
            outcomes = webhook_events_apply_batch(event_ids=ids)
        assert all(isinstance(o, WebhookEvent) and o.status == "applied" for o in outcomes.values())
        assert Subscription.objects.filter(provider_subscription_id__startswith=f"sub_{prefix}_").count() == size
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
    assert counts[1] <= 16  # vs about 13 per event one at a time


@pytest.mark.django_db
def test_one_bad_event_does_not_hold_back_the_others(catalog, customers):
    good = _new_subscription_events("good", 3)
    unknown = stripe_subscription_event(
        event_id="evt_nobody", created=1767225600, sub_id="sub_nobody", external_id="no-such-customer"
    )
    unknown["data"]["object"]["customer"] = "cus_nobody"
    nobody = event_from_dict(unknown)
    ids = _store([good[0], nobody, *good[1:]])
    outcomes = webhook_events_apply_batch(event_ids=ids)

    bad = WebhookEvent.objects.get(event_id="evt_nobody")
    # A customer we do not know yet may still appear (a purchase call, a link): the event waits for it.
    assert bad.status == "waiting" and "No customer" in bad.last_error and bad.attempts == 1
    assert isinstance(outcomes[bad.pk], Exception)
    applied = WebhookEvent.objects.filter(event_id__startswith="evt_good_")
    assert {(e.status, e.attempts) for e in applied} == {("applied", 1)}
    assert Subscription.objects.filter(provider_subscription_id__startswith="sub_good_").count() == 3
    assert not Subscription.objects.filter(provider_subscription_id="sub_nobody").exists()


@pytest.mark.django_db
def test_events_applied_elsewhere_are_left_alone(catalog, customers):
    ids = _store(_new_subscription_events("twice", 4))
    webhook_event_apply(event_id=ids[1])
    webhook_events_apply_batch(event_ids=ids)
    webhook_events_apply_batch(event_ids=ids)  # a redelivered task
    assert sorted(WebhookEvent.objects.filter(pk__in=ids).values_list("attempts", flat=True)) == [1, 1, 1, 1]
    assert AuditEvent.objects.filter(action="subscription.create").count() == 4


@pytest.mark.django_db
def test_one_task_applies_everything_waiting_a_slice_at_a_time(catalog, customers, settings):
    settings.WEBHOOK_APPLY_BATCH = 2
    settings.WEBHOOK_APPLY_BATCHES_PER_TASK = 2
    ids = _store(_new_subscription_events("task", 5))
    # Two batches of two, then the task queues the next (run inline here: eager mode) for the last one.
    assert apply_waiting_webhook_events.apply().get() == 4
    assert set(WebhookEvent.objects.filter(pk__in=ids).values_list("status", "attempts")) == {("applied", 1)}


@pytest.mark.django_db
def test_arrivals_need_no_task_of_their_own_while_one_is_queued(catalog, customers, django_capture_on_commit_callbacks):
    cache.add(APPLY_SCHEDULED_KEY, 1, 60)  # a task is queued (not run yet)
    with django_capture_on_commit_callbacks(execute=True):
        first = [pk for pk, _ in webhook_accept(events=_new_subscription_events("queued", 2))]
    assert set(WebhookEvent.objects.filter(pk__in=first).values_list("status", flat=True)) == {"received"}

    outcomes, more = webhook_events_apply_waiting(max_batches=5)  # that task runs: clears the flag first
    assert sorted(outcomes) == sorted(first) and not more
    assert cache.get(APPLY_SCHEDULED_KEY) is None
    with django_capture_on_commit_callbacks(execute=True):  # the next arrival queues (here: runs) a task
        second = [pk for pk, _ in webhook_accept(events=_new_subscription_events("next", 1))]
    assert WebhookEvent.objects.get(pk=second[0]).status == "applied"
    assert cache.get(APPLY_SCHEDULED_KEY) is None


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_apply_every_event_once(catalog, customers):
    """Two workers whose batches overlap (and each holds events the other wants): each event once."""
    events = []
    for i in range(20):
        for step, status in enumerate(["active", "past_due"]):
            events.append(
                event_from_dict(
                    stripe_subscription_event(
                        event_id=f"evt_conc_{i}_{step}",
                        created=1767225600 + step,
                        sub_id=f"sub_conc_{i}",
                        status=status,
                    )
                )
            )
    ids = _store(events)
    barrier = threading.Barrier(2)
    errors: list[Exception] = []

    def work(order):
        try:
            barrier.wait()
            for start in range(0, len(order), 7):
                webhook_events_apply_batch(event_ids=order[start : start + 7])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(o,)) for o in (ids, list(reversed(ids)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert set(WebhookEvent.objects.filter(pk__in=ids).values_list("status", "attempts")) == {("applied", 1)}
    assert Subscription.objects.filter(provider_subscription_id__startswith="sub_conc_").count() == 20
    assert AuditEvent.objects.filter(action="subscription.create").count() == 20
    # Both events of each subscription applied, newest last: everyone ends past due.
    states = set(Subscription.objects.filter(provider_subscription_id__startswith="sub_conc_").values_list("state"))
    assert states == {("on_hold",)} or states == {("in_grace_period",)}


@pytest.mark.django_db
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_app_store_notifications_in_batches_end_where_one_at_a_time_ends(apple_pki, catalog, customers, data):
    """Status notifications go in bulk, SUBSCRIBED / DID_RENEW (payments) one at a time: the same end state."""
    n = next(_run)
    length = data.draw(st.integers(min_value=1, max_value=7), label="prefix")
    size = data.draw(st.integers(min_value=1, max_value=8), label="batch size")
    reference = _app_store_sequence(apple_pki, f"93{n:06d}")[:length]
    batched = _app_store_sequence(apple_pki, f"94{n:06d}")[:length]
    order = list(data.draw(st.permutations(range(length)), label="order"))
    order += data.draw(st.lists(st.sampled_from(range(length)), max_size=length), label="duplicates")
    _deliver(reference, range(length))
    _apply_in_batches(_store([batched[i] for i in order]), size)
    assert _state("app_store", f"93{n:06d}") == _state("app_store", f"94{n:06d}")


def _invoices_paid(prefix: str, count: int, *, sub_prefix: str = "") -> list:
    """``invoice.paid`` of the renewal of each of ``count`` subscriptions made by ``_new_subscription_events``."""
    return [
        event_from_dict(
            stripe_invoice_event(
                event_id=f"evt_{prefix}_paid_{i}",
                created=1767225700 + i,
                invoice_id=f"in_{prefix}_{i}",
                sub_id=f"sub_{sub_prefix or prefix}_{i}",
            )
        )
        for i in range(count)
    ]


@pytest.mark.django_db
def test_payments_in_a_batch_cost_the_same_statements_whatever_their_number(catalog, customers):
    webhook_events_apply_batch(event_ids=_store(_new_subscription_events("warm", 1)))
    webhook_events_apply_batch(event_ids=_store(_invoices_paid("warm", 1)))  # SKU and rules cached
    counts = []
    for prefix, size in (("small", 5), ("large", 40)):
        webhook_events_apply_batch(event_ids=_store(_new_subscription_events(prefix, size)))
        ids = _store(_invoices_paid(prefix, size))
        with CaptureQueriesContext(connection) as queries:
            outcomes = webhook_events_apply_batch(event_ids=ids)
        assert all(isinstance(o, WebhookEvent) and o.status == "applied" for o in outcomes.values())
        payments = Payment.objects.filter(provider="stripe", provider_reference__startswith=f"in_{prefix}_")
        assert payments.count() == size
        # Each one booked and linked once, as one at a time.
        assert JournalEntry.objects.filter(key__in=[f"payment:{p.pk}:capture" for p in payments]).count() == size
        assert SubscriptionPayment.objects.filter(payment__in=payments).count() == size
        counts.append(len(queries))
    assert counts[0] == counts[1], counts  # one at a time: 16 statements per payment


@pytest.mark.django_db
def test_a_payment_twice_in_a_batch_is_recorded_once_and_an_unknown_subscription_waits(catalog, customers):
    webhook_events_apply_batch(event_ids=_store(_new_subscription_events("pay", 2)))
    paid = _invoices_paid("pay", 2)
    again = event_from_dict(  # the same invoice under another event id (Stripe's invoice.payment_succeeded)
        stripe_invoice_event(event_id="evt_pay_again", created=1767225800, invoice_id="in_pay_0", sub_id="sub_pay_0")
    )
    unknown = _invoices_paid("nosub", 1)[0]
    outcomes = webhook_events_apply_batch(event_ids=_store([paid[0], unknown, again, paid[1]]))

    assert Payment.objects.filter(provider_reference="in_pay_0").count() == 1
    assert Payment.objects.filter(provider_reference="in_pay_1").count() == 1
    notes = dict(WebhookEvent.objects.filter(event_id__startswith="evt_pay_").values_list("event_id", "note"))
    assert notes["evt_pay_paid_0"].endswith(" recorded") and notes["evt_pay_again"].endswith("already recorded")
    assert set(WebhookEvent.objects.filter(event_id__startswith="evt_pay_").values_list("status", flat=True)) == {
        "applied"
    }
    waiting = WebhookEvent.objects.get(event_id="evt_nosub_paid_0")
    assert waiting.status == "waiting" and isinstance(outcomes[waiting.pk], Exception)


def _play_events(code: int, tokens: list[str], *, event_ms: int, tag: str) -> list:
    """Play's developer notifications as its push delivers them (the adapter's parsing), one per token."""
    adapter = get_provider("google_play")
    return [
        event
        for i, token in enumerate(tokens)
        for event in adapter.verify_webhook(
            body=play_push(code=code, message_id=f"{tag}-{i}", event_ms=event_ms + i, token=token),
            headers={"X-Push-Token": PLAY_PUSH_TOKEN},
        )
    ]


def _play_says(play_client, tokens: list[str], *, step: str) -> None:
    """What Play answers now for each token: bought (its first order), renewed (its next order, a month on), or
    renewed and then auto-renew turned off."""
    for token in tokens:
        play_client.resources[token] = play_resource(
            "SUBSCRIPTION_STATE_CANCELED" if step == "canceled" else "SUBSCRIPTION_STATE_ACTIVE",
            latestSuccessfulOrderId=f"GPA.{token}" if step == "bought" else f"GPA.{token}..0",
            expiryTime="2026-02-01T00:00:00Z" if step == "bought" else "2026-03-01T00:00:00Z",
            autoRenewEnabled=step != "canceled",
        )


# Bought (a payment), renewed (a payment), auto-renew turned off (a status change), as Play notifies them.
_PLAY_STEPS = (("bought", 4, 1767225605000), ("renewed", 2, 1769904005000), ("canceled", 3, 1769904905000))


@pytest.mark.django_db
def test_google_play_notifications_in_batches_end_where_one_at_a_time_ends(catalog, customers, play_client):
    """Play's purchases, renewals and status changes go in bulk, read back from the Play API once each as alone:
    the same subscriptions and payments as one at a time, in statements that do not grow with the batch."""
    alone = [f"play-alone-{i}" for i in range(6)]
    for step, code, event_ms in _PLAY_STEPS:
        _play_says(play_client, alone, step=step)
        for event_id in _store(_play_events(code, alone, event_ms=event_ms, tag=f"alone-{step}")):
            webhook_event_apply(event_id=event_id)

    counts: dict[str, list[int]] = {}
    for size in (2, 6):
        tokens = [f"play-batch{size}-{i}" for i in range(size)]
        for step, code, event_ms in _PLAY_STEPS:
            _play_says(play_client, tokens, step=step)
            play_client.calls.clear()
            ids = _store(_play_events(code, tokens, event_ms=event_ms, tag=f"b{size}-{step}"))
            with CaptureQueriesContext(connection) as queries:
                outcomes = webhook_events_apply_batch(event_ids=ids)
            assert {o.status for o in outcomes.values()} == {"applied"}
            assert sorted(args["token"] for call, args in play_client.calls if call == "get") == sorted(tokens)
            counts.setdefault(step, []).append(len(queries))
        for i, token in enumerate(tokens):
            (fields, payments), (alone_fields, alone_payments) = (
                _state("google_play", token),
                _state("google_play", alone[i]),
            )
            # The event clock of a Play snapshot is when it was read back from the API: not compared.
            assert (fields[:-1], payments) == (alone_fields[:-1], alone_payments)
    assert _state("google_play", alone[0])[0][:2] == ("canceled", _state("google_play", alone[0])[0][1])
    paid = [("9.99 USD", "initial", "succeeded"), ("9.99 USD", "renewal", "succeeded")]
    assert _state("google_play", alone[0])[1] == paid
    # Alone, a renewal was 20 statements (44 for 2, 124 for 6); in bulk 27 and 31: each renewal still looks for
    # the earlier orders it holds no payment for (one read each). Status changes: the same count for 2 and 6.
    assert counts["renewed"][1] - counts["renewed"][0] <= 4, counts
    assert counts["canceled"][1] == counts["canceled"][0], counts
