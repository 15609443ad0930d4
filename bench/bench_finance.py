"""Finance page speed: MRR, churn, trials, cohorts and revenue computed live over the payments.

Data: N subscriptions (monthly, USD/EUR, a quarter of them stopping after a random number of
months), each paid monthly over the last year: 12 x N payments, made set-based once (re-runs
reuse them). Timed in-process with the Django test Client as a Finance superuser: the Finance
page over 30 and 90 days, and each selector alone; beside them one raw aggregate over a day of
payments, the floor any metric costs. Target (issue 16): the page in 200 ms.
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

    from monetization.selectors_finance import revenue_by_provider_currency
    from subscriptions.selectors_finance import churn, mrr_movement, mrr_series, retention_cohorts

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
    start30, start90 = end - datetime.timedelta(days=29), end - datetime.timedelta(days=89)
    url = "/admin/subscriptions/subscription/finance/"

    def page(start):
        response = client.get(url, {"start": start.isoformat(), "end": end.isoformat()})
        assert response.status_code == 200, response.status_code

    def raw_day():
        with connection.cursor() as cur:
            cur.execute(
                "SELECT amount_currency, sum(amount) FROM monetization_payment "
                "WHERE occurred_at >= %s AND occurred_at < %s GROUP BY 1",
                [end - datetime.timedelta(days=1), end],
            )
            cur.fetchall()

    result["finance_page_30d_median_ms"] = _median_ms(lambda: page(start30))
    result["finance_page_90d_median_ms"] = _median_ms(lambda: page(start90), repeat=3)
    result["finance_page_target_ms"] = 200
    result["mrr_series_30d_ms"] = _median_ms(lambda: mrr_series(start=start30, end=end))
    result["mrr_series_1d_ms"] = _median_ms(lambda: mrr_series(start=end, end=end))
    result["mrr_movement_30d_ms"] = _median_ms(lambda: mrr_movement(start=start30, end=end))
    result["churn_30d_ms"] = _median_ms(lambda: churn(start=start30, end=end))
    result["cohorts_12m_ms"] = _median_ms(
        lambda: retention_cohorts(
            start=end - datetime.timedelta(days=365), end=end, months=6, now=datetime.datetime.now(datetime.UTC)
        )
    )
    result["revenue_30d_ms"] = _median_ms(lambda: revenue_by_provider_currency(start=start30, end=end, to="USD"))
    result["raw_aggregate_1d_ms"] = _median_ms(raw_day)
    return result
