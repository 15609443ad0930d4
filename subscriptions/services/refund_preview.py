"""The subscription's part of a refund preview: the access the refund ends (registered in apps.ready)."""

from __future__ import annotations

from monetization.services.refund_preview import RefundIntent
from subscriptions.entitlements import entitlements_given_by
from subscriptions.services.payments import payment_subscription, refund_access_change

# When access ends after each transition the refund hook may take.
ACCESS_ENDS = {"revoke": "now", "cancel": "period_end", "": "unchanged"}


def subscription_refund_preview(intent: RefundIntent) -> dict | None:
    sub, transition = refund_access_change(intent.payment.pk, intent.revoke_access)
    sub = sub or payment_subscription(intent.payment.pk)
    if sub is None:
        return None
    given = (
        entitlements_given_by(sub.customer_id, source="subscription", source_id=sub.pk, at=intent.at)
        if transition
        else {"ends": [], "kept": []}
    )
    ends_at = {"revoke": intent.at, "cancel": sub.current_period_end}.get(transition)
    return {
        "subscription": sub.pk,
        "customer": sub.customer.external_id,
        "plan": sub.plan.code,
        "platform": sub.platform,
        "state": sub.state,
        "transition": transition,
        "access_ends": ACCESS_ENDS[transition],
        "access_ends_at": ends_at.isoformat() if ends_at else None,
        "entitlements_ending": given["ends"],
        "entitlements_kept": given["kept"],
    }
