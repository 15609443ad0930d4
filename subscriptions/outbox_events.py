"""What subscriptions plugs into the outbox: the customer's entitlements after a change, and the
sweep's events in bulk.

Row-by-row changes publish through their audit events (monetization.services.outbox); the
lifecycle sweep writes its history in SQL, so its chunk's events are written here, by a state hook
that runs in the chunk's transaction, in one statement.
"""

from __future__ import annotations

from monetization.services.outbox import outbox_events_write_from_audit_sql
from subscriptions.entitlements import resolve_entitlements
from subscriptions.models import Subscription
from subscriptions.services.lifecycle import StateMoves


def customer_entitlements(customer_id: int) -> list[dict]:
    return [e.as_dict() for e in resolve_entitlements(customer_id)]


def sweep_events_write(moves: StateMoves) -> None:
    if moves.subscriptions or moves.transition is None:
        return  # a row-by-row change: its audit event has published it already
    outbox_events_write_from_audit_sql(
        object_type=Subscription._meta.label_lower,
        object_ids=moves.subscription_ids,
        action=f"subscription.{moves.transition}",
        actor_label=moves.cause.label,
    )
