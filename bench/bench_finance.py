"""Finance's daily snapshots: refresh, rebuild, and the page that reads them.

Data: N subscriptions (monthly, USD/EUR, a quarter of them stopping after a random number of
months), each paid monthly over the last year: 12 x N payments, made set-based once (re-runs
reuse them). Measured in-process:

- the full rebuild of the snapshots over the whole history (``finance_snapshots_refresh``, what
  ``rebuild_finance_snapshots`` runs);
- refreshing one day (metrics and revenue; what beat does per day) beside one raw aggregate over
  that day's payments, the floor any figure costs (target: at most 3x);
- the beat run (today, yesterday, retention cells);
- the Finance page over 30 and 90 days, and the staff metrics API, with the Django test Client as a
  Finance superuser (target: 200 ms).
"""

from __future__ import annotations

import datetime
import statistics
import time

N_SUBSCRIPTIONS = 100_000
REPEAT = 7


def _generate(n: int) -> dict:
    from django.db import connection, transaction

    from monetization.models import ExchangeRate
    from subscriptions.models import Plan, Product

    made = {}
    product, _ = Product.objects.get_or_create(code="bench-finance", defaults={"name": "Bench Finance"})
    plan, _ = Plan.objects.get_or_create(code="bench-finance-month", defaults={"product": product, "interval": "month"})
    today = datetime.date.today()
    for offset in range(-400, 2):
        ExchangeRate.objects.get_or_create(
            day=today + datetime.timedelta(days=offset), base="EUR", currency="USD", defaults={"rate": "1.10"}
        )
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM subscriptions_subscription WHERE provider_subscription_id LIKE 'sub_fin_%%'", []
        )
        if cur.fetchone()[0] < n:
            t = time.perf_counter()
            cur.execute(
                """
                INSERT INTO monetization_customer (external_id, handle, email, country, created_at)
                SELECT 'fin' || g, 'fin' || g, '', (ARRAY['US','GB','DE','JP'])[1 + g %% 4], now()
                FROM generate_series(1, %s) g ON CONFLICT DO NOTHING
                """,
                [n],
            )
            cur.execute(
                """
                INSERT INTO subscriptions_subscription
                  (customer_id, plan_id, platform, provider, provider_subscription_id, state, auto_renew,
                   cancel_reason, quantity, started_at, trial_end, created_at, updated_at)
                SELECT c.id, %s, 'web', 'stripe', 'sub_fin_' || g, 'active', true, '', 1,
                       now() - interval '365 days' - (g %% 97 || ' hours')::interval,
                       CASE WHEN g %% 5 = 0 THEN now() - interval '358 days' END, now(), now()
                FROM generate_series(1, %s) g JOIN monetization_customer c ON c.external_id = 'fin' || g
                ON CONFLICT DO NOTHING
                """,
                [plan.pk, n],
            )
            cur.execute(
                """
                INSERT INTO monetization_payment
                  (customer_id, provider, provider_reference, kind, amount, amount_currency, fee, fee_currency,
                   tax, tax_currency, commission, commission_currency, refunded, refunded_currency, status,
                   failure_code, occurred_at, created_at)
                SELECT s.customer_id, 'stripe', 'in_fin_' || s.id || '_' || m,
                       CASE WHEN m = 0 THEN 'initial' ELSE 'renewal' END,
                       (ARRAY[3, 8, 22])[1 + s.id %% 3], CASE WHEN s.id %% 4 = 0 THEN 'EUR' ELSE 'USD' END,
                       0.5, CASE WHEN s.id %% 4 = 0 THEN 'EUR' ELSE 'USD' END,
                       0, CASE WHEN s.id %% 4 = 0 THEN 'EUR' ELSE 'USD' END,
                       0, CASE WHEN s.id %% 4 = 0 THEN 'EUR' ELSE 'USD' END,
                       0, CASE WHEN s.id %% 4 = 0 THEN 'EUR' ELSE 'USD' END,
                       'succeeded', '', s.started_at + make_interval(months => m), now()
                FROM subscriptions_subscription s CROSS JOIN generate_series(0, 11) m
                WHERE s.provider_subscription_id LIKE 'sub_fin_%%'
                  AND (s.id %% 4 <> 1 OR m < 3 + s.id %% 7)  -- a quarter churn after a few months
                ON CONFLICT DO NOTHING
                """,
                [],
            )
            cur.execute(
                """
                INSERT INTO subscriptions_subscriptionpayment (payment_id, subscription_id)
                SELECT p.id, split_part(p.provider_reference, '_', 3)::bigint FROM monetization_payment p
                WHERE p.provider_reference LIKE 'in\\_fin\\_%%'
                ON CONFLICT DO NOTHING
                """,
                [],
            )
            made["generate_s"] = round(time.perf_counter() - t, 1)
        for table in ("monetization_payment", "subscriptions_subscription", "subscriptions_subscriptionpayment"):
            cur.execute(f"ANALYZE {table}")
        cur.execute("SELECT count(*) FROM monetization_payment WHERE provider_reference LIKE 'in_fin_%%'", [])
        made["payments"] = cur.fetchone()[0]
    return made


