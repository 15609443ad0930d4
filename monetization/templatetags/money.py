"""``{{ amount|money:currency }}``: an amount the way every Money prints (settings.MONEY_FORMAT), for the
numbers a template has apart from their currency (sums, pools)."""

from __future__ import annotations

from django import template
from djmoney.money import Money

register = template.Library()


@register.filter
def money(value, currency: str = ""):
    if value is None or value == "":
        return "—"
    if isinstance(value, Money):
        return value
    return Money(value, currency) if currency else value
