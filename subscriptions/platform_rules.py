"""Platform billing rules: grace periods, billing retry / account hold, dunning.

The stores change these (Google changed its account-hold default on
2025-12-01), so they are dated: each provider has a list of versions, each in
force from its ``since`` date, and the version that applies to a subscription
is the one in force **when it lapsed** (its renewal failed). A subscription
that lapsed in November 2025 keeps the old Play hold even if it is swept in
December.

Each provider package declares its own dated defaults (``PLATFORM_RULES``, and
``rule_problem`` for the values the platform allows); this module composes them.
Settings override the defaults: ``SUBSCRIPTION_PLATFORM_RULES = {"google_play":
[{"since": "2025-12-01", "grace_days": 14}, ...]}`` replaces that provider's
versions; a field a version omits is inherited from the version before it.

Meaning of the fields (all measured in whole days unless said otherwise):

- ``grace_days``: access continues after a failed renewal while the store
  retries (App Store 0/3/16/28, 6 for weekly plans; Play 0/3/7/14/30).
- ``hold_days``: after grace (or right after the lapse when there is no
  grace) the subscription is in billing retry / account hold without access;
  then it expires. App Store: billing retry lasts 60 days from the lapse
  (``billing_retry_days``), so hold = 60 - grace. Play: account hold, with
  grace + hold in 30..60; ``None`` means "60 - grace" (the 2025-12-01 default).
  Stripe: the Smart Retries window (past_due) before the subscription is
  canceled.
- ``dunning_offsets_hours``: when a web subscription's payment retries are
  due, counted from the lapse (Smart Retries default: 8 tries in 2 weeks).
- ``incomplete_hours``: a Stripe subscription whose first payment never
  succeeded becomes ``incomplete_expired`` after 23 hours.
- ``renewal_leeway_minutes``: how long after the period end the sweep waits
  for the renewal's notification before treating the subscription as lapsed
  (Stripe finalizes the renewal invoice about an hour after the period ends
  and charges then; without this, every web renewal would flicker to
  past_due). Grace and hold are still counted from the period end.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from monetization.providers import PACKAGES

INTERNAL = "internal"


@dataclass(frozen=True)
class PlatformRule:
    since: datetime
    grace_days: int = 0
    weekly_grace_days: int = 0
    hold_days: int | None = 0
    billing_retry_days: int | None = None
    dunning_offsets_hours: tuple[int, ...] = ()
    incomplete_hours: int | None = None
    renewal_leeway_minutes: int = 0

    def grace(self, *, weekly: bool = False) -> timedelta:
        return timedelta(days=self.weekly_grace_days if weekly and self.grace_days else self.grace_days)

    def hold(self, *, weekly: bool = False) -> timedelta:
        """Time in billing retry / account hold after grace ends (or after the lapse without grace)."""
        grace = self.grace(weekly=weekly).days
        if self.billing_retry_days is not None:  # App Store: retry window counted from the lapse
            return timedelta(days=max(0, self.billing_retry_days - grace))
        if self.hold_days is None:  # Play since 2025-12-01: default hold = 60 - grace
            return timedelta(days=max(0, 60 - grace))
        return timedelta(days=self.hold_days)

    def hold_end(self, *, lapsed_at: datetime, grace_end: datetime | None = None) -> datetime:
        """When billing retry / account hold ends (then the subscription expires)."""
        if self.billing_retry_days is not None:
            return lapsed_at + timedelta(days=self.billing_retry_days)
        return (grace_end or lapsed_at) + self.hold()

    @property
    def dunning_offsets(self) -> tuple[timedelta, ...]:
        return tuple(timedelta(hours=h) for h in self.dunning_offsets_hours)


def _d(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


EPOCH = "2000-01-01"

DEFAULT_RULES: dict[str, list[dict]] = {
    **{name: list(package.PLATFORM_RULES) for name, package in PACKAGES.items()},
    # Comped subscriptions (no provider): no grace, no hold.
    INTERNAL: [{"since": EPOCH, "grace_days": 0, "hold_days": 0}],
}

_FIELD_NAMES = {f.name for f in fields(PlatformRule)}


def _validate(provider: str, rule: PlatformRule) -> None:
    package = PACKAGES.get(provider)
    problem = package.rule_problem(rule) if package is not None else ""
    if problem:
        raise ImproperlyConfigured(problem)
    if rule.grace_days < 0 or rule.hold().days < 0:
        raise ImproperlyConfigured(f"{provider}: negative grace or hold")
    if list(rule.dunning_offsets_hours) != sorted(rule.dunning_offsets_hours):
        raise ImproperlyConfigured(f"{provider}: dunning offsets must be increasing")


def _build(provider: str, versions: list[dict]) -> tuple[PlatformRule, ...]:
    built: list[PlatformRule] = []
    previous: PlatformRule | None = None
    for raw in sorted(versions, key=lambda v: str(v["since"])):
        unknown = set(raw) - _FIELD_NAMES
        if unknown:
            raise ImproperlyConfigured(f"{provider}: unknown platform rule fields {sorted(unknown)}")
        values = dict(raw)
        since = values.pop("since")
        since = since if isinstance(since, datetime) else _d(str(since))
        if "dunning_offsets_hours" in values:
            values["dunning_offsets_hours"] = tuple(values["dunning_offsets_hours"])
        rule = replace(previous, since=since, **values) if previous else PlatformRule(since=since, **values)
        _validate(provider, rule)
        built.append(rule)
        previous = rule
    if not built:
        raise ImproperlyConfigured(f"{provider}: no platform rules")
    return tuple(built)


def all_rules() -> dict[str, tuple[PlatformRule, ...]]:
    """Every provider's dated rule versions, oldest first (defaults + settings overrides)."""
    merged = dict(DEFAULT_RULES)
    merged.update(getattr(settings, "SUBSCRIPTION_PLATFORM_RULES", {}) or {})
    return {provider: _build(provider, versions) for provider, versions in merged.items()}


def rule_versions(provider: str) -> list[tuple[PlatformRule, datetime | None]]:
    """(rule, until) pairs: the rule applies to lapses in [rule.since, until)."""
    versions = all_rules().get(provider) or all_rules()[INTERNAL]
    return [(rule, versions[i + 1].since if i + 1 < len(versions) else None) for i, rule in enumerate(versions)]


def rule_for(provider: str, lapsed_at: datetime) -> PlatformRule:
    """The rule in force for ``provider`` when a subscription lapsed at ``lapsed_at``."""
    for rule, until in rule_versions(provider):
        if rule.since <= lapsed_at and (until is None or lapsed_at < until):
            return rule
    return rule_versions(provider)[0][0]
