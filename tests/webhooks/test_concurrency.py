"""Two workers applying events about one new subscription at the same time create it once."""

import threading
import time

import pytest
from django.db import connection, transaction

from monetization import clock
from monetization.models import Customer, WebhookEvent
from monetization.providers.base import RetryableApplyError
from monetization.providers.stripe import snapshot_from_subscription
from monetization.providers.stripe.parsing import event_from_dict
from monetization.services.webhooks import EventApplier, event_appliers, webhook_event_apply, webhook_store
from subscriptions.models import Subscription
from subscriptions.services.lifecycle import Cause
from subscriptions.services.provider_sync import (
    SyncRequest,
    subscription_sync_from_snapshot,
    subscriptions_sync_from_snapshots,
)
from tests.concurrency import run_at_once

from .support import stripe_subscription_event, stripe_subscription_object

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_events_for_a_new_subscription_converge(catalog, customers):
    for round_ in range(5):
        sub_id = f"sub_race_{round_}"
        events = [
            event_from_dict(
                stripe_subscription_event(
                    event_id=f"evt_race_{round_}_{i}", created=1767225600 + i, sub_id=sub_id, status=status
                )
            )
            for i, status in enumerate(["active", "past_due"])
        ]
        ids = [pk for pk, _ in webhook_store(events=events)]
        assert run_at_once(lambda pk: webhook_event_apply(event_id=pk), [(pk,) for pk in ids]) == []
        assert Subscription.objects.filter(provider_subscription_id=sub_id).count() == 1
        assert Subscription.objects.get(provider_subscription_id=sub_id).state == Subscription.State.ON_HOLD
        assert set(WebhookEvent.objects.filter(id__in=ids).values_list("status", flat=True)) == {"applied"}


def test_the_same_event_applied_twice_at_once_applies_once(catalog, customers):
    event = event_from_dict(stripe_subscription_event(event_id="evt_twice", created=1767225600, sub_id="sub_twice"))
    [(pk, _)] = webhook_store(events=[event])
    barrier = threading.Barrier(2)

    def work():
        barrier.wait()
        webhook_event_apply(event_id=pk)
        connection.close()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert WebhookEvent.objects.get(pk=pk).attempts == 1


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _blocked_by(pid: int, blocker: int, *, within: float = 60) -> None:
    """Wait until backend ``pid`` waits on a lock ``blocker`` holds (the step the test then releases)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s = ANY(pg_blocking_pids(%s))", [blocker, pid])
            if cursor.fetchone()[0]:
                return
        time.sleep(0.02)
    raise AssertionError(f"backend {pid} never waited for {blocker}")


def test_a_batch_of_new_subscriptions_racing_two_workers_one_after_the_other_creates_each_once(catalog, customers):
    """A worker's batch about two new subscriptions while two other workers create them, one commit after the
    other: its insert fails on the first, then again on the second. Each failure makes a subscription known, so
    the batch converges both (it used to give up after the second failure: 'subscription vanished')."""
    snapshots = [
        snapshot_from_subscription(stripe_subscription_object(sub_id=sub_id), as_of=clock.now())
        for sub_id in ("sub_race_first", "sub_race_second")
    ]
    cause = Cause.task("test", reason="race")
    # The customer's Stripe identity known beforehand, so the workers race on the subscriptions alone.
    setup = snapshot_from_subscription(stripe_subscription_object(sub_id="sub_race_setup"), as_of=clock.now())
    subscription_sync_from_snapshot(snapshot=setup, cause=cause)
    inserted = [threading.Event(), threading.Event()]
    release = [threading.Event(), threading.Event()]
    pids: dict[str, int] = {}
    errors: list[BaseException] = []

    def other_worker(i: int) -> None:
        try:
            with transaction.atomic():
                pids[f"worker{i}"] = _backend_pid()
                subscription_sync_from_snapshot(snapshot=snapshots[i], cause=cause)
                inserted[i].set()
                release[i].wait(60)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def batch() -> None:
        try:
            pids["batch"] = _backend_pid()
            subscriptions_sync_from_snapshots([SyncRequest(snapshot=s, cause=cause) for s in snapshots])
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=other_worker, args=(i,)) for i in range(2)]
    for thread, done in zip(workers, inserted, strict=True):
        thread.start()
        assert done.wait(60), errors
    batcher = threading.Thread(target=batch)
    batcher.start()
    while "batch" not in pids:
        time.sleep(0.01)
    for i in range(2):  # the batch's insert waits for the first worker, then (retried) for the second
        _blocked_by(pids["batch"], pids[f"worker{i}"])
        release[i].set()
    batcher.join(60)
    for thread in workers:
        thread.join(60)
    assert errors == []
    assert sorted(Subscription.objects.values_list("provider_subscription_id", flat=True)) == [
        "sub_race_first",
        "sub_race_second",
        "sub_race_setup",
    ]


def test_an_event_whose_transaction_loses_a_deadlock_is_retried_not_failed(catalog, customers):
    """Workers applying events about overlapping rows at once can deadlock; Postgres ends one transaction and
    the other commits. The loser's event is tried again later (the soak saw one left ``failed`` after one
    attempt: 'deadlock detected'). Here a real deadlock: the applier locks one customer then another, a
    second transaction the same two the other way round."""
    [(pk, _)] = webhook_store(
        events=[event_from_dict(stripe_subscription_event(event_id="evt_deadlock", created=1767225600))]
    )
    first, second = customers["web"].pk, customers["ios"].pk
    applier_locked_first, other_locked_second = threading.Event(), threading.Event()
    pids: dict[str, int] = {}
    errors: list[BaseException] = []

    def lock(customer_id: int) -> None:
        Customer.objects.select_for_update().get(pk=customer_id)

    def apply(event: WebhookEvent) -> str:
        pids["applier"] = _backend_pid()
        lock(first)
        applier_locked_first.set()
        assert other_locked_second.wait(60)
        lock(second)
        return "applied"

    def other_worker() -> None:
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:  # so that the applier's backend is the one that finds the cycle
                    cursor.execute("SET LOCAL deadlock_timeout = '30s'")
                pids["other"] = _backend_pid()
                lock(second)
                other_locked_second.set()
                assert applier_locked_first.wait(60)
                _blocked_by(pids["applier"], pids["other"])
                lock(first)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    stripe_applier = event_appliers.get("stripe")
    event_appliers.register("stripe", EventApplier(apply=apply))
    try:
        other = threading.Thread(target=other_worker)
        other.start()
        with pytest.raises(RetryableApplyError, match="deadlock detected"):
            webhook_event_apply(event_id=pk)
        other.join(60)
        assert errors == []
        event = WebhookEvent.objects.get(pk=pk)
        assert (event.status, event.attempts) == (WebhookEvent.Status.RETRYING, 1)
        assert event.next_attempt_at > clock.now()
        assert webhook_event_apply(event_id=pk).status == WebhookEvent.Status.APPLIED  # its retry goes through
    finally:
        event_appliers.register("stripe", stripe_applier)
