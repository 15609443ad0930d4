"""Daily exchange rates: the table, the lookups and the loaders.

Rates are stored as published: one ``base`` (the ECB's: EUR) buys ``rate`` units of a currency on a
day. :func:`rate_on` answers any pair through the base (cross rates), on the given day or, for a
weekend or holiday, the latest published day before it (up to ``MAX_STALE_DAYS``); :func:`convert`
rounds to the target currency's minor unit, half to even. Nothing is fetched implicitly: rates come
into the table through ``manage.py load_exchange_rates`` from a source in :data:`rate_sources`
(``ecb``: the ECB reference-rate files, ``eurofxref-hist.csv`` or the daily XML, from a path or URL).
"""

from __future__ import annotations

import bisect
import csv
import datetime
import io
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from django.db import transaction
from djmoney.money import Money

from monetization.errors import FxErrorCode, InvalidInput, NotFound
from monetization.models import ExchangeRate
from monetization.money import minor_unit_exponent
from monetization.registry import Registry

ECB_BASE = "EUR"
MAX_STALE_DAYS = 7


class RateMissing(NotFound):
    """No exchange rate on or shortly before that day."""

    code = FxErrorCode.FX_RATE_MISSING


@dataclass(frozen=True)
class RateRow:
    day: datetime.date
    currency: str
    rate: Decimal


def _base_rate(currency: str, base: str, day: datetime.date) -> Decimal:
    """Units of ``currency`` one ``base`` bought on ``day`` (or the latest published day before it)."""
    if currency == base:
        return Decimal(1)
    row = (
        ExchangeRate.objects.filter(
            base=base, currency=currency, day__lte=day, day__gte=day - datetime.timedelta(days=MAX_STALE_DAYS)
        )
        .order_by("-day")
        .values_list("rate", flat=True)
        .first()
    )
    if row is None:
        raise RateMissing(f"No {base}/{currency} rate on or before {day.isoformat()}.")
    return row


def rate_on(currency: str, base: str, day: datetime.date, *, table_base: str = ECB_BASE) -> Decimal:
    """Units of ``base`` one unit of ``currency`` is worth on ``day`` (1 for the same currency)."""
    if currency == base:
        return Decimal(1)
    return _base_rate(base, table_base, day) / _base_rate(currency, table_base, day)


def convert(amount: Money, to: str, day: datetime.date) -> Money:
    """``amount`` in ``to`` at the day's reference rate, rounded to ``to``'s minor unit (half to even)."""
    source = str(amount.currency)
    value = amount.amount * rate_on(source, to, day)
    return Money(value.quantize(Decimal(1).scaleb(-minor_unit_exponent(to)), rounding=ROUND_HALF_EVEN), to)


# Sorts after any rate: ``(day, _ANY_RATE)`` comes after every row published on ``day``.
_ANY_RATE = Decimal("Infinity")


class RateTable:
    """Every rate a report over ``[start, end]`` needs, read in one query, answered like :func:`rate_on`.

    Reports convert thousands of (day, currency) totals: one query for the range, not one per total.
    """

    def __init__(self, *, currencies: Iterable[str], to: str, start: datetime.date, end: datetime.date):
        self.to = to
        wanted = set(currencies) | {to}
        self._days: dict[str, list[tuple[datetime.date, Decimal]]] = {c: [] for c in wanted}
        self._rates: dict[tuple[str, datetime.date], Decimal | None] = {}
        rows = ExchangeRate.objects.filter(
            base=ECB_BASE,
            currency__in=wanted - {ECB_BASE},
            day__gte=start - datetime.timedelta(days=MAX_STALE_DAYS),
            day__lte=end,
        ).order_by("day")
        for day, currency, rate in rows.values_list("day", "currency", "rate"):
            self._days[currency].append((day, rate))

    def _base_rate(self, currency: str, day: datetime.date) -> Decimal | None:
        if currency == ECB_BASE:
            return Decimal(1)
        # A report asks for every (day, currency) of its range: a binary search, not a walk from the start.
        published = self._days.get(currency, ())
        at = bisect.bisect_right(published, (day, _ANY_RATE)) - 1
        if at < 0 or published[at][0] < day - datetime.timedelta(days=MAX_STALE_DAYS):
            return None
        return published[at][1]

    def rate(self, currency: str, day: datetime.date) -> Decimal | None:
        """Units of the reporting currency one ``currency`` is worth on ``day``; None when no rate is known."""
        if currency == self.to:
            return Decimal(1)
        if (currency, day) in self._rates:  # each figure of a (day, currency) total asks again
            return self._rates[currency, day]
        self._rates[currency, day] = self._rate(currency, day)
        return self._rates[currency, day]

    def _rate(self, currency: str, day: datetime.date) -> Decimal | None:
        to_rate, from_rate = self._base_rate(self.to, day), self._base_rate(currency, day)
        if to_rate is None or from_rate is None:
            return None
        return to_rate / from_rate

    def convert(self, amount: Decimal, currency: str, day: datetime.date) -> Decimal | None:
        rate = self.rate(currency, day)
        if rate is None:
            return None
        exp = Decimal(1).scaleb(-minor_unit_exponent(self.to))
        return (amount * rate).quantize(exp, rounding=ROUND_HALF_EVEN)


