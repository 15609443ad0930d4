"""Support console speed: the customer page with 1,000 timeline events, and admin lists over 1,000,000 rows.

Measured in-process with the Django test Client logged in as a superuser
(no network, no gunicorn): what the admin itself costs. Data is generated in
the bench database with INSERT ... SELECT generate_series, once (re-runs reuse it).
Targets: customer page <= 150 ms median; list page 1 and exact-id search <= 100 ms median.
Each page also reports its query count and this process's median CPU time per request (``*_cpu_ms``),
with the load average at the start and the end: on a shared machine compare runs by those.
"""

from __future__ import annotations

import os
import statistics
import time

N_ROWS = 1_000_000
N_EVENTS = 1_000
REPEAT = 15


def _migrate():
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _table_rows(table: str) -> int:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT %s) t", [N_ROWS])
        return cur.fetchone()[0]


def _generate(n_rows: int) -> dict:
    """Customers, subscriptions and payments: n_rows each, set-based."""
    from django.db import connection, transaction

    from subscriptions.models import Plan, Product

    made = {}
    product, _ = Product.objects.get_or_create(code="bench-premium", defaults={"name": "Bench Premium"})
    plan, _ = Plan.objects.get_or_create(code="bench-premium-month", defaults={"product": product, "interval": "month"})
    with transaction.atomic(), connection.cursor() as cur:
        if _table_rows("monetization_customer") < n_rows:
            t = time.perf_counter()
            cur.execute(
                """
                INSERT INTO monetization_customer (external_id, handle, email, country, created_at)
                SELECT 'b' || g, 'bench' || g, 'bench' || g || '@example.com', 'US', now() - (g || ' seconds')::interval
                FROM generate_series(1, %s) g
                ON CONFLICT DO NOTHING
                """,
                [n_rows],
            )
            made["customers_s"] = round(time.perf_counter() - t, 1)
        if _table_rows("subscriptions_subscription") < n_rows:
            t = time.perf_counter()
            cur.execute(
                """
                INSERT INTO subscriptions_subscription
                  (customer_id, plan_id, platform, provider, provider_subscription_id, state, current_period_start,
                   current_period_end, auto_renew, cancel_reason, quantity, started_at, created_at, updated_at)
                SELECT c.id, %s, 'web', 'stripe', 'sub_bench_' || g,
                       (ARRAY['active','canceled','expired','in_grace_period','on_hold'])[1 + g %% 5],
                       now() - interval '10 days', now() + interval '20 days', true, '', 1, now(), now(), now()
                FROM generate_series(1, %s) g JOIN monetization_customer c ON c.external_id = 'b' || g
                ON CONFLICT DO NOTHING
                """,
                [plan.pk, n_rows],
            )
            made["subscriptions_s"] = round(time.perf_counter() - t, 1)
        if _table_rows("monetization_payment") < n_rows:
            t = time.perf_counter()
            cur.execute(
                """
                INSERT INTO monetization_payment
                  (customer_id, provider, provider_reference, kind, amount, amount_currency, fee, fee_currency,
                   tax, tax_currency, commission, commission_currency, refunded, refunded_currency, status,
                   failure_code, occurred_at, created_at)
                SELECT c.id, 'stripe', 'in_bench_' || g, 'renewal', 8, 'USD', 0.53, 'USD', 0, 'USD', 0, 'USD', 0, 'USD',
                       'succeeded', '', now() - (g || ' seconds')::interval, now()
                FROM generate_series(1, %s) g JOIN monetization_customer c ON c.external_id = 'b' || g
                ON CONFLICT DO NOTHING
                """,
                [n_rows],
            )
            made["payments_s"] = round(time.perf_counter() - t, 1)
        for table in ("monetization_customer", "subscriptions_subscription", "monetization_payment"):
            cur.execute(f"ANALYZE {table}")
    return made


def _customer_with_history(n_events: int):
    from djmoney.money import Money

    from monetization import clock
    from monetization.models import AuditEvent, Customer, ProviderIdentity
    from monetization.services.payments import payment_record

    customer, created = Customer.objects.get_or_create(
        external_id="bench-support-1", defaults={"handle": "benchsupport", "email": "benchsupport@example.com"}
    )
    if created:
        ProviderIdentity.objects.create(
            customer=customer, provider="stripe", kind="customer_id", value="cus_benchsupport"
        )
        for i in range(20):
            payment_record(
                customer=customer, provider="stripe", provider_reference=f"in_support_{i}", amount=Money(8, "USD")
            )
    have = AuditEvent.objects.filter(customer=customer).count()
    if have < n_events:
        import datetime

        now = clock.now()
        AuditEvent.objects.bulk_create(
            AuditEvent(
                customer=customer,
                occurred_at=now - datetime.timedelta(minutes=i),
                actor_kind="provider",
                actor_label=f"stripe:evt_{i}",
                action="subscription.renew",
                object_type="subscriptions.subscription",
                object_id="1",
                before={"state": "active"},
                after={"state": "active"},
                reason="invoice.paid",
            )
            for i in range(n_events - have)
        )
    return customer


