"""The webhook inbox: store each verified event once, and apply stored events exactly once.

Storing is one ``INSERT ... ON CONFLICT DO NOTHING`` so the provider gets its
200 fast; a redelivery hits the unique (provider, event_id) and is acknowledged
without being stored again. Applying happens in a Celery worker: the core knows
no product, so what an event changes is up to the app registered in
:data:`event_appliers` for its provider (``subscriptions`` registers one for each).
Queueing stored events for a worker is :mod:`monetization.webhook_queue`'s job.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
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
from monetization.providers import provider_event_relevant
from monetization.providers.base import (
    EventIgnored,
    ProviderError,
    ProviderEvent,
    RetryableApplyError,
    SubjectMissing,
)
from monetization.registry import Registry

log = logging.getLogger(__name__)


def _none_together(events: Sequence[WebhookEvent]) -> dict[int, str]:
    return {}


@dataclass(frozen=True)
class EventApplier:
    """How an app applies a provider's stored events.

    ``apply(event) -> note`` applies one event inside the caller's transaction; it raises
    :class:`EventIgnored` (nothing to do), :class:`RetryableApplyError` (may succeed later)
    or anything else (failed, shown in the admin for replay). ``apply_together(events)``
    applies in bulk, in one go, those events whose whole effect allows it and returns their
    notes by event id; the events it leaves out are applied one at a time with ``apply``.
    """

    apply: Callable[[WebhookEvent], str]
    apply_together: Callable[[Sequence[WebhookEvent]], dict[int, str]] = _none_together


# The app that applies each provider's events: event_appliers.register(provider, EventApplier(...)).
event_appliers: Registry[EventApplier] = Registry("webhook event applier")

# An event in one of these is finished: applying it again does nothing.
DONE = (WebhookEvent.Status.APPLIED, WebhookEvent.Status.IGNORED)

# What applying an event (or failing to) writes on its row.
OUTCOME_FIELDS = [
    "status",
    "attempts",
    "last_error",
    "applied_at",
    "note",
    "last_attempt_at",
    "next_attempt_at",
    "waiting_for",
]

_INSERT_SQL = """
INSERT INTO monetization_webhookevent
    (provider, event_id, event_type, subscription_ref, occurred_at, received_at, payload, raw_body,
     status, attempts, last_error, note, applied_at, next_attempt_at, waiting_for)
VALUES {values}
ON CONFLICT (provider, event_id) DO NOTHING
RETURNING id, event_id
"""


# Set while a task that applies the waiting events is queued: arrivals meanwhile need no task of their own
# (see monetization.webhook_queue.webhook_apply_schedule); the applying task clears it.
APPLY_SCHEDULED_KEY = "webhooks:apply-scheduled"


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
        return _execute_server_bound(sql, params)
    except (OperationalError, InterfaceError):
        if not optimistic or connection.in_atomic_block or connection.is_usable():
            raise
        # A stale connection (server restarted, idle timeout): what the health check would have caught.
        # (Should the lost INSERT have reached the server after all, the retry sees the row as a duplicate
        # and does not enqueue it; the sweep picks it up.)
        connection.close()
        return _execute_server_bound(sql, params)


def _execute_server_bound(sql: str, params: list) -> list[tuple]:
    """Execute with server-side parameters (psycopg's own cursor), in one round trip.

    Django's psycopg cursors bind parameters client-side: every event's payload and raw body
    would be escaped into the statement text. Nothing is prepared on the server: Django leaves
    psycopg's ``prepare_threshold`` at None (and so does the PgBouncer setting, backoffice/databases.py),
    which turns psycopg's ``prepare=True`` into a no-op; each execution is one unnamed Parse, Bind,
    Describe, Execute and Sync, sent together, so the statement is still planned each time.
    """
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def webhook_store(*, events: Iterable[ProviderEvent], raw_body: str = "") -> list[tuple[int, bool]]:
    """Store verified events once. Returns (id, created) per event, in order. An event type nothing
    acts on is stored as ignored; the rest wait to be applied.

    New events cost the database one statement, autocommitted (no BEGIN, COMMIT or savepoint: each
    round trip behind PgBouncer is a hop of its own); a redelivery one more, the stored row's id."""
    events = list(events)
    if not events:
        return []
    now = clock.now()
    # The task queued for it normally applies it within this; if that task is lost, the sweep queues it.
    due = now + timedelta(seconds=settings.WEBHOOK_RECEIVED_GRACE_SECONDS)
    rows = []
    for ev in events:
        relevant = provider_event_relevant(ev.provider, ev.event_type)
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
                due if relevant else None,
                "",
            )
        )
    # One statement, no explicit transaction: a single INSERT commits on its own (one round trip).
    placeholders = ",".join(["(%s,%s,%s,%s,%s,%s,%s::jsonb,%s,%s,%s,%s,%s,%s,%s,%s)"] * len(rows))
    fetched = _insert_returning(_INSERT_SQL.format(values=placeholders), [v for row in rows for v in row])
    inserted = {event_id: pk for pk, event_id in fetched}
    result = []
    for row in rows:
        hit = inserted.get(row[1])
        if hit is None:
            existing = WebhookEvent.objects.filter(provider=row[0], event_id=row[1]).values_list("id", flat=True)
            result.append((existing.first(), False))
            continue
        result.append((hit, True))
    log.info(
        "webhook stored",
        extra={"provider": rows[0][0], "event_ids": [row[1] for row in rows], "new": sum(c for _, c in result)},
    )
    return result


