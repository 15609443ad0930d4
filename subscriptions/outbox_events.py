"""What subscriptions plugs into the outbox: the customer's entitlements after a change.

Row-by-row changes publish through their audit events (monetization.services.outbox); the
lifecycle sweep writes its chunk's events in the statement that moves the chunk
(subscriptions.services.sweep).
"""

from __future__ import annotations

from subscriptions.entitlements import resolve_entitlements


def customer_entitlements(customer_id: int) -> list[dict]:
    return [e.as_dict() for e in resolve_entitlements(customer_id)]
