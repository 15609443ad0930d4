"""Creator revenue sharing at scale.

- compute: a cycle over N creators and M engagement rows, with pools in three currencies and fan
  payments (half the creators, USD/EUR/GBP) a third of which are refunded (clawbacks), earnings +
  ledger entries written, vs one raw SQL aggregate of what the cycle reads (the engagement per creator and the
  fan payments net of refunds and disputes per creator and currency, at the compute's work_mem; target <= 3x,
  2x for issue 18); the ratio to the engagement aggregate alone (the baseline before 2026-12-01) is reported too;
- ingestion through the bulk path (JSON lines -> validation -> COPY -> upsert), target >= 50,000 rows/s;
- paying every payout through the fake payout provider (target <= 60 s for 100,000).

Full: 100,000 creators, 3,000,000 engagement rows (30 days each). ``--quick``: 10,000 / 300,000.
``BENCH_CREATORS=N`` sets another size. Data is generated with generate_series in the bench database
(DATABASE_URL).

The compute is timed in ``BENCH_COMPUTE_ROUNDS`` rounds (3), each right after its own raw aggregate, on a
fresh cycle of the same period: on a shared machine only ratios taken side by side mean anything, and the
median round's ratio is the figure.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

PERIOD = datetime.date(2026, 6, 1)
INGEST_MONTH = datetime.date(2026, 7, 1)


def _sql(cursor, sql, params=None):
    cursor.execute(sql, params or [])


def _setup(n_creators: int, days: int) -> None:
    from django.core.management import call_command
    from django.db import connection

    from creators.services.engagement import ensure_engagement_partitions

    call_command("migrate", verbosity=0)
    with connection.cursor() as c:
        _sql(
            c,
            "TRUNCATE creators_payouthold, creators_payout, creators_creatorearning,"
            " creators_revenuesharecycle, creators_dailyengagement, creators_eligibilitydecision,"
            " creators_creatorstats, creators_payoutprofile, creators_creatorsubscriptionshare,"
            " creators_creatorsubscriptionlink, creators_creatorclawback, creators_creatoraccount CASCADE",
        )
        _sql(
            c,
            """INSERT INTO monetization_customer (external_id, handle, email, country, created_at)
                   SELECT 'bench-creator-' || g, 'bc' || g, '', 'US', now() - interval '1 year'
                   FROM generate_series(1, %s) g ON CONFLICT (external_id) DO NOTHING""",
            [n_creators],
        )
        _sql(
            c,
            """INSERT INTO creators_creatoraccount (customer_id, state, applied_at, state_changed_at, state_reason)
                   SELECT id, 'active', now(), now(), '' FROM monetization_customer
                   WHERE external_id LIKE 'bench-creator-%%' ORDER BY id LIMIT %s""",
            [n_creators],
        )
        _sql(
            c,
            """INSERT INTO creators_payoutprofile (creator_id, payout_account_id, tax_form_status, tax_form_type,
                   verified_at, requirements_due)
               SELECT id, 'acct_bench_' || id, 'verified', 'w9', now(), '[]' FROM creators_creatoraccount""",
        )
    ensure_engagement_partitions([(PERIOD.year, PERIOD.month), (INGEST_MONTH.year, INGEST_MONTH.month)])
    with connection.cursor() as c:
        # Skewed, deterministic engagement: a few big creators, a long tail.
        _sql(
            c,
            f"""INSERT INTO creators_dailyengagement (creator_id, day, source, impressions, replies, likes, reposts)
                   SELECT a.id, %s::date + d, 'premium',
                          (abs(hashint8(a.id * 31 + d)) %% 1000) * (1 + (a.id %% 97 = 0)::int * 50),
                          abs(hashint8(a.id + d)) %% 20, abs(hashint8(a.id - d)) %% 50, abs(hashint8(a.id * d)) %% 10
                   FROM creators_creatoraccount a CROSS JOIN generate_series(0, {days - 1}) d""",
            [PERIOD],
        )
        # Fan payments in three currencies for half the creators (their share 97%), a third of them refunded.
        _sql(c, "DELETE FROM monetization_payment WHERE provider_reference LIKE 'bench-fan-%%'")
        _sql(
            c,
            """INSERT INTO monetization_payment (provider, provider_reference, kind, amount_currency, amount,
                   fee_currency, fee, tax_currency, tax, refunded_currency, refunded, commission_currency,
                   commission, status, failure_code, occurred_at, created_at, customer_id)
               SELECT 'stripe', 'bench-fan-' || a.id, 'renewal', cur, 20, cur, 0, cur, 0, cur, 0, cur, 0,
                      'succeeded', '',
                      %s::timestamptz, now(), a.customer_id
               FROM creators_creatoraccount a,
                    LATERAL (SELECT (ARRAY['USD','EUR','GBP'])[a.id %% 3 + 1] AS cur) c
               WHERE a.id %% 2 = 0""",
            [datetime.datetime(PERIOD.year, PERIOD.month, 10, tzinfo=datetime.UTC)],
        )
        _sql(
            c,
            """INSERT INTO creators_creatorsubscriptionshare (payment_id, creator_id, basis, amount, currency,
                   lifetime_basis_before, occurred_at)
               SELECT p.id, a.id, 20, 19.40, p.amount_currency, 0, p.occurred_at
               FROM monetization_payment p
               JOIN creators_creatoraccount a ON p.provider_reference = 'bench-fan-' || a.id""",
        )
        _sql(
            c,
            """INSERT INTO creators_creatorclawback (reference, kind, share_id, creator_id, payment_amount, amount,
                   currency, occurred_at)
               SELECT 'bench-refund-' || s.id, 'refund', s.id, s.creator_id, 20, 19.40, s.currency,
                      s.occurred_at + interval '5 days'
               FROM creators_creatorsubscriptionshare s WHERE s.creator_id %% 6 = 0""",
        )
        _sql(c, "ANALYZE creators_creatorsubscriptionshare")
        _sql(c, "ANALYZE creators_creatorclawback")
        _sql(c, "ANALYZE creators_dailyengagement")
        _sql(c, "ANALYZE creators_creatoraccount")
        _sql(c, "CHECKPOINT")


def _raw_aggregate(*, fan_payments: bool = True, fetch: bool = False) -> float:
    """The baseline: one raw aggregate of what the cycle reads, best of two runs.

    The cycle splits the pools by the period's engagement per creator and adds each creator's fan payment shares
    net of refunds and lost disputes (clawbacks), per creator and currency: one statement aggregates both (the
    engagement per creator, the fan payments per creator and currency), with the work_mem the compute's stage
    statement sets for itself, so that neither spills to disk where the other does not. The cycle reads those
    rows in the server and sends none to Python, so the aggregate's rows are consumed in the server too (counted
    and summed, every column used so none is left uncomputed); ``fetch=True`` sends them to Python as the
    baseline of 2026-12-01 did (its transfer was 10-13% of that figure). ``fan_payments=False`` is the engagement
    aggregate alone at the server's default work_mem, fetched (the baseline of figures before 2026-12-01).
    """
    from django.db import connection, transaction

    best = float("inf")
    end = datetime.date(PERIOD.year, PERIOD.month + 1, 1)
    start_at = datetime.datetime(PERIOD.year, PERIOD.month, 1, tzinfo=datetime.UTC)
    end_at = datetime.datetime(end.year, end.month, 1, tzinfo=datetime.UTC)
    engagement = """SELECT creator_id, NULL AS currency, SUM(impressions * 1 + replies * 20 + reposts * 10 + likes * 2)
                     FROM creators_dailyengagement WHERE day >= %(start)s AND day < %(end)s GROUP BY creator_id"""
    fans = """SELECT creator_id, currency, SUM(amount) FROM (
                  SELECT creator_id, currency, amount FROM creators_creatorsubscriptionshare
                  WHERE occurred_at >= %(start_at)s AND occurred_at < %(end_at)s
                  UNION ALL
                  SELECT creator_id, currency, -amount FROM creators_creatorclawback
                  WHERE occurred_at >= %(start_at)s AND occurred_at < %(end_at)s
              ) fan GROUP BY creator_id, currency"""
    sql = f"{engagement} UNION ALL {fans}" if fan_payments else engagement
    if not fetch:
        sql = f"SELECT count(*), count(currency), sum(amount) FROM ({sql}) raw(creator_id, currency, amount)"
    params = {"start": PERIOD, "end": end, "start_at": start_at, "end_at": end_at}
    for _ in range(2):
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as c:
            if fan_payments:
                c.execute("SET LOCAL work_mem TO '256MB'")  # as the compute's stage statement
            c.execute(sql, params)
            c.fetchall()
        best = min(best, time.perf_counter() - started)
    return best


def _drop_cycle(cycle_id: int) -> None:
    """Forget a computed round's cycle so the next round computes the same period from scratch, as the first did."""
    from django.db import connection

    with connection.cursor() as c:
        _sql(c, "TRUNCATE creators_payouthold, creators_payout, creators_creatorearning")
        _sql(c, "DELETE FROM creators_revenuesharecycle WHERE id = %s", [cycle_id])