def retry_delay(attempts: int) -> timedelta:
    """How long an event waits after its ``attempts``-th failed attempt: doubling from
    ``WEBHOOK_RETRY_BASE_SECONDS``, capped at ``WEBHOOK_RETRY_MAX_SECONDS``, jittered down to half
    so events that failed together (a provider outage) do not all come back together."""
    ceiling = min(
        settings.WEBHOOK_RETRY_MAX_SECONDS, settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** min(max(0, attempts - 1), 30)
    )
    return timedelta(seconds=ceiling * random.uniform(0.5, 1.0))


def _record_failure(event: WebhookEvent, error: Exception) -> None:
    """Write on a (locked) event what its failed attempt means: ignored, waiting, retrying or failed."""
    now = clock.now()
    message = f"{type(error).__name__}: {error}"
    if isinstance(error, EventIgnored):
        event.mark_ignored(note=str(error))
    elif isinstance(error, SubjectMissing) and now - event.received_at < timedelta(
        hours=settings.WEBHOOK_WAITING_GIVE_UP_HOURS
    ):
        subject = getattr(error, "subject_ref", "") or event.subscription_ref
        event.mark_waiting(subject=subject, error=message, next_attempt_at=now + retry_delay(event.attempts))
    elif _retryable(error) and event.attempts <= settings.WEBHOOK_APPLY_MAX_RETRIES:
        event.mark_retrying(error=message, next_attempt_at=now + retry_delay(event.attempts))
    else:
        event.mark_failed(error=message)


# Postgres ends one side of a deadlock (40P01) or a transaction it could not serialize (40001); the other side
# commits, and the same work done again goes through. Workers applying events about overlapping customers and
# subscriptions at once meet this (the soak did): a retry, not a failed event left for a person.
TRANSIENT_SQLSTATES = ("40P01", "40001")


def _retryable(error: Exception) -> bool:
    return (
        isinstance(error, RetryableApplyError)
        or (isinstance(error, ProviderError) and error.retryable)
        or (isinstance(error, OperationalError) and getattr(error.__cause__, "sqlstate", None) in TRANSIENT_SQLSTATES)
    )


