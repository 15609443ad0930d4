"""What the stores keep of a sale, and the tax they collect, as of each date.

Each provider package declares its dated commission rules (``COMMISSION_RULES``) and whether it
is the merchant of record that collects and remits the sale's tax (``REMITS_TAX``); a package
without rules keeps no commission (Stripe charges a processing fee, read from the balance
transaction, not a commission). ``STORE_COMMISSION_RULES`` adds dated versions per provider
(merged with the defaults by date; a field a version omits is inherited from the version before
it), e.g. enrolment in Apple's Small Business Program::

    STORE_COMMISSION_RULES = {"app_store": [{"since": "2021-01-01", "small_business_program": True}]}

The version in force is the one for the day the payment happened. Fields:

- ``rate``: the standard commission (App Store 30%);
- ``reduced_rate``: what applies past a subscriber's first year of paid service when
  ``reduced_after_first_year``, and to every sale while ``small_business_program``.

Store prices include tax where the storefront's country charges it (VAT, GST): the store keeps
it for the authorities, and takes its commission from the price net of that tax.
``STORE_TAX_RATES`` holds the inclusive rates by country, dated the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from djmoney.money import Money

from monetization.money import quantize
from monetization.providers import PACKAGES


@dataclass(frozen=True)
class CommissionRule:
    since: datetime
    rate: Decimal = Decimal(0)
    reduced_rate: Decimal = Decimal(0)
    reduced_after_first_year: bool = False
    small_business_program: bool = False

    def rate_for(self, *, past_first_year: bool) -> Decimal:
        if self.small_business_program or (self.reduced_after_first_year and past_first_year):
            return self.reduced_rate
        return self.rate


_FIELDS = {f.name for f in fields(CommissionRule)}
_DECIMALS = {"rate", "reduced_rate"}


def _when(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def _versions(provider: str) -> list[CommissionRule]:
    package = PACKAGES.get(provider)
    raw = list(getattr(package, "COMMISSION_RULES", ()) if package else ())
    raw += list((getattr(settings, "STORE_COMMISSION_RULES", {}) or {}).get(provider, ()))
    built: list[CommissionRule] = []
    for version in sorted(raw, key=lambda v: _when(v["since"])):
        unknown = set(version) - _FIELDS
        if unknown:
            raise ImproperlyConfigured(f"{provider}: unknown commission rule fields {sorted(unknown)}")
        values = {k: Decimal(str(v)) if k in _DECIMALS else v for k, v in version.items() if k != "since"}
        since = _when(version["since"])
        rule = replace(built[-1], since=since, **values) if built else CommissionRule(since=since, **values)
        if not (0 <= rule.rate < 1 and 0 <= rule.reduced_rate < 1):
            raise ImproperlyConfigured(f"{provider}: a commission rate must be in [0, 1)")
        built.append(rule)
    return built


def commission_rule(provider: str, at: datetime) -> CommissionRule:
    """The provider's commission rule in force at ``at`` (no commission before its first version)."""
    rule = CommissionRule(since=_when("2000-01-01"))
    for version in _versions(provider):
        if version.since <= at:
            rule = version
    return rule


def commission_reduced_after_first_year(provider: str, at: datetime) -> bool:
    """Whether the rule in force at ``at`` takes less past a subscriber's first year (else that year is not asked)."""
    rule = commission_rule(provider, at)
    return rule.rate_for(past_first_year=True) != rule.rate_for(past_first_year=False)


def provider_remits_tax(provider: str) -> bool:
    """The provider is the merchant of record: it collects the sale's tax and pays it to the authorities."""
    return bool(getattr(PACKAGES.get(provider), "REMITS_TAX", False))


def store_tax_rate(country: str, at: datetime) -> Decimal:
    """The tax rate included in store prices of ``country`` at ``at`` (0 where none is included)."""
    rate = Decimal(0)
    versions = (getattr(settings, "STORE_TAX_RATES", {}) or {}).get((country or "").upper(), ())
    for version in sorted(versions, key=lambda v: _when(v["since"])):
        if _when(version["since"]) <= at:
            rate = Decimal(str(version["rate"]))
    return rate


def store_tax(*, provider: str, amount: Money, country: str, at: datetime) -> Money:
    """The tax a merchant-of-record provider keeps from ``amount`` (tax-inclusive), rounded once."""
    currency = str(amount.currency)
    if not provider_remits_tax(provider):
        return Money(0, currency)
    rate = store_tax_rate(country, at)
    return Money(quantize(amount.amount * rate / (1 + rate), currency), currency)


def commission_for(*, provider: str, amount: Money, tax: Money, at: datetime, past_first_year: bool) -> Money:
    """What the provider keeps of a sale of ``amount`` (tax ``tax`` included), at the rule in force at ``at``."""
    currency = str(amount.currency)
    rate = commission_rule(provider, at).rate_for(past_first_year=past_first_year)
    return Money(quantize((amount.amount - tax.amount) * rate, currency), currency)
