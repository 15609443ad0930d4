"""The stores' rules for changing the price existing subscribers pay, dated like the platform rules.

- App Store: Apple runs a price increase. A subscriber must consent (Apple asks them and sends
  PRICE_INCREASE notifications; one who does not consent expires at renewal); Apple lets some small
  increases through without consent, on its own terms. We never move an App Store subscriber's price.
- Google Play: Google runs a price change on the base plan's existing subscribers, notifies them ahead
  (``notice_days``) and, for an opt-in increase, ends the subscription of whoever does not accept.
- Web (Stripe): we run it. Existing subscribers keep their price unless a change says it moves them
  too, and then only with at least ``notice_days`` of notice; they pay it from their first renewal on
  or after the effective date. New subscribers pay the new price from the effective date.

``SUBSCRIPTION_PRICE_CHANGE_RULES = {"stripe": [{"since": "2026-01-01", "notice_days": 45}]}`` replaces
a provider's versions; a field a version omits is inherited from the one before it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from django.conf import settings


@dataclass(frozen=True)
class PriceChangeRule:
    since: datetime
    store_runs_it: bool  # the store moves existing subscribers (with their consent), never us
    consent_required: bool
    notice_days: int


DEFAULTS: dict[str, list[dict]] = {
    "app_store": [{"since": "2000-01-01", "store_runs_it": True, "consent_required": True, "notice_days": 30}],
    "google_play": [{"since": "2000-01-01", "store_runs_it": True, "consent_required": True, "notice_days": 30}],
    "stripe": [{"since": "2000-01-01", "store_runs_it": False, "consent_required": False, "notice_days": 30}],
}
PLATFORM_PROVIDER = {"ios": "app_store", "android": "google_play", "web": "stripe"}


def _versions(provider: str) -> list[PriceChangeRule]:
    configured = (getattr(settings, "SUBSCRIPTION_PRICE_CHANGE_RULES", {}) or {}).get(provider)
    raw = configured or DEFAULTS[provider]
    versions: list[PriceChangeRule] = []
    for entry in sorted(raw, key=lambda e: e["since"]):
        since = datetime.fromisoformat(entry["since"]).replace(tzinfo=UTC)
        fields = {k: v for k, v in entry.items() if k != "since"}
        if versions:
            versions.append(replace(versions[-1], since=since, **fields))
        else:
            versions.append(PriceChangeRule(**{**DEFAULTS[provider][0], **fields, "since": since}))
    return versions


def price_change_rule(platform: str, at: datetime) -> PriceChangeRule:
    """The rule in force at ``at`` (the change's announcement) for ``platform``."""
    versions = [v for v in _versions(PLATFORM_PROVIDER[platform]) if v.since <= at]
    return versions[-1] if versions else _versions(PLATFORM_PROVIDER[platform])[0]
