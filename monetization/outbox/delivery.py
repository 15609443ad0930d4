"""Delivering the outbox: at least once, in order per customer, retried with backoff, then parked.

One dispatcher per endpoint at a time (a PostgreSQL session advisory lock, on a connection past any pooler: a
killed worker's lock goes with its connection). It takes the due pending deliveries in outbox order, sends
them through the sink in lanes by customer (each lane in order) and marks them delivered once the receiver
accepted them; a worker killed in between sends those again, with the same event id. A failure holds back the
rest of that customer's events until the retry succeeds, so a customer's events arrive in order; other
customers go on. After ``OUTBOX_RETRY_FOR`` (three days) a delivery is parked: it is no longer retried and no
longer holds the customer's later events back; staff can replay it.

Times here are the database's wall clock (``statement_timestamp()``), not the application clock: delivery is
about real time, whatever date a demo or a test has set for the business.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, connections, transaction

from monetization.db_routing import session_alias
from monetization.models import EventDelivery, EventEndpoint, OutboxEvent
from monetization.outbox.sinks import SendResult, Sink, sink_for
from monetization.services.audit import audit_record
from monetization.services.outbox import outbox_entitlements

LOCK_NAMESPACE = 0x0B0C  # pg_advisory_lock(namespace, endpoint id)


def event_envelope(event: OutboxEvent) -> dict:
    """The body a consumer receives (the catalogue's envelope schema)."""
    return {
        "id": str(event.event_id),
        "type": event.type,
        "version": event.version,
        "sequence": event.pk,
        "occurred_at": event.occurred_at.isoformat(),
        "customer": {"external_id": event.customer_external_id} if event.customer_external_id else None,
        "subject": {"type": event.object_type, "id": event.object_id},
        "entitlements": event.entitlements or [],
        "cause": event.cause,
        "audit_event_id": event.audit_event_id,
        "data": event.data,
    }


def event_body(event: OutboxEvent) -> bytes:
    return json.dumps(event_envelope(event), separators=(",", ":"), sort_keys=True).encode()


def entitlements_fill(events: list[OutboxEvent]) -> None:
    """Events carry no entitlements until first delivered (the relay does not resolve them): resolve them
    once and keep them, so every redelivery sends the same body. Once per customer per batch (a batch holds
    many events of one customer), kept in one statement."""
    missing = [event for event in events if event.entitlements is None]
    if not missing:
        return
    resolved: dict[int | None, list[dict]] = {None: []}
    for event in missing:
        if event.customer_id not in resolved:
            found: list[dict] = []
            for resolve in outbox_entitlements:
                found.extend(resolve(event.customer_id))
            resolved[event.customer_id] = found
    rows = [{"id": event.pk, "entitlements": resolved[event.customer_id]} for event in missing]
    with connection.cursor() as cursor:
        # Only where still unset: two dispatchers (two endpoints) agree on the first answer.
        cursor.execute(
            """
            UPDATE monetization_outboxevent o SET entitlements = r.entitlements
            FROM jsonb_to_recordset(%s::jsonb) AS r(id bigint, entitlements jsonb)
            WHERE o.id = r.id AND o.entitlements IS NULL
            """,
            [json.dumps(rows, cls=DjangoJSONEncoder)],
        )
    kept = dict(OutboxEvent.objects.filter(pk__in=[event.pk for event in missing]).values_list("pk", "entitlements"))
    for event in missing:
        event.entitlements = kept[event.pk]


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff with jitter: base * 2^(attempts-1), capped."""
    base = settings.OUTBOX_RETRY_BASE_SECONDS
    delay = min(base * 2 ** max(attempts - 1, 0), settings.OUTBOX_RETRY_MAX_SECONDS)
    return timedelta(seconds=delay * random.uniform(0.8, 1.2))


_DUE_SQL = """
    SELECT d.id FROM monetization_eventdelivery d
    WHERE d.endpoint_id = %(endpoint)s AND d.status = 'pending' AND d.next_attempt_at <= statement_timestamp()
      -- a customer waiting on a retry gets nothing newer first. A scalar subquery, not NOT EXISTS: PostgreSQL
      -- never turns it into a join, so it is always one probe of the (endpoint, customer, event) index per row;
      -- as an anti-join on deliveries the relay has just written (no statistics yet) it was planned as a scan
      -- of every pending delivery per row (24 s for a batch of 1,000 out of 10,000).
      AND (
          SELECT 1 FROM monetization_eventdelivery w
          WHERE w.endpoint_id = d.endpoint_id AND w.status = 'pending' AND w.customer_id = d.customer_id
            AND w.event_id < d.event_id AND w.next_attempt_at > statement_timestamp()
          LIMIT 1
      ) IS NULL
    ORDER BY d.event_id
    LIMIT %(limit)s
"""


@dataclass
class DeliveryRun:
    delivered: int = 0
    failed: int = 0
    parked: int = 0
    endpoints: list[int] = field(default_factory=list)


def _advisory_lock(endpoint_id: int) -> bool:
    # Held across transactions: on the session connection, never through a transaction-mode pooler.
    with connections[session_alias()].cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_NAMESPACE, endpoint_id])
        return cursor.fetchone()[0]


def _advisory_unlock(endpoint_id: int) -> None:
    with connections[session_alias()].cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, endpoint_id])


def _mark_delivered(ids: list[int], codes: dict[int, int | None]) -> None:
    if not ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE monetization_eventdelivery d
            SET status = 'delivered', delivered_at = statement_timestamp(), last_attempt_at = statement_timestamp(),
                attempts = d.attempts + 1, last_status_code = c.code, last_error = ''
            FROM unnest(%s::bigint[], %s::int[]) AS c(id, code)
            WHERE d.id = c.id AND d.status = 'pending'
            """,
            [ids, [codes.get(i) for i in ids]],
        )


