"""The transactional outbox: the one writer of outbound events.

:func:`outbox_event_write` appends an event in the caller's transaction, so the event commits
exactly when the change does and a rollback takes both back. The audit writer calls
:func:`outbox_events_from_audit` for every audit event it appends (the catalogue says which actions
publish what), and the set-based sweep writes its chunk's events in the statement that moves the
chunk (:func:`outbox_events_from_audit_sql`). Delivery happens later, from the table
(monetization.outbox.delivery), never from inside the change's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from monetization import clock
from monetization.event_catalogue import CATALOGUE, event_type_for_audit
from monetization.models import AuditEvent, Customer, OutboxEvent
from monetization.models.outbox import event_id_new
from monetization.registry import Registry

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


def cause_of_audit(audit: AuditEvent) -> dict[str, Any]:
    return {
        "kind": _CAUSE_KINDS.get(audit.actor_kind, "schedule"),
        "label": audit.actor_label,
        "actor": audit.actor_label if audit.actor_kind == AuditEvent.ActorKind.STAFF else None,
        "reason": audit.reason,
    }


def outbox_event_write(
    *,
    type: str,
    customer: Customer | None = None,
    customer_id: int | None = None,
    customer_external_id: str = "",
    object_type: str = "",
    object_id: str | int = "",
    cause: dict[str, Any],
    audit_event_id: int | None = None,
    data: dict[str, Any] | None = None,
    occurred_at=None,
) -> OutboxEvent:
    """Append one event in the caller's transaction. The customer's entitlements are resolved when the
    event is first delivered or served (``entitlements_fill``), then kept: resolving them here cost
    every change about three queries in its own transaction (a webhook went from 9 statements to 13)."""
    if type not in CATALOGUE:
        raise ImproperlyConfigured(f"{type!r} is not in the event catalogue.")
    if customer is not None:
        customer_id, customer_external_id = customer.pk, customer.external_id
    elif customer_id is not None and not customer_external_id:
        customer_external_id = Customer.objects.values_list("external_id", flat=True).get(pk=customer_id)
    event = OutboxEvent(
        type=type,
        version=CATALOGUE[type].version,
        customer_id=customer_id,
        customer_external_id=customer_external_id,
        object_type=object_type,
        object_id=str(object_id),
        cause=cause,
        audit_event_id=audit_event_id,
        data=data or {},
        entitlements=None if customer_id is not None else [],
    )
    if occurred_at is not None:
        event.occurred_at = occurred_at
    with connection.cursor() as cursor:
        cursor.execute(
            _WRITE_SQL,
            {
                "event_id": event.event_id,
                "type": event.type,
                "version": event.version,
                "occurred_at": event.occurred_at,
                "customer": customer_id,
                "external_id": customer_external_id,
                "object_type": event.object_type,
                "object_id": event.object_id,
                "cause": json.dumps(cause),
                "audit": audit_event_id,
                "data": json.dumps(event.data),
                "entitlements": None if event.entitlements is None else json.dumps(event.entitlements),
            },
        )
        event.pk = cursor.fetchone()[0]
    event._state.adding = False
    return event


# Deliveries are written with the event, in its transaction: a cursor over the outbox would skip
# an event whose transaction commits after a later id's (ids are taken before commit).
_ENDPOINTS_FOR_TYPE = (
    "e.enabled AND (e.event_types = '[]'::jsonb OR e.event_types @> jsonb_build_array(%(type)s::text))"
)
# One round trip: the event and its deliveries in one statement.
_WRITE_SQL = f"""
    WITH ev AS (
        INSERT INTO monetization_outboxevent
            (event_id, type, version, occurred_at, customer_id, customer_external_id, object_type, object_id,
             cause, audit_event_id, data, entitlements)
        VALUES (%(event_id)s, %(type)s, %(version)s, %(occurred_at)s, %(customer)s, %(external_id)s,
                %(object_type)s, %(object_id)s, %(cause)s::jsonb, %(audit)s, %(data)s::jsonb,
                %(entitlements)s::jsonb)
        RETURNING id
    ), deliveries AS (
        INSERT INTO monetization_eventdelivery
            (endpoint_id, event_id, customer_id, status, attempts, next_attempt_at, last_error, created_at)
        SELECT e.id, ev.id, %(customer)s, 'pending', 0, now(), '', now()
        FROM ev CROSS JOIN monetization_eventendpoint e WHERE {_ENDPOINTS_FOR_TYPE}
    )
    SELECT id FROM ev
