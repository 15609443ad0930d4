"""Stripe's billing rules as of each date, the defaults settings may override (SUBSCRIPTION_PLATFORM_RULES).

Field meanings: subscriptions.platform_rules.
"""

# What Stripe's money events do to access. Stripe itself never ends a subscription on a refund or
# a dispute: the subscription runs until it is canceled, and its own events say so. We follow that,
# so an event about money never undoes what a person decided about access:
# - refund_ends_access: a refund (made by Support, whose "revoke access" choice is applied when it
#   is booked, or in Stripe's dashboard) books the money and leaves the subscription alone; the echo
#   of our own refund is recognised by its re_ id and changes nothing.
# - dispute_ends_access: a dispute, even lost, books the money and queues it for Finance (by
#   evidence due date); ending access for a lost chargeback is a staff action, not automatic.
ACCESS_RULES: dict[str, bool] = {
    "refund_ends_access": False,
    "dispute_ends_access": False,
}

PLATFORM_RULES: list[dict] = [
    {
        "since": "2000-01-01",
        "grace_days": 0,
        "hold_days": 14,  # Smart Retries window: past_due, then canceled
        # Smart Retries after the first failed charge: 8 tries over 2 weeks from the period end.
        "dunning_offsets_hours": (24, 72, 120, 168, 216, 264, 312, 336),
        "incomplete_hours": 23,
        "renewal_leeway_minutes": 120,  # invoice finalized ~1 h after the period end, then charged
    },
]


def rule_problem(rule) -> str:
    """Why a rule cannot be Stripe's, or "" (any grace and retry window can be configured)."""
    return ""
