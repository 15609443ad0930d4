"""Google Play billing rules as of each date, the defaults settings may override (SUBSCRIPTION_PLATFORM_RULES).

Field meanings: subscriptions.platform_rules.
"""

GRACE_OPTIONS = (0, 3, 7, 14, 30)

PLATFORM_RULES: list[dict] = [
    {"since": "2000-01-01", "grace_days": 7, "hold_days": 30, "renewal_leeway_minutes": 60},
    # Since 2025-12-01 the account hold defaults to 60 days minus the grace period.
    {"since": "2025-12-01", "hold_days": None},
]


def rule_problem(rule) -> str:
    """Why a rule cannot be Google Play's, or "" (``rule``: a subscriptions.platform_rules.PlatformRule)."""
    if rule.grace_days not in GRACE_OPTIONS:
        return f"Google Play grace must be one of {GRACE_OPTIONS} days"
    total = rule.grace_days + rule.hold().days
    if not 30 <= total <= 60 or not 0 <= rule.hold().days <= 60:
        return "Google Play needs grace + account hold between 30 and 60 days"
    return ""