def _median_ms(fn, repeat=REPEAT) -> float:
    fn()
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(samples), 1)


def run(args) -> dict:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from subscriptions.services.finance_snapshots import finance_snapshots_refresh, finance_snapshots_refresh_recent

    settings.ALLOWED_HOSTS = ["*"]
    settings.DEBUG = False
    call_command("migrate", verbosity=0)
    n = 10_000 if args.quick else N_SUBSCRIPTIONS
    result: dict = {"subscriptions": n}
    result.update(_generate(n))
    user, _ = get_user_model().objects.get_or_create(
        username="bench-finance", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    end = datetime.date.today()
    day = end - datetime.timedelta(days=1)
    start30, start90 = end - datetime.timedelta(days=29), end - datetime.timedelta(days=89)
    url = "/admin/subscriptions/subscription/finance/"

    with connection.cursor() as cur:
        cur.execute("SELECT min(occurred_at)::date FROM monetization_payment", [])
        first = cur.fetchone()[0]
    t = time.perf_counter()
    rebuilt = finance_snapshots_refresh(start=first, end=end)
    result["rebuild_days"] = rebuilt.days
    result["rebuild_rows"] = rebuilt.rows
    result["rebuild_s"] = round(time.perf_counter() - t, 2)
    with connection.cursor() as cur:
        for table in ("subscriptions_metricsday", "monetization_revenueday", "subscriptions_retentioncell"):
            cur.execute(f"ANALYZE {table}")

    def page(start):
        response = client.get(url, {"start": start.isoformat(), "end": end.isoformat()})
        assert response.status_code == 200, response.status_code

    def api(start):
        response = client.get("/api/v1/staff/metrics/mrr", {"start": start.isoformat(), "end": end.isoformat()})
        assert response.status_code == 200, response.status_code

    def raw_day():
        with connection.cursor() as cur:
            cur.execute(
                "SELECT amount_currency, sum(amount) FROM monetization_payment "
                "WHERE occurred_at >= %s AND occurred_at < %s GROUP BY 1",
                [day, end],
            )
            cur.fetchall()

    result["refresh_1d_median_ms"] = _median_ms(lambda: finance_snapshots_refresh(start=day, end=day, cohorts=False))
    result["raw_aggregate_1d_median_ms"] = _median_ms(raw_day)
    result["refresh_1d_over_raw"] = round(
        result["refresh_1d_median_ms"] / max(result["raw_aggregate_1d_median_ms"], 0.01), 2
    )
    result["refresh_1d_target_ratio"] = 3
    result["beat_refresh_median_ms"] = _median_ms(finance_snapshots_refresh_recent, repeat=3)
    result["finance_page_30d_median_ms"] = _median_ms(lambda: page(start30))
    result["finance_page_90d_median_ms"] = _median_ms(lambda: page(start90))
    result["staff_api_mrr_90d_median_ms"] = _median_ms(lambda: api(start90))
    result["finance_page_target_ms"] = 200
    return result