def _record_failure(delivery: EventDelivery, result: SendResult, run: DeliveryRun) -> bool:
    """Schedule the retry, or park it once the retry window is over (returns True when parked)."""
    attempts = delivery.attempts + 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        now = cursor.fetchone()[0]
    give_up = now - delivery.created_at >= timedelta(seconds=settings.OUTBOX_RETRY_FOR_SECONDS)
    EventDelivery.objects.filter(pk=delivery.pk, status=EventDelivery.Status.PENDING).update(
        attempts=attempts,
        last_attempt_at=now,
        last_status_code=result.status_code,
        last_error=result.error,
        status=EventDelivery.Status.PARKED if give_up else EventDelivery.Status.PENDING,
        next_attempt_at=now + retry_delay(attempts),
    )
    if give_up:
        run.parked += 1
    else:
        run.failed += 1
    return give_up


def _lane_send(sink: Sink, endpoint: EventEndpoint, items: list[tuple[EventDelivery, bytes]], deadline: float):
    """One lane: its deliveries in outbox order; a customer's failure skips that customer's later ones."""
    blocked: set[int] = set()
    results: list[tuple[EventDelivery, SendResult]] = []
    for delivery, body in items:
        if delivery.customer_id is not None and delivery.customer_id in blocked:
            continue
        if time.monotonic() >= deadline:
            break
        event = delivery.event
        result = sink.send(endpoint, str(event.event_id), event.type, body)
        results.append((delivery, result))
        if not result.ok and delivery.customer_id is not None:
            blocked.add(delivery.customer_id)
    return results


