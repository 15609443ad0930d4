"""What subscriptions plugs into the outbox: the customer's entitlements after a change.

Every change publishes through its audit row (the outbox relay, monetization.services.outbox), the
lifecycle sweep's set-based moves included.
"""

from __future__ import annotations

from subscriptions.entitlements import resolve_entitlements


def customer_entitlements(customer_id: int) -> list[dict]:
    return [e.as_dict() for e in resolve_entitlements(customer_id)]