# --- loading ------------------------------------------------------------------------------------


def _read(location: str) -> str:
    if location.startswith(("http://", "https://")):
        with urllib.request.urlopen(location, timeout=30) as response:  # noqa: S310 (http(s) only)
            return response.read().decode()
    with open(location, encoding="utf-8") as f:
        return f.read()


def _rate(text: str) -> Decimal | None:
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        return None  # "N/A": the currency was not quoted that day
    return value if value > 0 else None


def parse_ecb_csv(text: str) -> Iterator[RateRow]:
    """``eurofxref-hist.csv`` / ``eurofxref.csv``: ``Date,USD,JPY,...`` then one line per day."""
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader)]
    for line in reader:
        if not line or not line[0].strip():
            continue
        try:
            day = datetime.datetime.strptime(line[0].strip(), "%Y-%m-%d").date()
        except ValueError:
            day = datetime.datetime.strptime(line[0].strip(), "%d %B %Y").date()  # the daily CSV's date format
        for currency, cell in zip(header[1:], line[1:], strict=False):
            rate = _rate(cell)
            if currency and rate is not None:
                yield RateRow(day, currency, rate)


def parse_ecb_xml(text: str) -> Iterator[RateRow]:
    """``eurofxref-daily.xml`` / ``eurofxref-hist.xml``: ``<Cube time=...><Cube currency= rate=/>``."""
    root = ET.fromstring(text)  # noqa: S314 (a reference-rate file we chose to load)
    for day_cube in root.iter():
        if not day_cube.tag.endswith("Cube") or "time" not in day_cube.attrib:
            continue
        day = datetime.date.fromisoformat(day_cube.attrib["time"])
        for cube in day_cube:
            rate = _rate(cube.attrib.get("rate", ""))
            if cube.attrib.get("currency") and rate is not None:
                yield RateRow(day, cube.attrib["currency"], rate)


def ecb_source(location: str) -> tuple[str, Iterator[RateRow]]:
    """The ECB reference rates (base EUR) from a CSV or XML file or URL."""
    text = _read(location)
    rows = parse_ecb_xml(text) if text.lstrip().startswith("<") else parse_ecb_csv(text)
    return ECB_BASE, rows


# A source: location -> (base currency, rows). Register more from an AppConfig or settings.
RateSource = Callable[[str], tuple[str, Iterable[RateRow]]]
rate_sources: Registry[RateSource] = Registry("exchange-rate source")
rate_sources.register("ecb", ecb_source)


def exchange_rates_load(*, source: str, location: str) -> dict:
    """Load a source's rates into the table; re-loading a day replaces it (idempotent). Returns counts."""
    try:
        load = rate_sources.get(source)
    except LookupError as exc:
        raise InvalidInput(str(exc)) from exc
    base, rows = load(location)
    rows = list(rows)
    if not rows:
        raise InvalidInput(f"No rates found in {location}.")
    with transaction.atomic():
        ExchangeRate.objects.bulk_create(
            [ExchangeRate(day=r.day, base=base, currency=r.currency, rate=r.rate, source=source) for r in rows],
            batch_size=5000,
            update_conflicts=True,
            unique_fields=["base", "currency", "day"],
            update_fields=["rate", "source", "loaded_at"],
        )
    return {
        "rates": len(rows),
        "days": len({r.day for r in rows}),
        "currencies": len({r.currency for r in rows}),
        "first": min(r.day for r in rows).isoformat(),
        "last": max(r.day for r in rows).isoformat(),
    }
