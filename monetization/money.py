"""Currency arithmetic every layer needs: minor units and the one rounding the ledger accepts."""

from __future__ import annotations

from decimal import Decimal

from djmoney.money import Money
from moneyed import get_currency


def minor_unit_exponent(currency: str) -> int:
    """Digits after the decimal point for a currency (JPY 0, USD 2, BHD 3)."""
    # py-moneyed knows the ISO 4217 minor units; fall back to 2 if it doesn't.
    sub_unit = getattr(get_currency(currency), "sub_unit", 100) or 1
    return len(str(sub_unit)) - 1


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round to the currency's minor unit (half-up), the only rounding the ledger accepts."""
    exp = minor_unit_exponent(currency)
    return amount.quantize(Decimal(1).scaleb(-exp), rounding="ROUND_HALF_UP")


def money_from_minor(amount: int, currency: str) -> Money:
    """An amount in the currency's minor unit (what Stripe sends: cents, yen) as Money."""
    currency = currency.upper()
    return Money(Decimal(int(amount)).scaleb(-minor_unit_exponent(currency)), currency)


def minor_from_money(amount: Money) -> int:
    return int((amount.amount * (10 ** minor_unit_exponent(str(amount.currency)))).to_integral_value())
