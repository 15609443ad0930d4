"""Putting stored webhook events in front of a worker: deliveries, staff replays.

A delivery is verified and stored (:mod:`monetization.services.webhooks`), then one
task applies everything waiting (:func:`webhook_apply_schedule`); a staff replay
gets a task of its own; an event waiting for its subject is queued as soon as the
subject appears (:func:`webhook_events_wake`). Queueing happens on commit. Whatever
is lost on the way (a task, a worker, the broker) is caught by the sweep
(``sweep_webhook_events``): every unfinished event is due again at its ``next_attempt_at``.

It sits above the tasks it queues, which sit above the services they run: services
never import tasks, so no import circle runs through here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from monetization.models import WebhookEvent
from monetization.providers import provider_event_relevant
from monetization.providers.base import ProviderEvent, get_provider
from monetization.reasons import reason_check
from monetization.services.audit import audit_record
from monetization.services.webhooks import (
    APPLY_SCHEDULED_KEY,
    webhook_event_check_replayable,
    webhook_events_waiting_for,
    webhook_store,
)
from monetization.tasks import apply_waiting_webhook_events, apply_webhook_event, apply_webhook_events

log = logging.getLogger(__name__)


def webhook_apply_schedule() -> None:
    """Make sure a worker applies what is waiting: one queued task for all of it, not one per event.

    The flag is set before the task is queued and cleared by the task before it looks
    for waiting events, so an event stored (committed) before the flag was seen set
    is found by that task, and one stored after it was cleared queues a new task. The
    flag expires (``WEBHOOK_APPLY_SCHEDULED_TTL``, a few seconds) should its task be lost; the
    sweep catches what is left after that.
    """
    try:
        if cache.add(APPLY_SCHEDULED_KEY, 1, settings.WEBHOOK_APPLY_SCHEDULED_TTL):
            try:
                apply_waiting_webhook_events.delay()
            except Exception:
                cache.delete(APPLY_SCHEDULED_KEY)  # the next arrival tries again
                raise
    except Exception:
        # The rows are stored: the sweep picks up anything left in "received".
        log.exception("could not schedule applying webhook events")


def webhook_accept(*, events: Iterable[ProviderEvent], raw_body: str = "") -> list[tuple[int, bool]]:
    """Store verified events once (returns (id, created) per event); the new ones that wait to be
    applied are queued for a worker on commit."""
    events = list(events)
    stored = webhook_store(events=events, raw_body=raw_body)
    if any(
        created and provider_event_relevant(event.provider, event.event_type)
        for event, (_pk, created) in zip(events, stored, strict=True)
    ):
        transaction.on_commit(webhook_apply_schedule)
    return stored


def webhook_receive(
    *, provider: str, body: bytes, headers: dict[str, str], connect: bool = False
) -> list[tuple[int, bool]]:
    """Verify a delivery with the provider's adapter and accept its events.

    Raises InvalidSignature or MalformedPayload (nothing stored)."""
    adapter = get_provider(provider)
    # Only Stripe has a second endpoint (Connect), with its own secret.
    events = (
        adapter.verify_webhook(body=body, headers=headers, connect=True)
        if connect
        else adapter.verify_webhook(body=body, headers=headers)
    )
    return webhook_accept(events=events, raw_body=body.decode("utf-8", errors="replace"))


def _enqueue(event_id: int) -> None:
    try:
        apply_webhook_event.delay(event_id)
    except Exception:
        # The replay is lost; the event stays as it was, for another replay (or the sweep, if unfinished).
        log.exception("could not enqueue webhook event %s", event_id)


def _enqueue_batches(event_ids: list[int]) -> None:
    for start in range(0, len(event_ids), settings.WEBHOOK_APPLY_BATCH):
        try:
            apply_webhook_events.delay(event_ids[start : start + settings.WEBHOOK_APPLY_BATCH])
        except Exception:
            # They are still due at their next_attempt_at: the sweep queues them then.
            log.exception("could not queue woken webhook events")
            return


def webhook_events_wake(*, provider: str, subject_refs: Iterable[str]) -> None:
    """The subjects ``subject_refs`` of ``provider`` exist now (a subscription or customer was just
    created): the events waiting for them are queued at once (on commit), rather than at their next
    attempt. Call it inside the transaction that created them."""
    event_ids = webhook_events_waiting_for(provider=provider, subject_refs=subject_refs)
    if event_ids:
        transaction.on_commit(lambda: _enqueue_batches(event_ids))


def webhook_event_replay(*, event: WebhookEvent, user, reason: str = "") -> WebhookEvent:
    """Staff: apply a failed (or stuck) event again, on a worker, in a task of its own. Audited."""
    reason_check(reason, required=False)
    with transaction.atomic():
        locked = webhook_event_check_replayable(event_id=event.pk)
        audit_record(
            action="webhook.replay",
            obj=locked,
            actor=user,
            before={"status": locked.status, "attempts": locked.attempts, "last_error": locked.last_error[:500]},
            reason=reason or "replayed from the admin",
        )
        # A person decided to try again: a fresh budget of attempts.
        locked.attempts = 0
        locked.save(update_fields=["attempts"])
        transaction.on_commit(lambda: _enqueue(locked.pk))
    return locked