"""  # noqa: S608


def outbox_events_from_audit(audits: Sequence[AuditEvent]) -> None:
    """The events the just-written audit events publish (same transaction), in one statement however
    many: a batch of webhooks costs one outbox write, not one per event."""
    rows = []
    for audit in audits:
        event_type = event_type_for_audit(audit.action, audit.before, audit.after)
        if event_type is None:
            continue
        rows.append(
            {
                "ord": len(rows),
                "event_id": str(event_id_new()),
                "type": event_type,
                "version": CATALOGUE[event_type].version,
                "occurred_at": audit.occurred_at.isoformat(),
                "customer_id": audit.customer_id,
                "object_type": audit.object_type,
                "object_id": str(audit.object_id),
                "cause": cause_of_audit(audit),
                "audit_event_id": audit.pk,
                "data": {"action": audit.action, "before": audit.before, "after": audit.after},
            }
        )
    if rows:
        with connection.cursor() as cursor:
            cursor.execute(_MANY_SQL, {"rows": json.dumps(rows, cls=DjangoJSONEncoder)})


def outbox_events_write_many(*, type: str, events: Sequence[dict[str, Any]], cause: dict[str, Any]) -> None:
    """Append many events of one type with their deliveries, in one statement (a set-based job's events, in
    its transaction). Each event: ``customer_id``, ``object_type``, ``object_id``, ``data``, ``occurred_at``, and
    its own ``cause`` where it is not the one given for all."""
    if type not in CATALOGUE:
        raise ImproperlyConfigured(f"{type!r} is not in the event catalogue.")
    rows = [
        {
            "ord": index,
            "event_id": str(event_id_new()),
            "type": type,
            "version": CATALOGUE[type].version,
            "occurred_at": event["occurred_at"],
            "customer_id": event["customer_id"],
            "object_type": event["object_type"],
            "object_id": str(event["object_id"]),
            "cause": event.get("cause", cause),
            "audit_event_id": None,
            "data": event["data"],
        }
        for index, event in enumerate(events)
    ]
    if rows:
        with connection.cursor() as cursor:
            cursor.execute(_MANY_SQL, {"rows": json.dumps(rows, cls=DjangoJSONEncoder)})


# The events of several audit rows and their deliveries, in one statement (ids in the rows' order,
# so a customer's events keep the order their changes were made in). Entitlements: at first delivery.
_MANY_SQL = """
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
        RETURNING id, customer_id, type
    )
    INSERT INTO monetization_eventdelivery
        (endpoint_id, event_id, customer_id, status, attempts, next_attempt_at, last_error, created_at)
    SELECT e.id, ev.id, ev.customer_id, 'pending', 0, now(), '', now()
    FROM ev JOIN monetization_eventendpoint e
      ON e.enabled AND (e.event_types = '[]'::jsonb OR e.event_types @> jsonb_build_array(ev.type))
"""


def outbox_events_from_audit_sql(audit: str, *, event_type: str | None, param: Callable[[Any], str]) -> str:
    """For set-based moves that write their audit rows in SQL: common table expressions that publish one
    event per row of the CTE ``audit`` (an ``INSERT INTO monetization_auditevent ... RETURNING *``) with
    its deliveries, so the move, its history and its events are one statement (re-reading the history
    afterwards cost the sweep a second pass over the audit table). ``param(value)`` adds a query
    parameter and returns its placeholder. Empty when the move publishes nothing. Entitlements are left
    for the first delivery to resolve (per-customer resolution would cost the sweep more than the move).
    Begins with a comma: it follows the caller's last CTE."""
    if event_type is None:
        return ""
    type_ = param(event_type)
    return f"""
        , {audit}_events AS (
            INSERT INTO monetization_outboxevent
                (event_id, type, version, occurred_at, customer_id, customer_external_id, object_type, object_id,
                 cause, audit_event_id, data, entitlements)
            SELECT monetization_event_id_new(), {type_}, {param(CATALOGUE[event_type].version)}, a.occurred_at,
                   a.customer_id,
                   -- one primary-key lookup per row (a join would hash the whole customer table)
                   COALESCE((SELECT c.external_id FROM monetization_customer c WHERE c.id = a.customer_id), ''),
                   a.object_type, a.object_id,
                   jsonb_build_object('kind', {param(_CAUSE_KINDS[AuditEvent.ActorKind.SYSTEM])}::text,
                                      'label', a.actor_label, 'actor', NULL, 'reason', a.reason),
                   a.id, jsonb_build_object('action', a.action, 'before', a.before, 'after', a.after), NULL
            FROM {audit} a
            ORDER BY a.id
            RETURNING id, customer_id
        ), {audit}_deliveries AS (
            INSERT INTO monetization_eventdelivery
                (endpoint_id, event_id, customer_id, status, attempts, next_attempt_at, last_error, created_at)
            SELECT e.id, ev.id, ev.customer_id, 'pending', 0, now(), '', now()
            FROM {audit}_events ev CROSS JOIN monetization_eventendpoint e
            WHERE e.enabled AND (e.event_types = '[]'::jsonb OR e.event_types @> jsonb_build_array({type_}::text))
        )"""  # noqa: S608


def outbox_payments_succeeded(payments: Sequence) -> None:
    """Captured payments, one event each in one statement (payments write no audit event: the provider's
    event is their record)."""
    now = clock.now()
    outbox_events_write_many(
        type="PAYMENT_SUCCEEDED",
        events=[
            {
                "customer_id": payment.customer_id,
                "object_type": payment._meta.label_lower,
                "object_id": payment.pk,
                "occurred_at": now,
                "cause": {
                    "kind": "provider_event",
                    "label": f"{payment.provider}:{payment.provider_reference}",
                    "actor": None,
                },
                "data": {
                    "kind": payment.kind,
                    "payment": {"amount": str(payment.amount.amount), "currency": str(payment.amount.currency)},
                },
            }
            for payment in payments
        ],
        cause={},
    )
