"""The outbox relay: the audit row is the event.

A change writes its audit row in its own transaction and nothing else for the outbox (the audit writer, the
set-based sweep, a payment capture, a win-back run). :func:`outbox_relay` reads the audit rows committed
since it last ran, in commit-safe order, and for each row the catalogue publishes (``event_type_for_audit``)
makes the event, with an id derived from the audit row, and its deliveries to the endpoints that want it.
Delivery happens later, from the deliveries (monetization.outbox.delivery), never from inside a change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction

from monetization import clock
from monetization.event_catalogue import CATALOGUE, event_data_for_audit, event_type_for_audit
from monetization.models import AuditEvent, OutboxRelay
from monetization.models.outbox import event_id_for_audit
from monetization.registry import Registry
from monetization.selectors_outbox import commit_horizon

# What the customer may use after the change: subscriptions registers its resolver
# (``fn(customer_id) -> [entitlement dicts]``) from AppConfig.ready(); the core knows no product.
EntitlementsResolver = Callable[[int], list[dict]]
outbox_entitlements: Registry[EntitlementsResolver] = Registry("outbox entitlements resolver")

_CAUSE_KINDS = {
    AuditEvent.ActorKind.PROVIDER: "provider_event",
    AuditEvent.ActorKind.STAFF: "staff_action",
    AuditEvent.ActorKind.SYSTEM: "schedule",
    AuditEvent.ActorKind.CLIENT: "client_app",
}


def _cause(actor_kind: str, actor_label: str, reason: str) -> dict[str, Any]:
    return {
        "kind": _CAUSE_KINDS.get(actor_kind, "schedule"),
        "label": actor_label,
        "actor": actor_label if actor_kind == AuditEvent.ActorKind.STAFF else None,
        "reason": reason,
    }


# Audit rows after the relay's place whose transactions are final (below the commit horizon), in the order
# they committed in: a customer's events keep the order of their changes.
_AUDIT_AFTER_SQL = """
    SELECT a.id, a.txid::text, a.occurred_at, a.actor_kind, a.actor_label, a.action, a.object_type, a.object_id,
           a.customer_id, a.before, a.after, a.reason
    FROM monetization_auditevent a
    WHERE (a.txid, a.id) > (%(txid)s::text::xid8, %(id)s) AND a.txid < %(horizon)s::text::xid8
    ORDER BY a.txid, a.id
    LIMIT %(limit)s
"""

# The events of a batch of audit rows and their deliveries, in one statement (outbox ids in the rows' order).
# A row relayed twice makes the same event id: the unique index drops the copy, and its deliveries with it.
# Entitlements: at first delivery.
_PUBLISH_SQL = """
    WITH r AS (
        SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(
            ord int, event_id uuid, type text, version int, occurred_at timestamptz, customer_id bigint,
            object_type text, object_id text, cause jsonb, audit_event_id bigint, data jsonb)
    ), ev AS (
        INSERT INTO monetization_outboxevent
            (event_id, type, version, occurred_at, customer_id, customer_external_id, object_type, object_id,
             cause, audit_event_id, data, entitlements)
        SELECT r.event_id, r.type, r.version, r.occurred_at, r.customer_id, COALESCE(c.external_id, ''),
               r.object_type, r.object_id, r.cause, r.audit_event_id, r.data,
               CASE WHEN r.customer_id IS NULL THEN '[]'::jsonb END
        FROM r LEFT JOIN monetization_customer c ON c.id = r.customer_id
        ORDER BY r.ord
        ON CONFLICT (event_id) DO NOTHING
        RETURNING id, customer_id, type
    )
    INSERT INTO monetization_eventdelivery
        (endpoint_id, event_id, customer_id, status, attempts, next_attempt_at, last_error, created_at)
    SELECT e.id, ev.id, ev.customer_id, 'pending', 0, now(), '', now()
    FROM ev JOIN monetization_eventendpoint e
      ON e.enabled AND (e.event_types = '[]'::jsonb OR e.event_types @> jsonb_build_array(ev.type))
"""


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _events_of(rows: list[tuple]) -> list[dict[str, Any]]:
    events = []
    for (
        audit_id,
        _txid,
        occurred_at,
        actor_kind,
        actor_label,
        action,
        object_type,
        object_id,
        customer_id,
        before,
        after,
        reason,
    ) in rows:
        # Django leaves jsonb as text on a raw cursor (its JSONField decodes it, not the driver).
        before, after = _json(before), _json(after)
        event_type = event_type_for_audit(action, before, after)
        if event_type is None:
            continue
        events.append(
            {
                "ord": len(events),
                "event_id": str(event_id_for_audit(audit_id)),
                "type": event_type,
                "version": CATALOGUE[event_type].version,
                "occurred_at": occurred_at.isoformat(),
                "customer_id": customer_id,
                "object_type": object_type,
                "object_id": object_id,
                "cause": _cause(actor_kind, actor_label, reason),
                "audit_event_id": audit_id,
                "data": event_data_for_audit(action, before, after),
            }
        )
    return events


def outbox_relay(*, batch: int | None = None) -> int:
    """Publish the events of the audit rows committed since the last run; how many events were made.

    Returns at once when another relay is running. Each batch is one transaction: its events, their
    deliveries and the relay's new place commit together, so a relay killed half-way leaves the place where
    it was and the next run makes the same events.
    """
    batch = batch or settings.OUTBOX_RELAY_BATCH
    published = 0
    OutboxRelay.objects.bulk_create([OutboxRelay(pk=1)], ignore_conflicts=True)
    while True:
        with transaction.atomic():
            # One relay at a time: another run holding the place is already publishing, this one moves on.
            relay = OutboxRelay.objects.select_for_update(skip_locked=True).filter(pk=1).first()
            if relay is None:
                return published
            horizon = commit_horizon()
            with connection.cursor() as cursor:
                cursor.execute(
                    _AUDIT_AFTER_SQL,
                    {"txid": str(relay.txid), "id": relay.audit_id, "horizon": str(horizon), "limit": batch},
                )
                rows = cursor.fetchall()
                if not rows:
                    return published
                events = _events_of(rows)
                if events:
                    cursor.execute(_PUBLISH_SQL, {"rows": json.dumps(events, cls=DjangoJSONEncoder)})
            relay.audit_id, relay.txid = rows[-1][0], int(rows[-1][1])
            relay.relayed_at = clock.now()
            relay.save(update_fields=["audit_id", "txid", "relayed_at"])
        published += len(events)
        if len(rows) < batch:
            return published
