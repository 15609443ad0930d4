"""Exchange rates: loaded from the ECB reference-rate files (CSV history, daily XML) by a command,
looked up per day with cross rates and the last published day for weekends, converted to minor units."""

import datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from djmoney.money import Money

from monetization.models import ExchangeRate
from monetization.services.fx import RateMissing, convert, exchange_rates_load, parse_ecb_csv, rate_on, rate_sources

FIXTURES = Path(__file__).parent / "fixtures"
HIST, DAILY = str(FIXTURES / "eurofxref-hist.csv"), str(FIXTURES / "eurofxref-daily.xml")
pytestmark = pytest.mark.django_db


def test_the_command_loads_the_history_csv_and_the_daily_xml_and_reloading_replaces():
    out = StringIO()
    call_command("load_exchange_rates", HIST, stdout=out)
    assert "loaded 12 rates: 4 currencies over 3 days" in out.getvalue()  # N/A cells skipped
    call_command("load_exchange_rates", DAILY, stdout=StringIO())
    call_command("load_exchange_rates", HIST, stdout=StringIO())  # again: replaced, not doubled
    assert ExchangeRate.objects.count() == 15
    assert ExchangeRate.objects.get(currency="USD", day=datetime.date(2026, 10, 1)).rate == Decimal("1.1050")
    assert set(ExchangeRate.objects.values_list("base", "source").distinct()) == {("EUR", "ecb")}


def test_rates_cross_through_the_base_and_fall_back_to_the_last_published_day():
    exchange_rates_load(source="ecb", location=HIST)
    d = datetime.date(2026, 9, 30)
    assert rate_on("EUR", "USD", d) == Decimal("1.1")
    assert rate_on("USD", "EUR", d) == Decimal(1) / Decimal("1.1")
    assert rate_on("GBP", "USD", d) == Decimal("1.1") / Decimal("0.85")
    assert rate_on("USD", "USD", d) == 1
    sunday = datetime.date(2026, 9, 27)  # no fixing: Friday the 25th's rate
    assert rate_on("EUR", "USD", sunday) == Decimal("1.08")
    with pytest.raises(RateMissing) as missing:
        rate_on("EUR", "USD", datetime.date(2026, 8, 1))
    assert missing.value.code == "fx_rate_missing"


def test_convert_rounds_to_the_target_minor_unit():
    exchange_rates_load(source="ecb", location=HIST)
    d = datetime.date(2026, 9, 30)
    assert convert(Money("19.40", "EUR"), "USD", d) == Money("21.34", "USD")
    assert convert(Money("10.00", "USD"), "JPY", d) == Money("1477", "JPY")  # 1477.27 -> no minor unit
    assert convert(Money("19.40", "GBP"), "USD", d) == Money("25.11", "USD")  # 25.105882... half-even -> .11


def test_the_source_is_pluggable_and_bad_input_changes_nothing(tmp_path):
    rate_sources.register("fixed", lambda location: ("USD", parse_ecb_csv("Date,CAD\n2026-09-30,1.37\n")))
    try:
        exchange_rates_load(source="fixed", location="-")
    finally:
        rate_sources.unregister("fixed")
    assert rate_on("USD", "CAD", datetime.date(2026, 9, 30), table_base="USD") == Decimal("1.37")
    empty = tmp_path / "empty.csv"
    empty.write_text("Date,USD\n")
    with pytest.raises(CommandError):
        call_command("load_exchange_rates", str(empty), stdout=StringIO())
    with pytest.raises(CommandError):
        call_command("load_exchange_rates", HIST, "--source", "nope", stdout=StringIO())
    assert ExchangeRate.objects.count() == 1
