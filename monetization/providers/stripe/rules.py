"""Stripe's billing rules as of each date, the defaults settings may override (SUBSCRIPTION_PLATFORM_RULES).

Field meanings: subscriptions.platform_rules.
"""

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
