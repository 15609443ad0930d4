"""The demo catalog: X Premium's tiers, Verified Organizations and creator subscriptions.

Numbers follow DESIGN.md ("Products' public numbers"): web prices are the
published ones; App Store and Google Play prices are higher (the stores' cut
is passed on) and land on the stores' price points (x.99, round yen).
Idempotent: every row is found by its natural key (codes, store ids,
price version) and updated in place.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal

from djmoney.money import Money

from subscriptions.models import Entitlement, Plan, Platform, Price, Product, Sku

ENTITLEMENTS = {
    "verified_badge": ("Blue checkmark", "The verified badge on the profile."),
    "edit_post": ("Edit post", "Edit a post within an hour of posting."),
    "undo_post": ("Undo post", "Review a post before it goes out."),
    "longer_posts": ("Longer posts", "Posts up to 25,000 characters."),
    "longer_videos": ("Longer videos", "Upload videos up to 3 hours."),
    "bookmark_folders": ("Bookmark folders", "Organise bookmarks into folders."),
    "background_video": ("Background video playback", "Keep playing videos in the background."),
    "reader_mode": ("Reader", "Read long threads in a clean view."),
    "reduced_ads": ("Half the ads", "Half as many ads in For You and Following."),
    "ad_free": ("No ads", "No ads in For You and Following."),
    "reply_boost": ("Reply prioritisation", "Replies ranked higher."),
    "grok_access": ("Grok", "Access to the Grok assistant."),
    "grok_higher_limits": ("Grok higher limits", "The highest Grok usage limits."),
    "creator_monetization": ("Creator revenue sharing", "May join creator revenue sharing."),
    "x_pro": ("X Pro", "Advanced multi-column client."),
    "org_gold_badge": ("Gold checkmark", "The organisation's gold badge."),
    "affiliate_badge": ("Affiliate badge", "An affiliated account shows its organisation's badge."),
    "priority_support": ("Priority support", "Support answers within one business day."),
    "creator_badge": ("Creator badge", "Shown on eligible creators' profiles."),
    "subscriber_badge": ("Subscriber badge", "Shown next to a fan's replies to the creator."),
    "subscriber_only_posts": ("Subscriber-only posts", "Read a creator's subscriber-only posts."),
}

BASIC = ["edit_post", "undo_post", "longer_posts", "longer_videos", "bookmark_folders", "background_video"]
PREMIUM = [*BASIC, "verified_badge", "reduced_ads", "reply_boost", "grok_access", "creator_monetization", "reader_mode"]
PREMIUM_PLUS = [*[k for k in PREMIUM if k != "reduced_ads"], "ad_free", "grok_higher_limits", "x_pro"]

# code -> (name, kind, rank, entitlements, description, ios product stem, android product id)
PRODUCTS = {
    "premium-basic": (
        "Premium Basic",
        Product.Kind.CONSUMER,
        1,
        BASIC,
        "Core features: edit, longer posts, bookmark folders.",
        "com.x.premium.basic",
        "premium_basic",
    ),
    "premium": (
        "Premium",
        Product.Kind.CONSUMER,
        2,
        PREMIUM,
        "Everything in Basic plus the checkmark, half the ads and creator revenue sharing.",
        "com.x.premium",
        "premium",
    ),
    "premium-plus": (
        "Premium+",
        Product.Kind.CONSUMER,
        3,
        PREMIUM_PLUS,
        "Everything in Premium, no ads, the highest Grok limits.",
        "com.x.premiumplus",
        "premium_plus",
    ),
    "verified-organization": (
        "Verified Organization",
        Product.Kind.ORGANIZATION,
        1,
        ["org_gold_badge", "affiliate_badge", "verified_badge", "ad_free", "priority_support"],
        "Gold checkmark for the organisation; affiliate badges per seat.",
        "",
        "",
    ),
    "creator-subscription": (
        "Creator Subscription",
        Product.Kind.CREATOR,
        1,
        ["subscriber_badge", "subscriber_only_posts"],
        "A fan's monthly subscription to one creator; the creator keeps a share.",
        "com.x.creator.subscription",
        "creator_subscription",
    ),
}

# Web (Stripe) prices, per country: (currency, monthly, annual).
# US numbers are X's published ones; other countries use local price points.
WEB_PRICES = {
    "premium-basic": {
        "US": ("USD", "3.00", "32.00"),
        "DE": ("EUR", "3.50", "36.00"),
        "FR": ("EUR", "3.50", "36.00"),
        "ES": ("EUR", "3.50", "36.00"),
        "IT": ("EUR", "3.50", "36.00"),
        "GB": ("GBP", "3.00", "32.00"),
        "JP": ("JPY", "368", "3938"),
        "IN": ("INR", "244", "2591"),
        "BR": ("BRL", "16.00", "168.00"),
        "CA": ("CAD", "4.00", "43.00"),
        "AU": ("AUD", "4.50", "48.00"),
    },
    "premium": {
        "US": ("USD", "8.00", "84.00"),
        "DE": ("EUR", "9.60", "100.80"),
        "FR": ("EUR", "9.60", "100.80"),
        "ES": ("EUR", "9.60", "100.80"),
        "IT": ("EUR", "9.60", "100.80"),
        "GB": ("GBP", "8.40", "88.00"),
        "JP": ("JPY", "980", "10280"),
        "IN": ("INR", "650", "6800"),
        "BR": ("BRL", "42.00", "440.00"),
        "CA": ("CAD", "11.00", "115.00"),
        "AU": ("AUD", "13.00", "136.00"),
    },
    "premium-plus": {
        "US": ("USD", "22.00", "229.00"),
        "DE": ("EUR", "24.00", "250.00"),
        "FR": ("EUR", "24.00", "250.00"),
        "ES": ("EUR", "24.00", "250.00"),
        "IT": ("EUR", "24.00", "250.00"),
        "GB": ("GBP", "21.00", "220.00"),
        "JP": ("JPY", "2590", "27000"),
        "IN": ("INR", "1750", "18300"),
        "BR": ("BRL", "110.00", "1150.00"),
        "CA": ("CAD", "30.00", "310.00"),
        "AU": ("AUD", "34.00", "355.00"),
    },
    "creator-subscription": {
        "US": ("USD", "4.99", None),
        "DE": ("EUR", "4.99", None),
        "FR": ("EUR", "4.99", None),
        "ES": ("EUR", "4.99", None),
        "IT": ("EUR", "4.99", None),
        "GB": ("GBP", "4.49", None),
        "JP": ("JPY", "750", None),
        "IN": ("INR", "399", None),
        "BR": ("BRL", "24.90", None),
        "CA": ("CAD", "6.99", None),
        "AU": ("AUD", "7.99", None),
    },
}

# Verified Organizations: web only; (currency, monthly base, monthly seat, annual base, annual seat).
ORG_PRICES = {
    "US": ("USD", "1000", "50", "10000", "500"),
    "DE": ("EUR", "1000", "50", "10000", "500"),
    "FR": ("EUR", "1000", "50", "10000", "500"),
    "ES": ("EUR", "1000", "50", "10000", "500"),
    "IT": ("EUR", "1000", "50", "10000", "500"),
    "GB": ("GBP", "900", "45", "9000", "450"),
    "JP": ("JPY", "150000", "7500", "1500000", "75000"),
    "IN": ("INR", "84000", "4200", "840000", "42000"),
    "BR": ("BRL", "5500", "275", "55000", "2750"),
    "CA": ("CAD", "1400", "70", "14000", "700"),
    "AU": ("AUD", "1550", "78", "15500", "780"),
}

# Premium+ cost $16/month before the 2024-12 increase: an expired price version shows history.
PRICE_EPOCH = datetime(2023, 10, 27, tzinfo=UTC)
PREMIUM_PLUS_INCREASE = datetime(2024, 12, 21, tzinfo=UTC)
OLD_PREMIUM_PLUS_US = {"month": "16.00", "year": "168.00"}
APP_STORE_UPLIFT = Decimal("1.30")
NO_DECIMALS = {"JPY", "INR"}


def store_price(amount: str, currency: str) -> Decimal:
    """The App Store / Google Play price point above the web price: ~30% more, on a .99 (or round) tier."""
    raw = Decimal(amount) * APP_STORE_UPLIFT
    if currency == "JPY":
        return (raw / 10).to_integral_value(ROUND_CEILING) * 10
    if currency == "INR":
        return (raw / 10).to_integral_value(ROUND_CEILING) * 10 - 1
    return raw.to_integral_value(ROUND_CEILING) - Decimal("0.01")


def stripe_price_id(plan_code: str) -> str:
    """A Stripe-looking, deterministic price id (``price_1`` + 23 base62 chars)."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    n = int.from_bytes(hashlib.sha256(plan_code.encode()).digest(), "big")
    chars = []
    for _ in range(23):
        n, r = divmod(n, 62)
        chars.append(alphabet[r])
    return "price_1" + "".join(chars)


