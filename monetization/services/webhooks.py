"""The webhook inbox: receive (verify, store once, enqueue), apply, replay.

Receiving is kept to one signature check and one ``INSERT ... ON CONFLICT DO
NOTHING`` so the provider gets its 200 fast; applying happens in a Celery
worker. A redelivery hits the unique (provider, event_id) and is
acknowledged without being stored or enqueued again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from datetime import timedelta

import psycopg
from django.conf import settings
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.db import InterfaceError, OperationalError, connection, transaction

from monetization import clock
from monetization.bulk import bulk_update_rows
from monetization.errors import Conflict, ErrorCode
from monetization.models import WebhookEvent
from monetization.providers.base import ProviderError, ProviderEvent, get_provider
from monetization.services.appliers import (
    EventIgnored,
    RetryableApplyError,
    applier_for,
    is_relevant,
    sync_note,
    sync_snapshot_for,
)
from monetization.services.audit import audit_record

log = logging.getLogger(__name__)

# An event in one of these is finished: applying it again does nothing.
DONE = (WebhookEvent.Status.APPLIED, WebhookEvent.Status.IGNORED)

_INSERT_SQL = """
INSERT INTO monetization_webhookevent
    (provider, event_id, event_type, subscription_ref, occurred_at, received_at, payload, raw_body,
     status, attempts, last_error, note, applied_at)