def endpoint_deliver(
    endpoint: EventEndpoint, *, sinks: list[Sink], pool: ThreadPoolExecutor, budget_seconds: float, run: DeliveryRun
) -> None:
    """Deliver what is due for one endpoint until nothing is due or the time budget is spent.

    A batch is split into lanes by customer, sent concurrently (one connection each): a customer's
    events stay in one lane, in order, so concurrency never reorders them. What the receiver accepted
    is marked when the batch is done; a worker killed before that sends it again (at least once).
    """
    deadline = time.monotonic() + budget_seconds
    any_success = any_failure = False
    lanes = len(sinks)
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(_DUE_SQL, {"endpoint": endpoint.pk, "limit": settings.OUTBOX_DELIVER_BATCH})
            ids = [row[0] for row in cursor.fetchall()]
        if not ids:
            break
        deliveries = list(EventDelivery.objects.filter(pk__in=ids).select_related("event").order_by("event_id"))
        entitlements_fill([d.event for d in deliveries])
        by_lane: list[list[tuple[EventDelivery, bytes]]] = [[] for _ in range(lanes)]
        for delivery in deliveries:
            key = delivery.customer_id if delivery.customer_id is not None else delivery.pk
            by_lane[key % lanes].append((delivery, event_body(delivery.event)))
        futures = [
            pool.submit(_lane_send, sinks[i], endpoint, items, deadline) for i, items in enumerate(by_lane) if items
        ]
        delivered: list[int] = []
        codes: dict[int, int | None] = {}
        failures: list[tuple[EventDelivery, SendResult]] = []
        for future in futures:
            for delivery, result in future.result():
                if result.ok:
                    delivered.append(delivery.pk)
                    codes[delivery.pk] = result.status_code
                else:
                    failures.append((delivery, result))
        _mark_delivered(delivered, codes)
        run.delivered += len(delivered)
        parked = [_record_failure(delivery, result, run) for delivery, result in failures]
        any_success = any_success or bool(delivered)
        any_failure = any_failure or bool(failures)
        if failures and not delivered and not any(parked):
            break  # the endpoint is down: leave the rest for their retries (a parked one releases its customer)
    endpoint_health_update(endpoint, succeeded=any_success, failed=any_failure)


def endpoint_health_update(endpoint: EventEndpoint, *, succeeded: bool, failed: bool) -> None:
    """Track how long an endpoint has failed; disable it after OUTBOX_ENDPOINT_DISABLE_AFTER_SECONDS and
    tell the superusers."""
    if succeeded:
        EventEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=False).update(failing_since=None)
        return
    if not failed:
        return
    with transaction.atomic():
        locked = EventEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement_timestamp()")
            now = cursor.fetchone()[0]
        if locked.failing_since is None:
            locked.failing_since = now
            locked.save(update_fields=["failing_since"])
            return
        if not locked.enabled:
            return
        if now - locked.failing_since < timedelta(seconds=settings.OUTBOX_ENDPOINT_DISABLE_AFTER_SECONDS):
            return
        locked.enabled = False
        locked.disabled_at = now
        locked.disabled_reason = f"Every delivery failed since {locked.failing_since:%Y-%m-%d %H:%M} UTC."
        locked.save(update_fields=["enabled", "disabled_at", "disabled_reason"])
        audit_record(
            action="event_endpoint.disable",
            obj=locked,
            actor_label="task:outbox_deliver",
            after={"enabled": False},
            reason=locked.disabled_reason,
        )
        recipients = list(
            get_user_model()
            .objects.filter(is_superuser=True, is_active=True)
            .exclude(email="")
            .values_list("email", flat=True)
        )
        url, reason = locked.url, locked.disabled_reason
        if recipients:
            transaction.on_commit(
                lambda: send_mail(
                    subject=f"Event endpoint disabled: {url}",
                    message=f"{url} was disabled. {reason} Its deliveries wait; re-enable it in the admin.",
                    from_email=None,
                    recipient_list=recipients,
                    fail_silently=True,
                )
            )


def outbox_deliver(
    *, sink_factory: Callable[[EventEndpoint], Sink] = sink_for, budget_seconds: float | None = None
) -> DeliveryRun:
    """One pass over every enabled endpoint this worker can lock."""
    run = DeliveryRun()
    budget = settings.OUTBOX_DELIVER_BUDGET_SECONDS if budget_seconds is None else budget_seconds
    lanes = max(1, settings.OUTBOX_DELIVER_LANES)
    with ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="outbox-lane") as pool:
        for endpoint in EventEndpoint.objects.filter(enabled=True).order_by("id"):
            if not _advisory_lock(endpoint.pk):
                continue  # another worker is delivering to it
            sinks = [sink_factory(endpoint) for _ in range(lanes)]
            try:
                run.endpoints.append(endpoint.pk)
                endpoint_deliver(endpoint, sinks=sinks, pool=pool, budget_seconds=budget, run=run)
            finally:
                _advisory_unlock(endpoint.pk)
                for sink in sinks:
                    sink.close()
    return run
