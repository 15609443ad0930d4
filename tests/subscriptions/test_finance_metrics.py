"""The Finance page's numbers on a known history (definitions: subscriptions/selectors_finance.py),
read from the daily snapshots the rebuild command writes.

March 2026, reporting in USD (1 EUR = 1.10 USD = 0.85 GBP every day):

- A: Stripe monthly USD 10, paid 02-10 and 03-10: active all month.
- B: Stripe annual USD 120, paid 2025-06-15: active all month, MRR 10.
- C: Stripe monthly EUR 10, paid 02-05 only: active to the end of 03-04, then churned.
- D: App Store monthly GBP 9.99 in GB, paid 03-20: price net of 20% VAT 8.32 GBP = 10.77 USD.
- E: trial 03-01 to 03-08, then paid USD 10 on 03-08 (converted).
- F: trial 03-02 to 03-09, never paid.
- G: Stripe monthly USD 10 paid 03-15 and refunded in full: never active.
"""

import datetime
import io
from datetime import UTC
from decimal import Decimal

import pytest
from django.core.management import call_command
from djmoney.money import Money

from monetization import clock
from monetization.models import ExchangeRate
from monetization.selectors_finance import recognized_revenue, revenue_by_provider_currency
from monetization.services.refunds import refund_record_from_provider
from subscriptions.selectors_finance import churn, mrr_movement, mrr_series, retention_cohorts, trial_conversion
from subscriptions.services.lifecycle import Cause
from subscriptions.services.payments import subscription_payment_record
from tests.monetization.factories import CustomerFactory
from tests.monetization.support_fixtures import make_staff  # noqa: F401 (fixture)
from tests.subscriptions.factories import PlanFactory, SubscriptionFactory

MARCH_1, MARCH_31 = datetime.date(2026, 3, 1), datetime.date(2026, 3, 31)
NOW = datetime.datetime(2026, 4, 1, 9, tzinfo=UTC)


def noon(month: int, day: int, year: int = 2026) -> datetime.datetime:
    return datetime.datetime(year, month, day, 12, tzinfo=UTC)


def _pay(sub, amount, at, ref):
    payment, _ = subscription_payment_record(
        subscription=sub,
        customer=sub.customer,
        provider=sub.provider,
        provider_reference=ref,
        amount=amount,
        occurred_at=at,
    )
    return payment


def rebuild(at=NOW):
    with clock.frozen(at):
        call_command("rebuild_finance_snapshots", start="2026-02-01", end="2026-03-31", stdout=io.StringIO())


@pytest.fixture
def history(db):
    for offset in range(-40, 45):
        day = MARCH_1 + datetime.timedelta(days=offset)
        ExchangeRate.objects.create(day=day, base="EUR", currency="USD", rate=Decimal("1.10"), source="test")
        ExchangeRate.objects.create(day=day, base="EUR", currency="GBP", rate=Decimal("0.85"), source="test")
    monthly = PlanFactory(code="finance-test-monthly", interval="month")
    annual = PlanFactory(code="finance-test-annual", interval="year")

    def sub(plan, provider="stripe", country="US", **kw):
        kw.setdefault("started_at", noon(1, 1))
        return SubscriptionFactory(plan=plan, provider=provider, customer=CustomerFactory(country=country), **kw)

    a, b, c = sub(monthly), sub(annual), sub(monthly, country="DE")
    d = sub(monthly, provider="app_store", country="GB", platform="ios")
    e = sub(monthly, started_at=noon(3, 1), trial_end=noon(3, 8))
    f = sub(monthly, started_at=noon(3, 2), trial_end=noon(3, 9))
    g = sub(monthly)
    _pay(a, Money("10.00", "USD"), noon(2, 10), "in_a1")
    _pay(a, Money("10.00", "USD"), noon(3, 10), "in_a2")
    _pay(b, Money("120.00", "USD"), noon(6, 15, 2025), "in_b1")
    _pay(c, Money("10.00", "EUR"), noon(2, 5), "in_c1")
    _pay(d, Money("9.99", "GBP"), noon(3, 20), "2000000000000099")
    _pay(e, Money("10.00", "USD"), noon(3, 8), "in_e1")
    refunded = _pay(g, Money("10.00", "USD"), noon(3, 15), "in_g1")
    with clock.frozen(noon(3, 16)):
        refund_record_from_provider(
            payment=refunded,
            amount=Money("10.00", "USD"),
            provider_refund_id="re_g1",
            cause=Cause.provider_event("stripe", "evt_g1"),
        )
    rebuild()
    return {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f, "g": g}


def test_mrr_and_active_subscriptions_day_by_day(history):
    series = {p.day: p for p in mrr_series(start=MARCH_1, end=MARCH_31, currency="USD")}
    assert (series[MARCH_1].active, series[MARCH_1].mrr) == (3, Decimal("31.00"))  # A, B, C (EUR 10 = USD 11)
    assert (series[datetime.date(2026, 3, 4)].active, series[datetime.date(2026, 3, 4)].mrr) == (3, Decimal("31.00"))
    assert (series[datetime.date(2026, 3, 5)].active, series[datetime.date(2026, 3, 5)].mrr) == (2, Decimal("20.00"))
    assert (series[datetime.date(2026, 3, 8)].active, series[datetime.date(2026, 3, 8)].mrr) == (3, Decimal("30.00"))
    # D's GBP 8.32 net of VAT is USD 10.77; G's refunded payment bought no period.
    assert (series[MARCH_31].active, series[MARCH_31].mrr) == (4, Decimal("40.77"))
    assert series[MARCH_31].by_currency == {"GBP": Decimal("8.32"), "USD": Decimal("30.00")}


