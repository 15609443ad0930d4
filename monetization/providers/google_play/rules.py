"""Google Play billing rules as of each date, the defaults settings may override (SUBSCRIPTION_PLATFORM_RULES).

Field meanings: subscriptions.platform_rules.
"""

from urllib.parse import urlencode

GRACE_OPTIONS = (0, 3, 7, 14, 30)

# What a refund made at Google Play (a voided purchase: refunded in the Play Console, by Google,
# or charged back) does to access, by how much of the order it gave back. Google voids the
# purchase and asks developers to take back what it bought: a full refund ends access now; a
# partial one keeps it. A refund we made ourselves keeps the access choice staff made with it
# (its echo books nothing new, so changes nothing).
REFUND_ACCESS = {"full": "revoke", "partial": "keep"}

PLATFORM_RULES: list[dict] = [
    {"since": "2000-01-01", "grace_days": 7, "hold_days": 30, "renewal_leeway_minutes": 60},
    # Since 2025-12-01 the account hold defaults to 60 days minus the grace period.
    {"since": "2025-12-01", "hold_days": None},
]


# What Google keeps of each subscription sale, as of each date (monetization.commission composes
# these with STORE_COMMISSION_RULES): 30%, 15% past a subscriber's first paid year, then 15% on
# every subscription from 2022-01-01. Google is the merchant of record: it collects and remits the
# tax included in the price, and takes its fee from the price net of tax.
COMMISSION_RULES: list[dict] = [
    {"since": "2000-01-01", "rate": "0.30", "reduced_rate": "0.15", "reduced_after_first_year": True},
    {"since": "2022-01-01", "rate": "0.15"},
]
REMITS_TAX = True


def rule_problem(rule) -> str:
    """Why a rule cannot be Google Play's, or "" (``rule``: a subscriptions.platform_rules.PlatformRule)."""
    if rule.grace_days not in GRACE_OPTIONS:
        return f"Google Play grace must be one of {GRACE_OPTIONS} days"
    total = rule.grace_days + rule.hold().days
    if not 30 <= total <= 60 or not 0 <= rule.hold().days <= 60:
        return "Google Play needs grace + account hold between 30 and 60 days"
    return ""


# Play's deep link to one subscription's page in the Play Store (Google's documented form); without
# the product, the subscriptions list.
MANAGE_SUBSCRIPTION_URL = "https://play.google.com/store/account/subscriptions"


def manage_subscription_url(store_product_id: str, package_name: str = "") -> str:
    if not (store_product_id and package_name):
        return MANAGE_SUBSCRIPTION_URL
    return f"{MANAGE_SUBSCRIPTION_URL}?{urlencode({'sku': store_product_id, 'package': package_name})}"
