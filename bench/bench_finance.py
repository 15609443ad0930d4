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
import os
import statistics
import sys
import time

# Issue 16's full size: 1M subscriptions paying monthly over two years (about 10M payments) and 5M
# state changes (the audited subscription transitions). --quick: 10,000 subscriptions, 50,000 changes.
# A mid size: BENCH_FINANCE_SUBSCRIPTIONS / BENCH_FINANCE_STATE_CHANGES (use a database of its own:
# the generated rows are reused by the next run of the same size only).
N_SUBSCRIPTIONS = int(os.environ.get("BENCH_FINANCE_SUBSCRIPTIONS", 1_000_000))
N_STATE_CHANGES = int(os.environ.get("BENCH_FINANCE_STATE_CHANGES", 5_000_000))
HISTORY_DAYS = 730
CHUNK = 50_000  # subscriptions a transaction: a re-run after an interruption resumes at the first missing chunk
REPEAT = 7
PAGE_REPEAT = 40  # enough for a p95


def _progress(label: str, done: int, total: int, started: float) -> None:
    print(f"  {label}: {done:,}/{total:,}  {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)


def _generate(n: int, changes: int) -> dict:
    """Customers, subscriptions, their monthly payments and state changes, set-based, ``CHUNK`` a transaction.

    Subscription ``g`` starts ``g % 730`` days ago and pays every month since; a quarter of them
    stop after 3 to 9 payments. Rows are named after ``g`` (``sub_fin_<g>``, ``in_fin_<g>_<month>``),
    so a chunk already there is skipped and a re-run reuses the data.
    """
    from django.db import connection, transaction

    from monetization.models import ExchangeRate
    from subscriptions.models import Plan, Product

    made: dict = {}
    plans = []
    for code in ("bench-finance", "bench-finance-pro"):
        product, _ = Product.objects.get_or_create(code=code, defaults={"name": code})
        plan, _ = Plan.objects.get_or_create(code=f"{code}-month", defaults={"product": product, "interval": "month"})
        plans.append(plan.pk)
    today = datetime.date.today()
    ExchangeRate.objects.bulk_create(
        [
            ExchangeRate(day=today + datetime.timedelta(days=offset), base="EUR", currency="USD", rate="1.10")
            for offset in range(-HISTORY_DAYS - 40, 2)
        ],
        ignore_conflicts=True,
    )
    started = time.perf_counter()
    for first in range(1, n + 1, CHUNK):
        last = min(n, first + CHUNK - 1)
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("SELECT 1 FROM monetization_customer WHERE external_id = %s", [f"fin{last}"])
            if cur.fetchone():
                continue
            # Generated rows are consistent by construction: skip the per-row foreign key triggers
            # (millions of deferred checks) for this transaction only.
            cur.execute("SET LOCAL session_replication_role = replica")
            cur.execute(
                """
                INSERT INTO monetization_customer (external_id, handle, email, country, created_at)
                SELECT 'fin' || g, 'fin' || g, '', (ARRAY['US','GB','DE','JP','FR','BR'])[1 + g %% 6], now()
                FROM generate_series(%s, %s) g
                """,
                [first, last],
            )
            cur.execute(
                """
                INSERT INTO subscriptions_subscription
                  (customer_id, plan_id, platform, provider, provider_subscription_id, state, auto_renew,
                   cancel_reason, quantity, started_at, trial_end, created_at, updated_at)
                SELECT c.id, (%s::bigint[])[1 + g %% 2], (ARRAY['web','ios','android'])[1 + g %% 3],
                       (ARRAY['stripe','app_store','google_play'])[1 + g %% 3], 'sub_fin_' || g,
                       CASE WHEN g %% 4 = 1 THEN 'expired' ELSE 'active' END, g %% 4 <> 1, '', 1,
                       now() - make_interval(days => g %% %s, hours => g %% 97),
                       CASE WHEN g %% 5 = 0 THEN now() - make_interval(days => g %% %s - 7) END, now(), now()
                FROM generate_series(%s, %s) g JOIN monetization_customer c ON c.external_id = 'fin' || g
                """,
                [plans, HISTORY_DAYS, HISTORY_DAYS, first, last],
            )
            cur.execute(
                """
                WITH made AS (
                    INSERT INTO monetization_payment
                      (customer_id, provider, provider_reference, kind, amount, amount_currency, fee, fee_currency,
                       tax, tax_currency, commission, commission_currency, refunded, refunded_currency, status,
                       failure_code, occurred_at, created_at)
                    SELECT s.customer_id, s.provider, 'in_fin_' || s.id || '_' || m,
                           CASE WHEN m = 0 THEN 'initial' ELSE 'renewal' END,
                           (ARRAY[3, 8, 22])[1 + s.id %% 3], cur, 0.5, cur, 0, cur,
                           CASE WHEN s.provider = 'stripe' THEN 0 ELSE 0.45 END, cur, 0, cur,
                           'succeeded', '', s.started_at + make_interval(months => m), now()
                    FROM subscriptions_subscription s
                    CROSS JOIN LATERAL (SELECT CASE WHEN s.id %% 4 = 0 THEN 'EUR' ELSE 'USD' END) AS x(cur)
                    CROSS JOIN LATERAL generate_series(
                        0, (CASE WHEN s.state = 'expired' THEN 2 + s.id %% 7 ELSE 24 END)::int) m
                    WHERE s.provider_subscription_id IN (SELECT 'sub_fin_' || g FROM generate_series(%s, %s) g)
                      AND s.started_at + make_interval(months => m) < now()
                    RETURNING id, provider_reference
                )
                INSERT INTO subscriptions_subscriptionpayment (payment_id, subscription_id)
                SELECT id, split_part(provider_reference, '_', 3)::bigint FROM made
                """,
                [first, last],
            )
        _progress("subscriptions and payments", last, n, started)
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM monetization_auditevent WHERE action LIKE 'subscription.bench_%%'", [])
        have = cur.fetchone()[0]
    per = CHUNK * 5
    for first in range(have + 1, changes + 1, per):
        last = min(changes, first + per - 1)
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("SET LOCAL session_replication_role = replica")
            cur.execute(
                """
                INSERT INTO monetization_auditevent
                  (occurred_at, actor_kind, actor_label, action, object_type, object_id, customer_id, before,
                   after, reason, request_id)
                SELECT s.started_at + make_interval(days => k %% 700), 'provider', 'evt_fin_' || k,
                       (ARRAY['subscription.bench_renew','subscription.bench_pause','subscription.bench_resume',
                              'subscription.bench_cancel','subscription.bench_expire'])[1 + k %% 5],
                       'subscriptions.subscription', s.id::text, s.customer_id,
                       '{"state": "active"}'::jsonb, '{"state": "active"}'::jsonb, '', ''
                FROM generate_series(%s, %s) k
                JOIN subscriptions_subscription s ON s.provider_subscription_id = 'sub_fin_' || (1 + k %% %s)
                """,
                [first, last, n],
            )
        _progress("state changes", last, changes, started)
    made["generate_s"] = round(time.perf_counter() - started, 1)
    with connection.cursor() as cur:
        for table in (
            "monetization_customer",
            "monetization_payment",
            "subscriptions_subscription",
            "subscriptions_subscriptionpayment",
            "monetization_auditevent",
        ):
            cur.execute(f"ANALYZE {table}")
        cur.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'monetization_payment'", [])
        made["payments"] = cur.fetchone()[0]
        cur.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'monetization_auditevent'", [])
        made["audit_events"] = cur.fetchone()[0]
    return made


def _note(result: dict, *keys: str) -> None:
    """A figure as soon as it is measured: a full-size run takes long enough to want them as they come."""
    print("  " + ", ".join(f"{k}={result[k]}" for k in keys), file=sys.stderr, flush=True)


def _samples_ms(fn, repeat=REPEAT) -> list[float]:
    fn()
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return samples


def _median_ms(fn, repeat=REPEAT) -> float:
    return round(statistics.median(_samples_ms(fn, repeat)), 1)


def _rebuild(result: dict, end: datetime.date) -> None:
    """The two-year rebuild, through the command Finance runs (its progress lines go to stderr)."""
    import io

    from django.core.management import call_command

    out = io.StringIO()
    t = time.perf_counter()
    call_command("rebuild_finance_snapshots", "--end", end.isoformat(), stdout=out)
    result["rebuild_s"] = round(time.perf_counter() - t, 1)
    result["rebuild_summary"] = out.getvalue().strip().splitlines()[-1]


def run(args) -> dict:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from monetization.roles import FINANCE
    from subscriptions.models import MetricsDay
    from subscriptions.selectors_finance import PAID, PERIOD_KINDS
    from subscriptions.services.finance_snapshots import finance_snapshots_refresh, finance_snapshots_refresh_recent

    settings.ALLOWED_HOSTS = ["*"]
    settings.DEBUG = False
    call_command("migrate", verbosity=0)
    n = 10_000 if args.quick else N_SUBSCRIPTIONS
    result: dict = {"subscriptions": n}
    result.update(_generate(n, 50_000 if args.quick else N_STATE_CHANGES))
    user, _ = get_user_model().objects.get_or_create(username="bench-finance-staff", defaults={"is_staff": True})
    user.groups.add(Group.objects.get(name=FINANCE))
    client = Client()
    client.force_login(user)
    end = datetime.date.today()
    day = end - datetime.timedelta(days=1)
    start30, start90 = end - datetime.timedelta(days=29), end - datetime.timedelta(days=89)
    url = "/admin/subscriptions/subscription/finance/"

    # The rebuild (730 days at full size) runs on the first run, or when BENCH_FINANCE_REBUILD=1;
    # otherwise the page's 90 days are refreshed (and timed) so that re-runs stay cheap, or, with
    # BENCH_FINANCE_REBUILD=0, the snapshots already there are read as they are.
    rebuild = os.environ.get("BENCH_FINANCE_REBUILD")
    if rebuild == "1" or (rebuild != "0" and not MetricsDay.objects.exists()):
        _rebuild(result, end)
    elif rebuild != "0":
        t = time.perf_counter()
        finance_snapshots_refresh(start=start90, end=end, cohorts=args.quick)  # cohorts read every payment
        result["refresh_90d_s"] = round(time.perf_counter() - t, 1)
        _note(result, "refresh_90d_s")
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

    def raw_active_day():
        # The day's active subscriptions and MRR straight from the payments (what the page computed
        # live before the snapshots): the periods covering the end of the day, summed per currency.
        with connection.cursor() as cur:
            cur.execute(
                """
                SELECT p.amount_currency, count(DISTINCT sp.subscription_id), sum(p.amount - p.tax)
                FROM monetization_payment p
                JOIN subscriptions_subscriptionpayment sp ON sp.payment_id = p.id
                JOIN subscriptions_subscription s ON s.id = sp.subscription_id
                JOIN subscriptions_plan pl ON pl.id = s.plan_id
                WHERE p.status = ANY(%s) AND p.kind = ANY(%s) AND p.occurred_at < %s
                  AND p.occurred_at >= %s::timestamptz - interval '1 month'
                  AND p.occurred_at + make_interval(months => pl.interval_count) > %s
                GROUP BY 1
                """,
                [[str(x) for x in PAID], [str(x) for x in PERIOD_KINDS], end, end, end],
            )
            cur.fetchall()

    for days, start in ((30, start30), (90, start90)):
        cpu = time.process_time()
        samples = _samples_ms(lambda start=start: page(start), repeat=PAGE_REPEAT)
        result[f"finance_page_{days}d_median_ms"] = round(statistics.median(samples), 1)
        result[f"finance_page_{days}d_p95_ms"] = round(statistics.quantiles(samples, n=20)[-1], 1)
        # The web process's own CPU per page (the wall clock also waits for a loaded machine's cores).
        result[f"finance_page_{days}d_cpu_ms"] = round((time.process_time() - cpu) * 1000 / (PAGE_REPEAT + 1), 1)
        _note(result, f"finance_page_{days}d_median_ms", f"finance_page_{days}d_p95_ms", f"finance_page_{days}d_cpu_ms")
    repeat = REPEAT if args.quick else 5
    # One day's refresh beside one raw aggregate over that day's payments, interleaved so that both
    # see the same machine. The day is yesterday; ``recarry=False`` leaves today uncarried (the beat
    # run below carries it again), so each sample is one day's work.
    refresh, raw = [], []
    finance_snapshots_refresh(start=day, end=day, cohorts=False, recarry=False)
    raw_day()
    for _ in range(repeat):
        t = time.perf_counter()
        finance_snapshots_refresh(start=day, end=day, cohorts=False, recarry=False)
        refresh.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        raw_day()
        raw.append((time.perf_counter() - t) * 1000)
    result["refresh_1d_median_ms"] = round(statistics.median(refresh), 1)
    result["raw_aggregate_1d_median_ms"] = round(statistics.median(raw), 1)
    result["refresh_1d_over_raw_each"] = [round(a / max(b, 0.01), 2) for a, b in zip(refresh, raw, strict=True)]
    _note(result, "refresh_1d_median_ms", "raw_aggregate_1d_median_ms", "refresh_1d_over_raw_each")
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM subscriptions_financestate WHERE since = %s OR until = %s", [day, day])
        result["state_rows_changed_1d"] = cur.fetchone()[0]
    result["raw_active_mrr_1d_median_ms"] = _median_ms(raw_active_day, 3)
    _note(result, "raw_active_mrr_1d_median_ms")
    result["refresh_1d_over_raw"] = round(
        result["refresh_1d_median_ms"] / max(result["raw_aggregate_1d_median_ms"], 0.01), 2
    )
    result["refresh_1d_over_raw_active_mrr"] = round(
        result["refresh_1d_median_ms"] / max(result["raw_active_mrr_1d_median_ms"], 0.01), 2
    )
    result["refresh_1d_target_ratio"] = 3
    t = time.perf_counter()
    finance_snapshots_refresh(start=end, end=end, cohorts=False)  # today again: the state carried to today
    result["refresh_today_ms"] = round((time.perf_counter() - t) * 1000, 1)
    if args.quick:  # the beat run recomputes the retention cells over every payment: not at full size
        result["beat_refresh_median_ms"] = _median_ms(finance_snapshots_refresh_recent, repeat=3)
    result["staff_api_mrr_90d_median_ms"] = _median_ms(lambda: api(start90))
    result["finance_page_target_ms"] = 200
    return result