def webhook_event_apply(*, event_id: int) -> WebhookEvent:
    """Apply one stored event exactly once. Failures are recorded on the row, then re-raised.

    What a failure means is written on the row (:func:`_record_failure`): ignored, waiting
    for its subject, retrying at ``next_attempt_at`` (the sweep queues it then), or failed.
    Raises :class:`RetryableApplyError` when trying again later may help.

    The applier runs in the same transaction as the row lock and the status
    update, with no savepoint (two round trips saved per event): when it raises,
    the whole transaction rolls back and the outcome is then recorded on the row
    in a second one, as it was before under a savepoint.
    """
    error: Exception | None = None
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.select_for_update().get(pk=event_id)
            if event.status in DONE:
                return event
            event.attempts += 1
            event.last_attempt_at = clock.now()
            try:
                note = event_appliers.get(event.provider).apply(event)
            except Exception as exc:
                error = exc
                raise
            event.mark_applied(note=note or "")
            event.save(update_fields=OUTCOME_FIELDS)
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
        event.last_attempt_at = clock.now()
        _record_failure(event, error)
        event.save(update_fields=OUTCOME_FIELDS)
    if isinstance(error, EventIgnored):
        return event
    if _retryable(error) and not isinstance(error, RetryableApplyError):
        raise RetryableApplyError(str(error)) from error
    raise error


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

    The events are locked in the order the providers produced them and handed to their
    appliers' ``apply_together``, in one transaction: most events (status changes,
    renewals' subscription updates) only converge a subscription to a snapshot and are
    applied together with bulk reads and writes. Everything else, and the whole batch
    should any of it fail, is applied one at a time by :func:`webhook_event_apply`, which
    records each failure on its own row. Events another worker holds are skipped here and
    waited for there (so they are applied once either way), or, with
    ``wait_for_locked=False``, left to that worker (and absent from the result).
    """
    outcomes: dict[int, WebhookEvent | Exception] = {}
    seen: set[int] = set()  # locked here (not held by another worker)
    try:
        with transaction.atomic():
            by_applier: dict[int, tuple[EventApplier, list[WebhookEvent]]] = {}
            for event in (
                WebhookEvent.objects.select_for_update(skip_locked=True)
                .filter(pk__in=list(event_ids))
                .order_by("occurred_at", "pk")
            ):
                seen.add(event.pk)
                # Finished (its task redelivered, or taken along by an earlier batch), or failed since it
                # was queued: a failed event is applied again only when a person replays it.
                if event.status not in WebhookEvent.UNFINISHED:
                    outcomes[event.pk] = event
                    continue
                applier = event_appliers.get(event.provider)
                by_applier.setdefault(id(applier), (applier, []))[1].append(event)
            applied: list[WebhookEvent] = []
            alone: list[tuple[EventApplier, WebhookEvent]] = []
            now = clock.now()
            for applier, events in by_applier.values():
                notes = applier.apply_together(events)
                for event in events:
                    if event.pk in notes:
                        event.attempts += 1
                        event.last_attempt_at = now
                        event.mark_applied(note=notes[event.pk])
                        outcomes[event.pk] = event
                        applied.append(event)
                    else:
                        alone.append((applier, event))
            # The others (payments, refunds, disputes...) one at a time, still in this transaction and under
            # its locks: a savepoint each instead of a transaction, a lock and an update of their own. One
            # that fails is rolled back to its savepoint and left to webhook_event_apply below, which redoes
            # it alone and records what went wrong on its row.
            for applier, event in sorted(alone, key=lambda pair: (pair[1].occurred_at, pair[1].pk)):
                event.attempts += 1
                event.last_attempt_at = now
                try:
                    with transaction.atomic():
                        note = applier.apply(event)
                except Exception:
                    log.info("webhook event %s failed in its batch; applying it alone", event.pk, exc_info=True)
                    continue
                event.mark_applied(note=note or "")
                outcomes[event.pk] = event
                applied.append(event)
            if applied:
                bulk_update_rows(applied, OUTCOME_FIELDS)
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

    Clears the scheduled flag first (see ``monetization.webhook_queue.webhook_apply_schedule``). Events another
    worker holds are left to it. Stops after ``max_batches`` so a long backlog does not
    keep the worker from other tasks: the caller schedules the rest. An event that fails here
    is retried at its own ``next_attempt_at`` by the sweep, not after this slice.
    """
    cache.delete(APPLY_SCHEDULED_KEY)
    outcomes: dict[int, WebhookEvent | Exception] = {}
    tried: list[int] = []  # including events another worker held: not asked for again
    for _ in range(max_batches):
        event_ids = webhook_events_pending(limit=settings.WEBHOOK_APPLY_BATCH, exclude=tried)
        if not event_ids:
            return outcomes, False
        batch = webhook_events_apply_batch(event_ids=event_ids, wait_for_locked=False)
        outcomes.update(batch)
        # Left out of the next look: those another worker holds (absent from the outcomes) and those that
        # failed (their failure is recorded, unless saving it failed too). The applied ones are no longer
        # received; leaving them out as well made the look cost more with every batch of a long backlog.
        tried += [e for e in event_ids if e not in batch or isinstance(batch[e], Exception)]
    return outcomes, True


def webhook_event_check_replayable(*, event_id: int) -> WebhookEvent:
    """Lock an event a person wants applied again: only one not finished (failed, stuck, waiting) may be.

    A replay gives the event a fresh budget of attempts."""
    locked = WebhookEvent.objects.select_for_update().get(pk=event_id)
    if locked.status not in WebhookEvent.APPLICABLE:
        raise Conflict(
            f"Only failed or pending events can be replayed; this one is {locked.status}.",
            code=ErrorCode.WEBHOOK_NOT_REPLAYABLE,
        )
    return locked


def webhook_events_due(*, limit: int) -> list[int]:
    """Claim up to ``limit`` unfinished events whose next attempt is due, most overdue first.

    Claiming moves their ``next_attempt_at`` a lease (``WEBHOOK_SWEEP_LEASE_SECONDS``) ahead:
    the task queued for them sets it anew when it tries them, and should that task be lost
    (its worker killed, its message dropped) they are due again when the lease runs out.
    Events a worker holds locked right now are left to it.
    """
    if limit <= 0:
        return []
    now = clock.now()
    with transaction.atomic():
        ids = list(
            WebhookEvent.objects.select_for_update(skip_locked=True)
            .filter(status__in=WebhookEvent.UNFINISHED, next_attempt_at__lte=now)
            .order_by("next_attempt_at")
            .values_list("id", flat=True)[:limit]
        )
        if ids:
            WebhookEvent.objects.filter(pk__in=ids).update(
                next_attempt_at=now + timedelta(seconds=settings.WEBHOOK_SWEEP_LEASE_SECONDS)
            )
    return ids


def webhook_events_waiting_for(*, provider: str, subject_refs: Iterable[str]) -> list[int]:
    """Ids of the events of ``provider`` waiting for one of ``subject_refs`` (now known)."""
    refs = sorted({ref for ref in subject_refs if ref})
    if not refs:
        return []
    return list(
        WebhookEvent.objects.filter(
            status=WebhookEvent.Status.WAITING, provider=provider, waiting_for__in=refs
        ).values_list("id", flat=True)
    )
