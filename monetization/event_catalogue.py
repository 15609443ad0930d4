"""The event catalogue: every outbound event type, its version and its JSON schema.

Subscription events carry the names subscription developers know from RevenueCat's webhooks
(INITIAL_PURCHASE, RENEWAL, ...); organizations, creators and money have their own. Every event
shares one envelope (:data:`ENVELOPE_SCHEMA`): the customer's external id, the entitlements after
the change, the cause and the audit event id. A breaking change to an event's ``data`` adds a
version; consumers switch on ``(type, version)``.

Which audit actions become which events is declared here too (:func:`event_type_for_audit`): every
change that matters is already audited in its own transaction, so the outbox hears of it at the
same place and cannot be forgotten by a new code path that audits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class EventType:
    name: str
    description: str
    version: int = 1
    group: str = "subscription"
    data: dict | None = None  # JSON schema properties of ``data`` beyond the common ones


_SUBSCRIPTION_DATA = {
    "transition": {"type": ["string", "null"]},
    "before": {"type": ["object", "null"]},
    "after": {"type": ["object", "null"]},
}
_MONEY = {
    "type": "object",
    "properties": {"amount": {"type": "string"}, "currency": {"type": "string"}},
    "required": ["amount", "currency"],
}

_WIN_BACK_DATA = {
    "rule": {"type": "string", "description": "The win-back rule's key."},
    "reason": {"enum": ["lapsed", "cancelled_for_price", "billing_issue"]},
    "platform": {"enum": ["ios", "android", "web"], "description": "Where the lapsed subscription was sold."},
    "plan": {"type": "string"},
    "ended_at": {"type": ["string", "null"], "format": "date-time"},
    "window_ends_at": {"type": "string", "format": "date-time", "description": "Conversion counts until then."},
    "offers": {
        "type": "object",
        "description": "The offer per platform: App Store win-back offer id, Play offer id, Stripe coupon.",
        "properties": {
            "ios": {"type": "object", "properties": {"win_back_offer_id": {"type": "string"}}},
            "android": {"type": "object", "properties": {"offer_id": {"type": "string"}}},
            "web": {"type": "object", "properties": {"coupon_id": {"type": "string"}}},
        },
    },
}
_OWNER = {"type": "object", "properties": {"customer": {"type": "string"}}, "required": ["customer"]}
_TRANSFER_DATA = {
    "action": {"const": "subscription.transfer"},
    "before": {**_OWNER, "description": "The customer it belonged to (external id)."},
    "after": {
        **_OWNER,
        "description": "The customer it belongs to now, and how many rows of each kind moved with it.",
        "properties": {"customer": {"type": "string"}, "moved": {"type": "object"}},
    },
}
_MERGE_DATA = {
    "action": {"const": "customer.merge"},
    "after": {
        "type": "object",
        "required": ["customer", "survivor", "role"],
        "properties": {
            "customer": {"type": "string", "description": "The merged-away customer's external id."},
            "survivor": {"type": "string", "description": "The surviving customer's external id."},
            "role": {"enum": ["merged_away", "survivor"], "description": "Which of the two this event is for."},
            "moved": {"type": "object", "description": "How many rows of each kind moved."},
        },
    },
}

CATALOGUE: dict[str, EventType] = {
    e.name: e
    for e in [
        # What RevenueCat calls them, so a subscription developer needs no glossary.
        EventType("INITIAL_PURCHASE", "A new subscription started (paid or trial).", data=_SUBSCRIPTION_DATA),
        EventType("RENEWAL", "A subscription renewed, converted from trial or recovered.", data=_SUBSCRIPTION_DATA),
        EventType(
            "CANCELLATION", "Auto-renew turned off or cancelled; access until period end.", data=_SUBSCRIPTION_DATA
        ),
        EventType("UNCANCELLATION", "A cancelled subscription renews again.", data=_SUBSCRIPTION_DATA),
        EventType("NON_RENEWING_PURCHASE", "A one-off purchase that does not renew.", data={"payment": _MONEY}),
        EventType("SUBSCRIPTION_PAUSED", "A subscription was paused (no access).", data=_SUBSCRIPTION_DATA),
        EventType("SUBSCRIPTION_RESUMED", "A paused subscription resumed.", data=_SUBSCRIPTION_DATA),
        EventType("EXPIRATION", "A subscription ended; access is gone.", data=_SUBSCRIPTION_DATA),
        EventType("BILLING_ISSUE", "A renewal payment failed (grace, hold or retry).", data=_SUBSCRIPTION_DATA),
        EventType("PRODUCT_CHANGE", "A subscription moved to another plan.", data=_SUBSCRIPTION_DATA),
        EventType(
            "TRANSFER",
            "A subscription (with its payments and refunds) moved to another customer; sent for both customers.",
            data=_TRANSFER_DATA,
        ),
        EventType("SUBSCRIPTION_EXTENDED", "Staff or the store extended the period.", data=_SUBSCRIPTION_DATA),
        EventType("TEMPORARY_ENTITLEMENT_GRANT", "Complimentary access was granted.", data=_SUBSCRIPTION_DATA),
        EventType("GRANT_REVOKED", "A complimentary grant was revoked.", data=_SUBSCRIPTION_DATA),
        EventType("REFUND", "Money went back to the customer.", group="money", data=_SUBSCRIPTION_DATA),
        EventType("REFUND_REVERSED", "A refund was reversed; the money is ours again.", group="money"),
        EventType("PAYMENT_SUCCEEDED", "A payment was captured.", group="money", data={"payment": _MONEY}),
        EventType("PAYMENT_FAILED", "A payment failed.", group="money"),
        EventType("DISPUTE_OPENED", "The customer disputed a payment.", group="money"),
        EventType("DISPUTE_UPDATED", "A dispute moved on (won, lost, closed).", group="money"),
        EventType(
            "CUSTOMER_MERGED",
            "Staff merged two accounts of one person: everything the merged-away customer owned now belongs to the "
            "survivor; sent for both customers.",
            group="customer",
            data=_MERGE_DATA,
        ),
        EventType("ORGANIZATION_VERIFIED", "An organization was verified.", group="organization"),
        EventType("ORGANIZATION_SUSPENDED", "An organization was suspended.", group="organization"),
        EventType("ORGANIZATION_REINSTATED", "A suspended organization was reinstated.", group="organization"),
        EventType("ORGANIZATION_STATE_CHANGED", "Any other organization review move.", group="organization"),
        EventType("ORGANIZATION_SEATS_CHANGED", "Affiliate seats or the seat limit changed.", group="organization"),
        EventType("CREATOR_ELIGIBILITY_CHANGED", "A creator's revenue-share state changed.", group="creator"),
        EventType("CREATOR_CYCLE_CHANGED", "A revenue-share cycle moved on.", group="creator"),
        EventType(
            "CREATOR_PAYOUT_CHANGED", "A creator payout was held, released, failed or reversed.", group="creator"
        ),
        EventType(
            "WIN_BACK_TARGETED",
            "A win-back rule picked a lapsed or churned customer: the messaging service sends the offer of the "
            "platform they left (once per rule per window).",
            group="growth",
            data=_WIN_BACK_DATA,
        ),
    ]
}

ENVELOPE_SCHEMA: dict[str, Any] = {
    "$schema": SCHEMA_DIALECT,
    "title": "Back-office event",
    "type": "object",
    "required": ["id", "type", "version", "sequence", "occurred_at", "customer", "entitlements", "cause"],
    "properties": {
        "id": {"type": "string", "format": "uuid", "description": "Stable: the same on every redelivery."},
        "type": {"type": "string", "enum": sorted(CATALOGUE)},
        "version": {"type": "integer", "minimum": 1},
        "sequence": {"type": "integer", "description": "Outbox position; increases per customer in order."},
        "occurred_at": {"type": "string", "format": "date-time"},
        "customer": {
            "type": ["object", "null"],
            "properties": {"external_id": {"type": "string"}},
            "required": ["external_id"],
        },
        "subject": {
            "type": "object",
            "properties": {"type": {"type": "string"}, "id": {"type": "string"}},
        },
        "entitlements": {
            "type": "array",
            "description": (
                "The customer's active entitlements as of the event's first delivery (at or after its commit, "
                "so they may already show a later change of the same customer), kept for every redelivery."
            ),
            "items": {
                "type": "object",
                "required": ["key", "source", "source_id", "expires_at"],
                "properties": {
                    "key": {"type": "string"},
                    "source": {"type": "string"},
                    "source_id": {"type": "string"},
                    "expires_at": {"type": ["string", "null"], "format": "date-time"},
                },
            },
        },
        "cause": {
            "type": "object",
            "required": ["kind"],
            "properties": {
                "kind": {"enum": ["provider_event", "staff_action", "schedule", "client_app"]},
                "label": {"type": "string", "description": "e.g. stripe:evt_123, task:lifecycle_sweep"},
                "actor": {"type": ["string", "null"], "description": "The staff user, for a staff action."},
                "reason": {"type": "string"},
            },
        },
        "audit_event_id": {"type": ["integer", "null"]},
        "data": {"type": "object"},
    },
}


def event_schema(name: str) -> dict[str, Any]:
    """The JSON schema of one event type at its current version."""
    event = CATALOGUE[name]
    schema = {
        **ENVELOPE_SCHEMA,
        "$id": f"urn:backoffice:event:{name}:v{event.version}",
        "title": name,
        "description": event.description,
    }
    schema["properties"] = {
        **ENVELOPE_SCHEMA["properties"],
        "type": {"const": name},
        "version": {"const": event.version},
        "data": {"type": "object", "properties": dict(event.data or {})},
    }
    return schema


def catalogue_document() -> dict[str, Any]:
    """The whole catalogue as published with the API docs."""
    return {
        "envelope": ENVELOPE_SCHEMA,
        "events": {
            name: {"version": e.version, "group": e.group, "description": e.description, "schema": event_schema(name)}
            for name, e in CATALOGUE.items()
        },
    }


# --- from audit actions to events ---------------------------------------------------------------

# Subscription transitions (the audit action is ``subscription.<transition>``) and their events.
_SUBSCRIPTION_TRANSITIONS = {
    "create": "INITIAL_PURCHASE",
    "cancel": "CANCELLATION",
    "cancel_now": "EXPIRATION",
    "reinstate": "UNCANCELLATION",
    "pause": "SUBSCRIPTION_PAUSED",
    "resume": "SUBSCRIPTION_RESUMED",
    "expire": "EXPIRATION",
    "revoke": "EXPIRATION",
    "enter_grace_period": "BILLING_ISSUE",
    "put_on_hold": "BILLING_ISSUE",
    "payment_failed": "BILLING_ISSUE",
    "payment_recovered": "RENEWAL",
    "extend": "SUBSCRIPTION_EXTENDED",
    "change_plan": "PRODUCT_CHANGE",
    "transfer": "TRANSFER",
    "refund_reported": "REFUND",
    "dispute_reported": "DISPUTE_OPENED",
}
_FIXED = {
    "grant.create": "TEMPORARY_ENTITLEMENT_GRANT",
    "grant.revoke": "GRANT_REVOKED",
    "customer.merge": "CUSTOMER_MERGED",
    "refund.succeed": "REFUND",
    "refund.record_from_provider": "REFUND",
    "refund.reverse": "REFUND_REVERSED",
    "payment.failed": "PAYMENT_FAILED",
    "dispute.record_from_provider": "DISPUTE_OPENED",
    "dispute.update_from_provider": "DISPUTE_UPDATED",
    "organization.verify": "ORGANIZATION_VERIFIED",
    "organization.suspend": "ORGANIZATION_SUSPENDED",
    "organization.reinstate": "ORGANIZATION_REINSTATED",
    "organization.set_seat_limit": "ORGANIZATION_SEATS_CHANGED",
    "affiliation.invite": "ORGANIZATION_SEATS_CHANGED",
    "affiliation.accept": "ORGANIZATION_SEATS_CHANGED",
    "affiliation.remove": "ORGANIZATION_SEATS_CHANGED",
    "affiliation.expire": "ORGANIZATION_SEATS_CHANGED",
    "payment.succeed": "PAYMENT_SUCCEEDED",
    "win_back.target": "WIN_BACK_TARGETED",
}
# Actions whose audit ``after`` is the event's ``data`` as the catalogue declares it (no before/after pair).
_DATA_IS_AFTER = {"payment.succeed", "win_back.target"}
_NOT_EVENTS = {"cycle.dry_run", "cycle.compute_requested", "cycle.pay_requested", "organization.invoice_download"}


def _state(snapshot: Any) -> Any:
    return snapshot.get("state") if isinstance(snapshot, dict) else None


def _subscription_update(before: dict | None, after: dict | None) -> str | None:
    """A change with no transition of its own (a provider sync moving the fields): what it means."""
    before, after = before or {}, after or {}
    if before.get("auto_renew") is True and after.get("auto_renew") is False:
        return "CANCELLATION"
    if before.get("auto_renew") is False and after.get("auto_renew") is True:
        return "UNCANCELLATION"
    if after.get("current_period_end") and after.get("current_period_end") != before.get("current_period_end"):
        return "RENEWAL"
    return None


def event_data_for_audit(action: str, before: Any = None, after: Any = None) -> dict[str, Any]:
    """The ``data`` of the event an audited action publishes."""
    if action in _DATA_IS_AFTER:
        return dict(after or {})
    return {"action": action, "before": before, "after": after}


def event_type_for_audit(action: str, before: Any = None, after: Any = None) -> str | None:
    """The catalogue event an audited action publishes, or None when it publishes none."""
    if action in _FIXED:
        return _FIXED[action]
    if action in _NOT_EVENTS:
        return None
    domain, _, name = action.partition(".")
    if domain == "subscription":
        if name in _SUBSCRIPTION_TRANSITIONS:
            return _SUBSCRIPTION_TRANSITIONS[name]
        source, target = _state(before), _state(after)
        if name == "activate" and source != target:
            # From a trial: conversion; from grace, hold or retry: recovered. Both renew access.
            return "INITIAL_PURCHASE" if source in (None, "pending") else "RENEWAL"
        if name in ("update", "period_open", "renew"):
            return _subscription_update(before, after)
        return None
    if domain == "organization" and _state(before) != _state(after) and _state(after):
        return "ORGANIZATION_STATE_CHANGED"
    if domain == "creator" and _state(before) != _state(after):
        return "CREATOR_ELIGIBILITY_CHANGED"
    if domain == "creator" and name in ("activate", "deactivate", "mark_eligible", "mark_ineligible", "suspend"):
        return "CREATOR_ELIGIBILITY_CHANGED"
    if domain == "cycle":
        return "CREATOR_CYCLE_CHANGED"
    if domain == "payout":
        return "CREATOR_PAYOUT_CHANGED"
    return None
