"""The lifecycle sweep over 1,000,000 lapsed subscriptions vs one raw SQL UPDATE of the same rows.

Target: the sweep, state history and cache invalidation included,
takes <= 3x the time of one bare ``UPDATE`` that moves the same rows.

Data: N subscriptions (a third each on the App Store, Google Play and Stripe)
whose period ended 3 hours ago, over N/5 customers, generated with
``INSERT ... SELECT generate_series``. The baseline UPDATE runs in a
transaction that is rolled back (then VACUUM), so both runs see the same rows.

``BENCH_SWEEP_ROWS`` sets the size (default 1,000,000; ``--quick`` 20,000) and ``BENCH_SWEEP_ROUNDS``
the rounds (default 2), each a raw UPDATE then the sweep: the ratio is over all rounds, and per round.

Destructive: TRUNCATEs the subscriptions, payments, dunning and audit tables
of the database in DATABASE_URL. Point it at a benchmark database only.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction

from monetization import clock


def _sql(statement: str, params=None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


def _build(n: int, now) -> None:
    customers = max(1, n // 5)
    _sql(
        "TRUNCATE subscriptions_dunningattempt, monetization_payment, subscriptions_subscription, "
        "monetization_auditevent RESTART IDENTITY CASCADE"
    )
    _sql(
        """
        INSERT INTO monetization_customer (external_id, handle, email, country, created_at)
        SELECT 'bench-' || g, 'bench' || g, '', 'US', %s FROM generate_series(1, %s) g
        ON CONFLICT (external_id) DO NOTHING
        """,
        [now, customers],
    )
    _sql(
        """
        INSERT INTO subscriptions_product (code, name, kind, description, rank, is_active)
        VALUES ('bench-premium', 'Bench Premium', 'consumer', '', 1, true) ON CONFLICT (code) DO NOTHING
        """
    )
    _sql(
        """
        INSERT INTO subscriptions_plan (product_id, code, interval, interval_count, trial_days, is_active)
        SELECT id, 'bench-premium-monthly', 'month', 1, 0, true FROM subscriptions_product WHERE code = 'bench-premium'
        ON CONFLICT (code) DO NOTHING
        """
    )
    lapse = now - timedelta(hours=3)  # past every platform's renewal leeway, before any dunning retry is due
    _sql(
        """
        INSERT INTO subscriptions_subscription (
            customer_id, plan_id, platform, provider, provider_subscription_id, state,
            current_period_start, current_period_end, auto_renew, cancel_reason, quantity,
            started_at, created_at, updated_at)
        SELECT c.ids[1 + g %% cardinality(c.ids)],
               (SELECT id FROM subscriptions_plan WHERE code = 'bench-premium-monthly'),
               (ARRAY['ios', 'android', 'web'])[1 + g %% 3],
               (ARRAY['app_store', 'google_play', 'stripe'])[1 + g %% 3],
               'bench-sub-' || g, 'active',
               %(lapse)s - interval '1 month', %(lapse)s, true, '', 1,
               %(lapse)s - interval '1 month', %(now)s, %(now)s
        FROM generate_series(1, %(n)s) g,
             (SELECT array_agg(id ORDER BY id) AS ids FROM monetization_customer WHERE external_id LIKE 'bench-%%') c
        """,
        {"lapse": lapse, "now": now, "n": n},
    )


def _vacuum() -> None:
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE subscriptions_subscription")
        cursor.execute("VACUUM ANALYZE monetization_auditevent")
        cursor.execute("VACUUM ANALYZE monetization_customer")


def _raw_update(now) -> tuple[float, int]:
    """The floor: one committed statement moving the same rows; no history, no locking protocol, no cache."""
    started = time.perf_counter()
    with transaction.atomic():
        moved = _sql(
            """
            UPDATE subscriptions_subscription
            SET state = CASE provider WHEN 'stripe' THEN 'on_hold' ELSE 'in_grace_period' END,
                grace_end = CASE provider
                    WHEN 'app_store' THEN current_period_end + interval '16 days'
                    WHEN 'google_play' THEN current_period_end + interval '7 days' END,
                hold_end = CASE provider WHEN 'stripe' THEN current_period_end + interval '14 days' END,
                billing_issue_at = current_period_end,
                updated_at = %s
            WHERE state = 'active' AND auto_renew AND current_period_end <= %s
            """,
            [now, now],
        )
    return time.perf_counter() - started, moved


def _reset() -> None:
    """Put the rows back as they were before the baseline (untimed)."""
    _sql(
        "UPDATE subscriptions_subscription SET state = 'active', grace_end = NULL, hold_end = NULL, "
        "billing_issue_at = NULL WHERE provider_subscription_id LIKE 'bench-sub-%%'",
        [],
    )


def _reset_after_sweep() -> None:
    """Undo a sweep (untimed): the rows back to active, its history, events and invalidations gone."""
    _reset()
    _sql(
        "TRUNCATE monetization_auditevent, monetization_outboxevent, monetization_eventdelivery, "
        "monetization_cacheinvalidation, subscriptions_dunningattempt RESTART IDENTITY CASCADE"
    )


def run(args) -> dict:
    from monetization.models import AuditEvent
    from subscriptions.services.sweep import lifecycle_sweep

    call_command("migrate", verbosity=0)
    n = int(os.environ.get("BENCH_SWEEP_ROWS") or (20_000 if getattr(args, "quick", False) else 1_000_000))
    rounds = int(os.environ.get("BENCH_SWEEP_ROUNDS", "2"))
    now = clock.now()
    started = time.perf_counter()
    _build(n, now)
    _vacuum()
    build_s = time.perf_counter() - started
    print(f"   built {n:,} lapsed subscriptions in {build_s:.1f}s", flush=True)

    # Rounds alternate the two sides, so a change in the machine's speed falls on both.
    raw_times, sweep_times, result, history = [], [], None, 0
    for round_ in range(1, rounds + 1):
        raw_s, raw_rows = _raw_update(now)
        _reset()
        _vacuum()
        started = time.perf_counter()
        result = lifecycle_sweep(now=now)
        sweep_s = time.perf_counter() - started
        history = AuditEvent.objects.filter(actor_label="task:lifecycle_sweep").count()
        raw_times.append(raw_s)
        sweep_times.append(sweep_s)
        print(
            f"   round {round_}: raw UPDATE {raw_rows:,} rows in {raw_s:.2f}s; sweep {result.total:,} transitions, "
            f"{history:,} history rows in {sweep_s:.2f}s: {sweep_s / raw_s:.2f}x",
            flush=True,
        )
        if round_ < rounds:
            _reset_after_sweep()
            _vacuum()
    raw_s, sweep_s = sum(raw_times), sum(sweep_times)
    return {
        "subscriptions": n,
        "rounds": rounds,
        "raw_update_rows": raw_rows,
        "raw_update_seconds": [round(t, 2) for t in raw_times],
        "raw_update_rows_per_s": round(raw_rows * rounds / raw_s),
        "sweep_transitions": result.total,
        "sweep_history_rows": history,
        "sweep_seconds": [round(t, 2) for t in sweep_times],
        "sweep_rows_per_s": round(result.total * rounds / sweep_s) if sweep_s else None,
        "ratio_per_round": [round(s / r, 2) for s, r in zip(sweep_times, raw_times, strict=True)],
        "ratio_sweep_to_raw": round(sweep_s / raw_s, 2),
        "target_ratio": "<= 3.0 (issue target for the speed work: <= 2.2)",
        "chunk_size": settings.SUBSCRIPTION_SWEEP_CHUNK,
    }
