"""App Store billing rules as of each date, the defaults settings may override (SUBSCRIPTION_PLATFORM_RULES).

Field meanings: subscriptions.platform_rules.
"""

# Grace is configured per app in App Store Connect: 3, 16 or 28 days (6 for weekly plans).
GRACE_OPTIONS = (0, 3, 16, 28)
WEEKLY_GRACE_DAYS = 6

# What a refund made at the App Store (REFUND; Apple makes every App Store refund) does to access:
# Apple revokes the transaction it refunds, in full or prorated (revocationDate), so access ends now
# either way; REFUND_REVERSED gives it back (the transaction no longer revoked). Developers cannot
# refund App Store purchases, so there is no refund of ours to echo.
REFUND_ACCESS = {"full": "revoke", "partial": "revoke"}

PLATFORM_RULES: list[dict] = [
    {
        "since": "2000-01-01",
        "grace_days": 16,
        "weekly_grace_days": WEEKLY_GRACE_DAYS,
        "billing_retry_days": 60,
        "renewal_leeway_minutes": 60,  # Apple renews up to a day early; allow for late delivery
    },
]


# What Apple keeps of each sale, as of each date (monetization.commission composes these with
# STORE_COMMISSION_RULES): 30%; 15% for a subscriber past one year of paid service (since the
# 2016-06-13 change) and for every sale of a developer in the Small Business Program (from its
# 2021-01-01 start, when enrolled: set ``small_business_program`` from the enrolment date).
# Apple is the merchant of record: prices include the tax it collects and remits, and the
# commission is taken from the price net of that tax.
COMMISSION_RULES: list[dict] = [
    {"since": "2000-01-01", "rate": "0.30", "reduced_rate": "0.30", "small_business_program": False},
    {"since": "2016-06-13", "reduced_rate": "0.15", "reduced_after_first_year": True},
]
REMITS_TAX = True


def rule_problem(rule) -> str:
    """Why a rule cannot be the App Store's, or "" (``rule``: a subscriptions.platform_rules.PlatformRule)."""
    if rule.grace_days not in GRACE_OPTIONS:
        return f"App Store grace must be one of {GRACE_OPTIONS} days"
    return ""


# Where a customer manages (cancels, changes) an App Store subscription: only the customer can, in
# Apple's own subscriptions page (apps can also open it with StoreKit's showManageSubscriptions).
MANAGE_SUBSCRIPTION_URL = "https://apps.apple.com/account/subscriptions"


def manage_subscription_url(store_product_id: str, package_name: str = "") -> str:
    return MANAGE_SUBSCRIPTION_URL