def _time(client, url, params=None, repeat=REPEAT) -> tuple[float, int, float]:
    """Median wall ms, the query count, and median CPU ms of this process (the whole Django stack runs in it;
    on a shared, loaded machine CPU time moves far less than wall time, which waits for a core)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url, params)  # warm up
    samples, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        response = client.get(url, params)
        cpu.append((time.process_time() - c) * 1000)
        samples.append((time.perf_counter() - t) * 1000)
        assert response.status_code in (200, 302), (url, response.status_code)
    with CaptureQueriesContext(connection) as ctx:
        client.get(url, params)
    return round(statistics.median(samples), 1), len(ctx.captured_queries), round(statistics.median(cpu), 1)


def _ensure_admins():
    """Fallback list admins for models nobody registered (the project's own admins win)."""
    from django.contrib import admin

    from monetization.changelist import LargeTableAdmin
    from monetization.models import Payment
    from subscriptions.models import Subscription

    fallbacks = []
    for model, fields in ((Subscription, ()), (Payment, ())):
        if model not in admin.site._registry:

            class Fallback(LargeTableAdmin):
                list_display = ("id", "customer", "__str__")
                list_select_related = ("customer",)
                exact_search_fields = fields

            if model is Subscription:
                Fallback.list_select_related = ("customer", "plan")
            admin.site.register(model, Fallback)
            fallbacks.append(model._meta.label)
    return fallbacks


def run(args) -> dict:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    settings.ALLOWED_HOSTS = ["*"]
    settings.DEBUG = False
    _migrate()
    fallbacks = _ensure_admins()
    n_rows = 20_000 if args.quick else N_ROWS
    result: dict = {"rows_per_table": n_rows, "fallback_admins": fallbacks}
    result.update(_generate(n_rows))
    customer = _customer_with_history(N_EVENTS)
    User = get_user_model()
    user, _ = User.objects.get_or_create(username="bench-admin", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)

    result["load_average_at_start"] = os.getloadavg()[0]
    ms, queries, cpu = _time(client, f"/admin/monetization/customer/{customer.pk}/support/")
    result["customer_page_median_ms"] = ms
    result["customer_page_cpu_ms"] = cpu
    result["customer_page_queries"] = queries
    result["customer_page_target_ms"] = 150
    ms, queries, cpu = _time(client, "/admin/monetization/customer/find/", {"q": "in_support_3"})
    result["front_search_provider_id_median_ms"] = ms
    result["front_search_provider_id_cpu_ms"] = cpu
    result["front_search_provider_id_queries"] = queries

    from monetization.models import Customer, Payment
    from subscriptions.models import Subscription

    mid = n_rows // 2
    some_customer = Customer.objects.get(external_id=f"b{mid}")
    some_sub = Subscription.objects.get(provider="stripe", provider_subscription_id=f"sub_bench_{mid}")
    some_payment = Payment.objects.get(provider="stripe", provider_reference=f"in_bench_{mid}")
    lists = {
        "customers": ("/admin/monetization/customer/", some_customer.external_id),
        "subscriptions": ("/admin/subscriptions/subscription/", str(some_sub.pk)),
        "payments": ("/admin/monetization/payment/", str(some_payment.pk)),
    }
    for name, (url, term) in lists.items():
        ms, queries, cpu = _time(client, url)
        result[f"{name}_list_page1_median_ms"] = ms
        result[f"{name}_list_page1_cpu_ms"] = cpu
        result[f"{name}_list_page1_queries"] = queries
        ms, queries, cpu = _time(client, url, {"q": term})
        result[f"{name}_exact_id_search_median_ms"] = ms
        result[f"{name}_exact_id_search_cpu_ms"] = cpu
        result[f"{name}_exact_id_search_queries"] = queries
    result["list_target_ms"] = 100
    result["load_average_at_end"] = os.getloadavg()[0]
    return result