def _plan(product: Product, interval: str, trial_days: int = 0) -> Plan:
    suffix = "monthly" if interval == Plan.Interval.MONTH else "annual"
    plan, _ = Plan.objects.update_or_create(
        code=f"{product.code}-{suffix}",
        defaults={"product": product, "interval": interval, "interval_count": 1, "trial_days": trial_days},
    )
    return plan


def _sku(plan: Plan, platform: str, store_product_id: str, base_plan_id: str = "") -> None:
    Sku.objects.update_or_create(
        plan=plan,
        platform=platform,
        defaults={"store_product_id": store_product_id, "base_plan_id": base_plan_id, "is_active": True},
    )


def _price(plan, *, country, currency, amount, platform="", component=Price.Component.BASE, since, until=None):
    Price.objects.update_or_create(
        plan=plan,
        platform=platform,
        country=country,
        component=component,
        valid_from=since,
        defaults={"amount": Money(Decimal(amount), currency), "valid_until": until},
    )


def seed(*, rng, out, options) -> None:
    entitlements = {}
    for key, (name, description) in ENTITLEMENTS.items():
        entitlements[key], _ = Entitlement.objects.update_or_create(
            key=key, defaults={"name": name, "description": description}
        )

    prices = 0
    for code, (name, kind, rank, keys, description, ios_stem, android_id) in PRODUCTS.items():
        product, _ = Product.objects.update_or_create(
            code=code, defaults={"name": name, "kind": kind, "rank": rank, "description": description}
        )
        product.entitlements.set([entitlements[k] for k in keys])

        if kind == Product.Kind.ORGANIZATION:
            for interval, base_i, seat_i in ((Plan.Interval.MONTH, 1, 2), (Plan.Interval.YEAR, 3, 4)):
                plan = _plan(product, interval)
                _sku(plan, Platform.WEB, stripe_price_id(plan.code))
                for country, row in ORG_PRICES.items():
                    currency = row[0]
                    _price(plan, country=country, currency=currency, amount=row[base_i], since=PRICE_EPOCH)
                    _price(
                        plan,
                        country=country,
                        currency=currency,
                        amount=row[seat_i],
                        component=Price.Component.SEAT,
                        since=PRICE_EPOCH,
                    )
                    prices += 2
            continue

        intervals = [(Plan.Interval.MONTH, 1)] + ([(Plan.Interval.YEAR, 2)] if kind == Product.Kind.CONSUMER else [])
        for interval, column in intervals:
            suffix = "monthly" if interval == Plan.Interval.MONTH else "annual"
            # Premium monthly has a 7-day trial on every platform (trial conversion shows in finance reports).
            plan = _plan(product, interval, trial_days=7 if code == "premium" and interval == "month" else 0)
            _sku(plan, Platform.IOS, f"{ios_stem}.{suffix}")
            _sku(plan, Platform.ANDROID, android_id, base_plan_id=f"{suffix}-autorenew")
            _sku(plan, Platform.WEB, stripe_price_id(plan.code))
            since = PREMIUM_PLUS_INCREASE if code == "premium-plus" else PRICE_EPOCH
            for country, row in WEB_PRICES[code].items():
                currency, amount = row[0], row[column]
                _price(plan, country=country, currency=currency, amount=amount, since=since)
                for platform in (Platform.IOS, Platform.ANDROID):
                    _price(
                        plan,
                        country=country,
                        currency=currency,
                        amount=store_price(amount, currency),
                        platform=platform,
                        since=since,
                    )
                prices += 3
            if code == "premium-plus":
                _price(
                    plan,
                    country="US",
                    currency="USD",
                    amount=OLD_PREMIUM_PLUS_US[interval],
                    since=PRICE_EPOCH,
                    until=PREMIUM_PLUS_INCREASE,
                )
                prices += 1

    out.write(
        f"  catalog: {len(ENTITLEMENTS)} entitlements, {len(PRODUCTS)} products, "
        f"{Plan.objects.count()} plans, {Sku.objects.count()} SKUs, {prices} prices"
    )