def _ingest(n_creators: int, rows: int) -> dict:
    from creators.services.engagement import engagement_ingest, iter_json_lines
    from monetization import clock
    from monetization.services.permissions import System

    per_creator_days = max(1, rows // n_creators)
    lines = []
    for i in range(rows):
        creator = i % n_creators + 1
        day = INGEST_MONTH + datetime.timedelta(days=(i // n_creators) % 28)
        lines.append(
            json.dumps(
                {
                    "customer": f"bench-creator-{creator}",
                    "day": day.isoformat(),
                    "source": "premium",
                    "impressions": i % 5000,
                    "replies": i % 7,
                    "likes": i % 13,
                    "reposts": i % 3,
                }
            ).encode()
        )
    at = datetime.datetime(2026, 8, 2, tzinfo=datetime.UTC)
    out = {}
    for label in ("insert", "resend"):
        with clock.frozen(at):
            started = time.perf_counter()
            result = engagement_ingest(iter_json_lines(lines), actor=System("bench"), batch_size=100_000)
            elapsed = time.perf_counter() - started
        out[f"ingest_{label}_rows_per_s"] = round(result.accepted / elapsed)
        out[f"ingest_{label}_rejected"] = result.rejected_count
    out["ingest_rows"] = rows
    out["ingest_days_per_creator"] = per_creator_days
    return out


def run(args) -> dict:
    from django.contrib.auth import get_user_model
    from djmoney.money import Money

    from creators.models import CreatorClawback, Payout, RevenueShareCycle
    from creators.services.cycles import cycle_approve, cycle_compute, cycle_submit, period_revenue
    from creators.services.payouts import cycle_pay
    from monetization.demo.providers import FakePayoutProvider
    from monetization.services.ledger import Leg, Posting, journal_post
    from monetization.services.permissions import System

    bench = System("benchmark")
    from tests.creators.payout_doubles import FileFakePayoutProvider

    n_creators = int(os.environ.get("BENCH_CREATORS") or (10_000 if args.quick else 100_000))
    rounds = max(1, int(os.environ.get("BENCH_COMPUTE_ROUNDS", "3")))
    days = 30
    started = time.perf_counter()
    _setup(n_creators, days)
    result: dict = {
        "creators": n_creators,
        "engagement_rows": n_creators * days,
        "setup_s": round(time.perf_counter() - started, 1),
    }

    # The bench database is kept between runs (and shared by --quick and full runs): post only what tops
    # the period's revenue up to this run's figure, so every run splits pools of the same size.
    current = period_revenue(PERIOD)
    for currency, per_creator in (("USD", 100), ("EUR", 50), ("GBP", 50)):  # every currency funds its own pool
        missing = Decimal(n_creators) * per_creator - current.get(currency, Decimal(0))
        if missing:
            journal_post(
                Posting(
                    key=f"bench:creators:revenue:{currency}:{n_creators}:{time.time_ns()}",
                    kind="payment",
                    legs=[
                        Leg("cash:stripe", Money(missing, currency)),
                        Leg("revenue:subscriptions", Money(-missing, currency)),
                    ],
                    posted_at=datetime.datetime(PERIOD.year, PERIOD.month, 15, tzinfo=datetime.UTC),
                )
            )
    result["revenue_by_currency"] = {k: str(v) for k, v in period_revenue(PERIOD).items()}
    measured = []  # (ratio, raw, compute, ratio to the engagement aggregate alone) per round
    cycle = None
    for _ in range(rounds):
        if cycle is not None:
            _drop_cycle(cycle.pk)
        raw = _raw_aggregate()
        fetched = _raw_aggregate(fetch=True)
        engagement_only = _raw_aggregate(fan_payments=False, fetch=True)
        cycle = RevenueShareCycle.objects.create(period=PERIOD)
        started = time.perf_counter()
        cycle_compute(cycle_id=cycle.pk, actor=bench)
        compute = time.perf_counter() - started
        measured.append((compute / raw, raw, compute, compute / engagement_only, compute / fetched))
    ratio, raw, compute, _, _ = sorted(measured)[len(measured) // 2]
    result.update(
        {
            "raw_aggregate_s": round(raw, 3),
            "compute_s": round(compute, 3),
            "compute_vs_raw_ratio": round(ratio, 2),
            "compute_vs_raw_ratio_by_round": [round(r, 2) for r, _, _, _, _ in measured],
            "compute_vs_fetched_raw_ratio_by_round": [round(r, 2) for *_, r in measured],
            "compute_vs_engagement_aggregate_ratio_by_round": [round(r, 2) for _, _, _, r, _ in measured],
            "compute_target": "<= 3x raw aggregate (2x for issue 18)",
        }
    )

    User = get_user_model()
    approver, _ = User.objects.get_or_create(
        username="bench-approver", defaults={"is_staff": True, "is_superuser": True}
    )
    cycle_submit(cycle_id=cycle.pk, actor=bench)
    started = time.perf_counter()
    cycle_approve(cycle_id=cycle.pk, actor=approver, reason="figures reviewed")
    result["schedule_payouts_s"] = round(time.perf_counter() - started, 2)
    payouts = Payout.objects.filter(cycle=cycle, status="approved").count()
    result["payouts_by_currency"] = {
        cur: Payout.objects.filter(cycle=cycle, currency=cur).count() for cur in ("USD", "EUR", "GBP")
    }
    result["clawbacks"] = CreatorClawback.objects.count()
    # Workers share the cycle through FOR UPDATE SKIP LOCKED, as Celery workers would.
    workers = int(os.environ.get("BENCH_PAY_WORKERS", "3"))
    outcomes = []

    fake = os.environ.get("BENCH_PAY_FAKE", "file")
    ledger_file = str(Path(tempfile.gettempdir()) / f"bench_fake_payouts_{os.getpid()}.jsonl")

    def worker():
        from django.db import connection

        provider = FileFakePayoutProvider(ledger_file) if fake == "file" else FakePayoutProvider()
        try:
            outcomes.append(cycle_pay(cycle_id=cycle.pk, provider=provider, chunk_size=500))
        finally:
            if fake == "file":
                provider.close()
            connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pay = time.perf_counter() - started
    paid = {"paid": sum(o["paid"] for o in outcomes)}
    result["pay_workers"] = workers
    result["pay_fake_storage"] = fake
    if fake == "file":
        os.unlink(ledger_file)
    result.update(
        {
            "payouts": payouts,
            "paid": paid["paid"],
            "pay_s": round(pay, 1),
            "pay_per_s": round(paid["paid"] / pay) if pay else None,
            "pay_target": "<= 60 s for 100,000 payouts",
        }
    )
    result.update(_ingest(n_creators, 50_000 if args.quick else 500_000))
    result["ingest_target"] = ">= 50,000 rows/s"
    return result
