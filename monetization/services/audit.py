"""The audit trail: one writer for every staff action and state change."""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

from django.db import models
from djmoney.money import Money

from monetization import clock
from monetization.bulk import bulk_insert_rows
from monetization.middleware import current_request_id
from monetization.models import AuditEvent
from monetization.services.permissions import System

# Values JSON takes as they are, by exact type (a str or int subclass, such as a choices member, takes
# the checks below): most of an audit snapshot's values, each walked once by snapshot() and again
# by audit_event_build() on the worker's hot path.
_JSON_LEAVES = frozenset({str, int, float, bool, type(None)})


def _json_safe(value: Any) -> Any:
    if type(value) in _JSON_LEAVES:
        return value
    if isinstance(value, Money):
        return {"amount": str(value.amount), "currency": str(value.currency)}
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_json_safe(v) for v in value]
    return value


def snapshot(obj: models.Model, fields: list[str]) -> dict[str, Any]:
    """The named fields of ``obj`` as JSON-safe values, for before/after."""
    return {name: _json_safe(getattr(obj, name)) for name in fields}


def audit_event_build(
    *,
    action: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str | int = "",
    actor=None,
    actor_kind: str | None = None,
    actor_label: str = "",
    customer=None,
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
) -> AuditEvent:
    """One audit event, unsaved: ``actor`` is a staff user or a :class:`System` cause; otherwise say who
    with actor_kind/actor_label."""
    if isinstance(actor, System):
        actor_kind = actor_kind or AuditEvent.ActorKind.SYSTEM
        actor_label = actor_label or actor.label
        actor = None
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or obj.pk
    if actor_kind is None:
        actor_kind = AuditEvent.ActorKind.STAFF if actor is not None else AuditEvent.ActorKind.SYSTEM
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    return AuditEvent(
        occurred_at=clock.now(),
        actor=actor,
        actor_kind=actor_kind,
        actor_label=actor_label or (actor.get_username() if actor is not None else ""),
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        customer=customer,
        before=_json_safe(before) if before is not None else None,
        after=_json_safe(after) if after is not None else None,
        reason=reason,
        request_id=current_request_id(),
    )


def audit_event_write(event: AuditEvent) -> AuditEvent:
    # Nothing else for the outbox: this row is the event (the relay publishes it once it is committed).
    event.save(force_insert=True)
    return event


def audit_events_write(events: list[AuditEvent]) -> list[AuditEvent]:
    """Append many built events in one INSERT (bulk provider sync)."""
    return list(bulk_insert_rows(events)) if events else []


def audit_record(**fields) -> AuditEvent:
    """Append one audit event (see :func:`audit_event_build` for the fields)."""
    return audit_event_write(audit_event_build(**fields))