VALUES {values}
ON CONFLICT (provider, event_id) DO NOTHING
RETURNING id, event_id, status
"""


def _enqueue(event_ids: list[int]) -> None:
    """One apply task per event (staff replays): each retries on its own."""
    from monetization.tasks import apply_webhook_event

    for event_id in event_ids:
        try:
            apply_webhook_event.delay(event_id)
        except Exception:
            # The row is stored: the requeue task picks up anything left in "received".
            log.exception("could not enqueue webhook event %s", event_id)


# Set while a task that applies the waiting events is queued: arrivals meanwhile need no task of their own.
APPLY_SCHEDULED_KEY = "webhooks:apply-scheduled"


def webhook_apply_schedule() -> None:
    """Make sure a worker applies what is waiting: one queued task for all of it, not one per event.

    The flag is set before the task is queued and cleared by the task before it looks
    for waiting events, so an event stored (committed) before the flag was seen set
    is found by that task, and one stored after it was cleared queues a new task. The
    flag expires (``WEBHOOK_APPLY_SCHEDULED_TTL``) should its task be lost; the requeue
    task catches what is left after that.
    """
    from monetization.tasks import apply_waiting_webhook_events

    try:
        if cache.add(APPLY_SCHEDULED_KEY, 1, settings.WEBHOOK_APPLY_SCHEDULED_TTL):
            try:
                apply_waiting_webhook_events.delay()
            except Exception:
                cache.delete(APPLY_SCHEDULED_KEY)  # the next arrival tries again
                raise
    except Exception:
        # The rows are stored: the requeue task picks up anything left in "received".
        log.exception("could not schedule applying webhook events")


def _insert_returning(sql: str, params: list) -> list[tuple]:
    """Run the inbox INSERT; outside a transaction, without Django's per-request ``SELECT 1`` health check.

    With ``conn_health_checks`` on, the first query of every request on a reused
    connection is preceded by a ``SELECT 1``: one more round trip than the
    INSERT itself on this hot path. The INSERT is its own health check: if the
    connection went stale it fails, and (not being in a transaction, and the
    statement being idempotent: ON CONFLICT DO NOTHING) it is run once more on a
    fresh connection. Inside a transaction nothing changes.
    """
    optimistic = (
        not connection.in_atomic_block and connection.connection is not None and connection.health_check_enabled
    )
    if optimistic:
        connection.health_check_done = True
    try:
        return _execute_prepared(sql, params)
    except (OperationalError, InterfaceError):
        if not optimistic or connection.in_atomic_block or connection.is_usable():
            raise
        # A stale connection (server restarted, idle timeout): what the health check would have caught.
        # (Should the lost INSERT have reached the server after all, the retry sees the row as a duplicate
        # and does not enqueue it; webhook_requeue_stale picks it up.)
        connection.close()
        return _execute_prepared(sql, params)


def _execute_prepared(sql: str, params: list) -> list[tuple]:
    """Execute with server-side parameters, prepared once per connection (psycopg's own cursor).

    Django's psycopg cursors bind parameters client-side: every event's payload and raw body
    would be escaped into the statement text, which PostgreSQL then parses and plans anew.
    """
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall()


def webhook_store(
    *, events: Iterable[ProviderEvent], raw_body: str = "", enqueue: bool = True
) -> list[tuple[int, bool]]:
    """Store verified events once. Returns (id, created) per event; new relevant ones are enqueued on commit."""
    events = list(events)
    if not events:
        return []
    now = clock.now()
    rows = []
    for ev in events:
        relevant = is_relevant(ev.provider, ev.event_type)
        rows.append(
            (
                ev.provider,
                ev.event_id[:255],
                ev.event_type[:64],
                (ev.subscription_ref or "")[:512],
                ev.occurred_at,
                now,
                json.dumps(ev.payload, cls=DjangoJSONEncoder),
                raw_body,
                WebhookEvent.Status.RECEIVED if relevant else WebhookEvent.Status.IGNORED,
                0,
                "",
                "" if relevant else "event type not applied",
                None if relevant else now,
            )
        )
    # One statement, no explicit transaction: a single INSERT commits on its own (one round trip).
    if connection.vendor == "postgresql":
        placeholders = ",".join(["(%s,%s,%s,%s,%s,%s,%s::jsonb,%s,%s,%s,%s,%s,%s)"] * len(rows))
        fetched = _insert_returning(_INSERT_SQL.format(values=placeholders), [v for row in rows for v in row])
        inserted = {event_id: (pk, status) for pk, event_id, status in fetched}
    else:  # the SQLite demo
        objs = [
            WebhookEvent(
                provider=r[0],
                event_id=r[1],
                event_type=r[2],
                subscription_ref=r[3],
                occurred_at=r[4],
                received_at=r[5],
                payload=json.loads(r[6]),
                raw_body=r[7],
                status=r[8],
                note=r[11],
                applied_at=r[12],
            )
            for r in rows
        ]
        before = set(
            WebhookEvent.objects.filter(provider=events[0].provider, event_id__in=[r[1] for r in rows]).values_list(
                "event_id", flat=True
            )
        )
        WebhookEvent.objects.bulk_create(objs, ignore_conflicts=True)
        inserted = {
            e: (pk, st)
            for pk, e, st in WebhookEvent.objects.filter(
                provider=events[0].provider, event_id__in=[r[1] for r in rows if r[1] not in before]
            ).values_list("id", "event_id", "status")
        }
    result = []
    to_apply = []
    for row in rows:
        hit = inserted.get(row[1])
        if hit is None:
            existing = WebhookEvent.objects.filter(provider=row[0], event_id=row[1]).values_list("id", flat=True)
            result.append((existing.first(), False))
            continue
        result.append((hit[0], True))
        if hit[1] == WebhookEvent.Status.RECEIVED:
            to_apply.append(hit[0])
    if enqueue and to_apply:
        transaction.on_commit(webhook_apply_schedule)
    return result


def webhook_receive(*, provider: str, body: bytes, headers: dict[str, str]) -> list[tuple[int, bool]]:
    """Verify a delivery with the provider's adapter and store its events (raises InvalidSignature/MalformedPayload)."""
    events = get_provider(provider).verify_webhook(body=body, headers=headers)
    return webhook_store(events=events, raw_body=body.decode("utf-8", errors="replace"))


def webhook_event_apply(*, event_id: int) -> WebhookEvent:
    """Apply one stored event exactly once. Failures are recorded on the row, then re-raised.

    Raises :class:`RetryableApplyError` when trying again later may help.

    The applier runs in the same transaction as the row lock and the status
    update, with no savepoint (two round trips saved per event): when it raises,
    the whole transaction rolls back and the outcome (ignored, failed) is then
    recorded on the row in a second one, as it was before under a savepoint.
    """
    error: Exception | None = None
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.select_for_update().get(pk=event_id)
            if event.status in DONE:
                return event
            event.attempts += 1
            try:
                note = applier_for(event.provider)(event)
            except Exception as exc:
                error = exc
                raise
            event.mark_applied(note=note or "")
            event.save(update_fields=["status", "attempts", "last_error", "applied_at", "note"])
        return event
    except Exception as exc:
        if error is None or exc is not error:
            raise  # not the applier's: locking or saving the row failed
    # Everything the applier did was rolled back with the transaction; record what happened.
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().get(pk=event_id)
        if event.status in DONE:  # applied by someone else in between
            return event
        event.attempts += 1
        if isinstance(error, EventIgnored):
            event.mark_ignored(note=str(error))
            error = None
        else:
            event.mark_failed(error=f"{type(error).__name__}: {error}")
        event.save(update_fields=["status", "attempts", "last_error", "applied_at", "note"])
    if error is not None:
        retryable = isinstance(error, RetryableApplyError) or (isinstance(error, ProviderError) and error.retryable)
        if retryable and not isinstance(error, RetryableApplyError):
            raise RetryableApplyError(str(error)) from error
        raise error
    return event


def webhook_events_pending(*, limit: int, exclude: Sequence[int] = ()) -> list[int]:
    """Ids of stored events still waiting to be applied, oldest first (a worker's batch to fill)."""
    if limit <= 0:
        return []
    return list(
        WebhookEvent.objects.filter(status=WebhookEvent.Status.RECEIVED)
        .exclude(pk__in=exclude)
        .order_by("received_at", "id")
        .values_list("id", flat=True)[:limit]
    )


def webhook_events_apply_batch(
    *, event_ids: Sequence[int], wait_for_locked: bool = True
) -> dict[int, WebhookEvent | Exception]:
    """Apply many stored events, each exactly once. Returns each event's row, or the error applying it raised.

    Events that only converge a subscription to a snapshot (most of them: status
    changes, renewals' subscription updates) are applied together in one
    transaction with bulk reads and writes (``subscriptions_sync_from_snapshots``),
    in the order the provider produced them. Everything else, and the whole batch
    should any of it fail, is applied one at a time by :func:`webhook_event_apply`,
    which records each failure on its own row. Events another worker holds are
    skipped here and waited for there (so they are applied once either way), or,
    with ``wait_for_locked=False``, left to that worker (and absent from the result).
    """
    from subscriptions.services.lifecycle import Cause
    from subscriptions.services.provider_sync import SyncRequest, subscriptions_sync_from_snapshots

    outcomes: dict[int, WebhookEvent | Exception] = {}
    seen: set[int] = set()  # locked here (not held by another worker)
    try:
        with transaction.atomic():
            events = []
            for event in (
                WebhookEvent.objects.select_for_update(skip_locked=True)
                .filter(pk__in=list(event_ids))
                .order_by("occurred_at", "pk")
            ):
                seen.add(event.pk)
                if event.status in DONE:  # its task redelivered, or taken along by an earlier batch
                    outcomes[event.pk] = event
                else:
                    events.append(event)
            synced = [(event, sync_snapshot_for(event.provider)(event)) for event in events]
            synced = [(event, snapshot) for event, snapshot in synced if snapshot is not None]
            if synced:
                results = subscriptions_sync_from_snapshots(
                    [
                        SyncRequest(
                            snapshot=snapshot,
                            cause=Cause.provider_event(event.provider, event.event_id, reason=event.event_type),
                        )
                        for event, snapshot in synced
                    ]
                )
                for (event, _snapshot), result in zip(synced, results, strict=True):
                    event.attempts += 1
                    event.mark_applied(note=sync_note(result))
                    outcomes[event.pk] = event
                bulk_update_rows(
                    [event for event, _ in synced], ["status", "attempts", "last_error", "applied_at", "note"]
                )
    except Exception:
        # One bad event must not hold the others back: one at a time, each failure on its own row.
        log.warning("webhook batch of %s failed; applying one at a time", len(event_ids), exc_info=True)
        outcomes = {}
    for event_id in event_ids:
        if event_id in outcomes or (not wait_for_locked and event_id not in seen):
            continue
        try:
            outcomes[event_id] = webhook_event_apply(event_id=event_id)
        except Exception as exc:  # recorded on the row by webhook_event_apply
            outcomes[event_id] = exc
    return outcomes


def webhook_events_apply_waiting(*, max_batches: int) -> tuple[dict[int, WebhookEvent | Exception], bool]:
    """Apply the waiting events, a batch at a time, oldest first. Returns the outcomes and whether some are left.

    Clears the scheduled flag first (see :func:`webhook_apply_schedule`). Events another
    worker holds are left to it. Stops after ``max_batches`` so a long backlog does not
    keep the worker from other tasks: the caller schedules the rest.
    """
    cache.delete(APPLY_SCHEDULED_KEY)
    outcomes: dict[int, WebhookEvent | Exception] = {}
    tried: list[int] = []  # including events another worker held: not asked for again
    for _ in range(max_batches):
        event_ids = webhook_events_pending(limit=settings.WEBHOOK_APPLY_BATCH, exclude=tried)
        if not event_ids:
            return outcomes, False
        tried += event_ids
        outcomes.update(webhook_events_apply_batch(event_ids=event_ids, wait_for_locked=False))
    return outcomes, True


def webhook_event_replay(*, event: WebhookEvent, user, reason: str = "") -> WebhookEvent:
    """Staff: apply a failed (or stuck) event again, on a worker. Audited."""
    with transaction.atomic():
        locked = WebhookEvent.objects.select_for_update().get(pk=event.pk)
        if locked.status not in (WebhookEvent.Status.FAILED, WebhookEvent.Status.RECEIVED):
            raise Conflict(
                f"Only failed or pending events can be replayed; this one is {locked.status}.",
                code=ErrorCode.WEBHOOK_NOT_REPLAYABLE,
            )
        audit_record(
            action="webhook.replay",
            obj=locked,
            actor=user,
            before={"status": locked.status, "attempts": locked.attempts, "last_error": locked.last_error[:500]},
            reason=reason or "replayed from the admin",
        )
        transaction.on_commit(lambda: _enqueue([locked.pk]))
    return locked


def webhook_requeue_stale(*, older_than_seconds: int = 300) -> int:
    """Queue an apply task when events are still "received" after a while (a task lost with a broker outage)."""
    from monetization.tasks import apply_waiting_webhook_events

    cutoff = clock.now() - timedelta(seconds=older_than_seconds)
    stale = WebhookEvent.objects.filter(status=WebhookEvent.Status.RECEIVED, received_at__lt=cutoff).count()
    if stale:
        apply_waiting_webhook_events.delay()
    return stale