def test_segments_sum_to_the_total(history):
    for point in mrr_series(start=MARCH_1, end=MARCH_31, segment="provider", currency="USD"):
        assert sum(count for count, _ in point.by_segment.values()) == point.active
        assert sum(mrr for _, mrr in point.by_segment.values()) == point.mrr
    last = mrr_series(start=MARCH_31, end=MARCH_31, segment="provider", currency="USD")[0]
    assert last.by_segment == {"stripe": (3, Decimal("30.00")), "app_store": (1, Decimal("10.77"))}


def test_a_missing_rate_says_so_instead_of_a_wrong_total(history):
    ExchangeRate.objects.filter(currency="GBP").delete()
    last = mrr_series(start=MARCH_31, end=MARCH_31, currency="USD")[0]
    assert last.mrr is None and last.missing_rates == {"GBP"}
    assert last.by_currency["GBP"] == Decimal("8.32")


def test_mrr_movement_over_march(history):
    usd = {m.day: m for m in mrr_movement(start=MARCH_1, end=MARCH_31) if m.currency == "USD"}
    assert usd[datetime.date(2026, 3, 8)].new == Decimal("10.00")  # E's first payment
    eur = {m.day: m for m in mrr_movement(start=MARCH_1, end=MARCH_31) if m.currency == "EUR"}
    assert eur[datetime.date(2026, 3, 5)].churn == Decimal("10.00")  # C lapsed
    assert (eur[datetime.date(2026, 3, 5)].start, eur[datetime.date(2026, 3, 5)].end) == (Decimal("10.00"), 0)


def test_churn_over_march(history):
    result = churn(start=MARCH_1, end=MARCH_31)
    assert (result.active_at_start, result.churned) == (3, 1)  # C did not renew
    assert result.rate == Decimal(1) / 3


def test_trial_conversion_over_march(history):
    result = trial_conversion(start=MARCH_1, end=MARCH_31)
    assert (result.ended, result.converted, result.started) == (2, 1, 2)
    # A trial ending after the refresh is not counted yet.
    rebuild(at=noon(3, 8, 2026))
    assert trial_conversion(start=MARCH_1, end=MARCH_31).ended == 1


def test_retention_cohorts(history):
    cohorts = {c.month: c for c in retention_cohorts(start=datetime.date(2025, 6, 1), end=MARCH_31, months=3)}
    assert set(cohorts) == {datetime.date(2025, 6, 1), datetime.date(2026, 2, 1), datetime.date(2026, 3, 1)}
    february = cohorts[datetime.date(2026, 2, 1)]
    assert (february.size, february.retained) == (2, [2, 1])  # A renewed, C did not; month 2 not reached yet
    assert (cohorts[datetime.date(2026, 3, 1)].size, cohorts[datetime.date(2026, 3, 1)].retained) == (2, [2])
    assert cohorts[datetime.date(2025, 6, 1)].retained == [1, 1, 1, 1]  # the annual plan covers its year


def test_revenue_by_provider_and_currency(history):
    rows = {(r.provider, r.currency): r for r in revenue_by_provider_currency(start=MARCH_1, end=MARCH_31, to="USD")}
    stripe = rows[("stripe", "USD")]
    assert (stripe.payments, stripe.gross, stripe.refunds, stripe.proceeds) == (
        3,
        Decimal("30.00"),
        Decimal("10.00"),
        Decimal("20.00"),
    )
    store = rows[("app_store", "GBP")]
    assert (store.gross, store.commission, store.tax, store.proceeds) == (
        Decimal("9.99"),
        Decimal("2.50"),
        Decimal("1.67"),
        Decimal("5.82"),
    )
    assert store.reporting["proceeds"] == Decimal("7.53")  # 5.82 GBP at 1.10 / 0.85
    assert ("stripe", "EUR") not in rows  # C paid in February
    # The ledger agrees: revenue recognized net of tax, less the refund.
    assert recognized_revenue(start=MARCH_1, end=MARCH_31) == {"GBP": Decimal("8.32"), "USD": Decimal("20.00")}


def test_finance_page_for_finance_only(history, client, make_staff):
    client.force_login(make_staff("Finance"))
    response = client.get("/admin/subscriptions/subscription/finance/", {"start": "2026-03-01", "end": "2026-03-31"})
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="churn-rate">33.3%' in body and 'id="trial-rate">50.0%' in body
    assert "<svg" in body and "MRR (USD)" in body and "40.77" in body
    assert 'id="movement"' in body
    assert client.get("/admin/subscriptions/subscription/finance/", {"segment": "plan"}).status_code == 200
    reversed_range = client.get(
        "/admin/subscriptions/subscription/finance/", {"start": "2026-03-31", "end": "2026-03-01"}
    )
    assert reversed_range.status_code == 400 and "starts after it ends" in reversed_range.content.decode()
    client.force_login(make_staff("Support"))
    assert client.get("/admin/subscriptions/subscription/finance/").status_code == 403
