"""Outbound events: what writing the outbox costs the sweep, and how fast one worker delivers.

Targets (issue 15): writing the outbox adds at most 10% to the lifecycle sweep (and to webhook
apply); one delivery loop delivers at least 1,000 events/s to a local receiver.

The audit row is the event: what a change pays for the outbox is the audit rows' transaction id (its
default and its (txid, id) index) and, for captured payments, their audit rows. "Without outbox" switches
those off (the column's default dropped, the index dropped, no payment audit rows); the relay that
publishes the rows afterwards is timed apart (its own transactions, after the change).

- sweep: N canceled subscriptions past their period end expired by ``lifecycle_sweep``, once without the
  outbox's writes (baseline) and once with them (each run on freshly built rows), then the relay over them;
- delivery: N events for N/50 customers delivered by ``outbox_deliver`` (the task's body, in this
  process) over HTTP to a receiver in another process on 127.0.0.1 (keep-alive, answers 200).

Destructive: TRUNCATEs the subscriptions, audit and outbox tables of the database in DATABASE_URL.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta

from django.core.management import call_command
from django.db import connection

from monetization import clock

RECEIVER = textwrap.dedent(
    """
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
        def log_message(self, *a):
            pass

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """
)


def _sql(statement: str, params=None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _truncate() -> None:
    _sql(
        "TRUNCATE monetization_eventdelivery, monetization_outboxevent, monetization_eventendpoint, "
        "subscriptions_dunningattempt, subscriptions_subscription, monetization_auditevent, monetization_outboxrelay "
        "RESTART IDENTITY CASCADE"
    )


def _sweep_rows(n: int, now: datetime) -> None:
    _truncate()
    _sql(
        """
        INSERT INTO monetization_customer (external_id, handle, email, country, created_at)
        SELECT 'bench-' || g, 'bench' || g, '', 'US', %s FROM generate_series(1, %s) g
        ON CONFLICT (external_id) DO NOTHING
        """,
        [now, max(1, n // 5)],
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
    end = now - timedelta(hours=3)
    _sql(
        """
        INSERT INTO subscriptions_subscription
            (customer_id, plan_id, platform, provider, provider_subscription_id, state, quantity, auto_renew,
             started_at, current_period_start, current_period_end, cancel_reason, created_at, updated_at)
        SELECT c.id, p.id, 'web', 'stripe', 'sub_bench_' || g, 'canceled', 1, false,
               %(start)s, %(start)s, %(end)s, '', %(start)s, %(start)s
        FROM generate_series(1, %(n)s) g
        JOIN monetization_customer c ON c.external_id = 'bench-' || (1 + g %% %(customers)s)
        CROSS JOIN (SELECT id FROM subscriptions_plan WHERE code = 'bench-premium-monthly') p
        """,
        {"start": end - timedelta(days=30), "end": end, "n": n, "customers": max(1, n // 5)},
    )
    _sql("ANALYZE")


def _backend_cpu_seconds() -> float | None:
    """CPU the database session has used so far (PostgreSQL on this machine), or None: on a loaded machine
    the wall clock also counts waiting for a core, this only the work."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _audit_txid(on: bool) -> None:
    """The outbox's part of every audit insert: the transaction id's default and its index (on the current,
    small or empty, audit table)."""
    if on:
        _sql("ALTER TABLE monetization_auditevent ALTER COLUMN txid SET DEFAULT pg_current_xact_id()")
        _sql("CREATE INDEX IF NOT EXISTS audit_txid_id_idx ON monetization_auditevent (txid, id)")
    else:
        _sql("DROP INDEX IF EXISTS audit_txid_id_idx")
        _sql("ALTER TABLE monetization_auditevent ALTER COLUMN txid DROP DEFAULT")


RELAY: dict[str, list[float]] = {"wall": [], "cpu": [], "events": []}


def _sweep_seconds(n: int, *, with_outbox: bool) -> tuple[float, float | None]:
    """Wall seconds and database CPU seconds of one sweep over freshly built rows (then, with the outbox, the
    relay over its audit rows, timed apart into RELAY)."""
    from monetization.services.outbox import outbox_relay
    from subscriptions.services import sweep

    now = datetime(2030, 1, 1, tzinfo=UTC)
    _sweep_rows(n, now)
    _audit_txid(with_outbox)
    try:
        cpu = _backend_cpu_seconds()
        started = time.perf_counter()
        with clock.frozen(now):
            result = sweep.lifecycle_sweep()
        elapsed = time.perf_counter() - started
        after = _backend_cpu_seconds()
        if with_outbox:
            _sql("DELETE FROM monetization_outboxrelay")
            relay_started = time.perf_counter()
            events = outbox_relay()
            RELAY["wall"].append(time.perf_counter() - relay_started)
            relay_cpu = _backend_cpu_seconds()
            RELAY["cpu"].append(relay_cpu - after if relay_cpu is not None and after is not None else 0.0)
            RELAY["events"].append(events)
            assert events == n, events
    finally:
        _audit_txid(True)
    assert result.total == n, result
    return elapsed, (after - cpu if cpu is not None and after is not None else None)


def _sweep_ab(n: int, rounds: int) -> dict:
    """Rounds alternate which side goes first, so a change in the machine's load falls on both."""
    walls: dict[bool, list[float]] = {False: [], True: []}
    cpus: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(rounds):
        for with_outbox in (False, True) if round_ % 2 == 0 else (True, False):
            wall, cpu = _sweep_seconds(n, with_outbox=with_outbox)
            walls[with_outbox].append(wall)
            if cpu is not None:
                cpus[with_outbox].append(cpu)
            side = "with" if with_outbox else "without"
            print(f"   sweep {n:,} {side} outbox: {wall:.2f}s, db cpu {cpu}s", flush=True)
    base, out = sum(walls[False]), sum(walls[True])
    figures = {
        "sweep_rows": n,
        "sweep_rounds": rounds,
        "sweep_seconds_without_outbox": [round(t, 2) for t in walls[False]],
        "sweep_seconds_with_outbox": [round(t, 2) for t in walls[True]],
        "sweep_outbox_overhead_pct": round(100 * (out - base) / base, 1),
    }
    if RELAY["events"]:
        events = sum(RELAY["events"])
        figures |= {
            "relay_seconds": [round(t, 2) for t in RELAY["wall"]],
            "relay_events_per_second": round(events / sum(RELAY["wall"])),
            "relay_db_cpu_us_per_event": round(1e6 * sum(RELAY["cpu"]) / events, 1),
            "sweep_plus_relay_overhead_pct": round(100 * (out + sum(RELAY["wall"]) - base) / base, 1),
        }
    if len(cpus[False]) == len(cpus[True]) == rounds:
        base_cpu, out_cpu = sum(cpus[False]), sum(cpus[True])
        figures |= {
            "sweep_db_cpu_us_per_row_without_outbox": round(1e6 * base_cpu / (n * rounds), 1),
            "sweep_db_cpu_us_per_row_with_outbox": round(1e6 * out_cpu / (n * rounds), 1),
            "sweep_outbox_db_cpu_overhead_pct": round(100 * (out_cpu - base_cpu) / base_cpu, 1),
        }
    return figures


def _delivery_rows(n: int, url: str) -> None:
    _truncate()
    customers = max(1, n // 50)
    _sql(
        """
        INSERT INTO monetization_customer (external_id, handle, email, country, created_at)
        SELECT 'bench-' || g, 'bench' || g, '', 'US', now() FROM generate_series(1, %s) g
        ON CONFLICT (external_id) DO NOTHING
        """,
        [customers],
    )
    _sql(
        "INSERT INTO monetization_eventendpoint (url, description, event_types, secret, previous_secret, enabled, "
        "cursor, disabled_reason, created_at) VALUES (%s, 'bench', '[]', 'whsec_bench', '', true, 0, '', now())",
        [url],
    )
    _sql(
        """
        INSERT INTO monetization_outboxevent
            (event_id, type, version, occurred_at, customer_id, customer_external_id, object_type, object_id,
             cause, audit_event_id, data, entitlements)
        SELECT gen_random_uuid(), 'RENEWAL', 1, now(), c.id, c.external_id, 'subscriptions.subscription', g::text,
               '{"kind": "schedule", "label": "bench"}', NULL, jsonb_build_object('n', g),
               '[{"key": "verified_badge", "source": "subscription", "source_id": "1", "expires_at": null}]'
        FROM generate_series(1, %s) g
        JOIN monetization_customer c ON c.external_id = 'bench-' || (1 + g %% %s)
        ORDER BY g
        """,
        [n, customers],
    )
    _sql(
        """
        INSERT INTO monetization_eventdelivery
            (endpoint_id, event_id, customer_id, status, attempts, next_attempt_at, last_error, created_at)
        SELECT e.id, o.id, o.customer_id, 'pending', 0, now(), '', now()
        FROM monetization_outboxevent o CROSS JOIN monetization_eventendpoint e
        """
    )
    _sql("ANALYZE")


def _delivery_rate(n: int) -> tuple[float, float]:
    from monetization.outbox.delivery import outbox_deliver

    port = _free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    try:
        time.sleep(0.5)
        _delivery_rows(n, f"http://127.0.0.1:{port}/events")
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        run = outbox_deliver(budget_seconds=3600)
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        receiver.terminate()
        receiver.wait()
    assert run.delivered == n, run
    # The dispatcher's own CPU per event (threads included): its rate on a core of its own, on a shared machine.
    cpu_us = 1e6 * ((after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime)) / n
    return n / elapsed, cpu_us


def _write_cost(n: int) -> tuple[float, float]:
    """Microseconds per audited change, each in its own transaction: the audit row without the outbox's
    transaction id and index (baseline) and with them."""
    from django.db import transaction

    from monetization.models import Customer
    from monetization.services.audit import audit_record

    _truncate()
    _sql(
        "INSERT INTO monetization_eventendpoint (url, description, event_types, secret, previous_secret, enabled, "
        "cursor, disabled_reason, created_at) "
        "VALUES ('http://127.0.0.1:9/', 'bench', '[]', 's', '', true, 0, '', now())"
    )
    customer, _ = Customer.objects.get_or_create(external_id="bench-writer", defaults={"handle": "writer"})

    def once(i: int) -> None:
        with transaction.atomic():
            audit_record(
                action="subscription.expire",
                object_type="subscriptions.subscription",
                object_id=i,
                customer=customer,
                actor_label="bench",
                after={"state": "expired"},
            )

    results = []
    for with_outbox in (False, True):
        _audit_txid(with_outbox)
        try:
            for i in range(50):
                once(i)  # warm up
            started = time.perf_counter()
            for i in range(n):
                once(i)
            results.append(1e6 * (time.perf_counter() - started) / n)
        finally:
            _audit_txid(True)
    return results[0], results[1]


def _webhook_apply_ab(n: int, rounds: int) -> dict:
    """Stripe webhooks that each create a subscription (customer and SKU look-ups, audit, state change), applied
    in batches as the worker applies them, with the outbox writes switched off (baseline) and on, in interleaved
    rounds (deliveries are the relay's, after the change). Wall and CPU (this process and its
    database session) per event."""
    from django.conf import settings

    import monetization.services.payments as payments
    from bench.bench_webhooks import _seed, _store, _stripe_event
    from monetization.providers.stripe.parsing import event_from_dict
    from monetization.services.webhooks import webhook_events_apply_batch

    _truncate()
    _sql(
        "INSERT INTO monetization_eventendpoint (url, description, event_types, secret, previous_secret, enabled, "
        "cursor, disabled_reason, created_at) "
        "VALUES ('http://127.0.0.1:9/', 'bench', '[]', 's', '', true, 0, '', now())"
    )
    _seed()
    hook = payments.payments_succeeded_audit
    batch = settings.WEBHOOK_APPLY_BATCH
    created = int(time.time()) - 3600
    walls: dict[bool, list[float]] = {False: [], True: []}
    cpus: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(rounds):
        for with_outbox in (False, True) if round_ % 2 == 0 else (True, False):
            tag = f"obx{os.getpid()}r{round_}{'w' if with_outbox else 'b'}"
            ids = _store([event_from_dict(_stripe_event(tag, i, created=created)) for i in range(n)])
            _audit_txid(with_outbox)
            if not with_outbox:
                payments.payments_succeeded_audit = lambda payments: None
            try:
                db_cpu = _backend_cpu_seconds()
                own = resource.getrusage(resource.RUSAGE_SELF)
                started = time.perf_counter()
                for start in range(0, n, batch):
                    webhook_events_apply_batch(event_ids=ids[start : start + batch])
                walls[with_outbox].append(time.perf_counter() - started)
                after = resource.getrusage(resource.RUSAGE_SELF)
                db_after = _backend_cpu_seconds()
            finally:
                payments.payments_succeeded_audit = hook
                _audit_txid(True)
            own_s = (after.ru_utime + after.ru_stime) - (own.ru_utime + own.ru_stime)
            cpus[with_outbox].append(own_s + ((db_after - db_cpu) if db_cpu is not None else 0))
    base, out = sum(walls[False]), sum(walls[True])
    base_cpu, out_cpu = sum(cpus[False]), sum(cpus[True])
    return {
        "webhook_apply_events": n,
        "webhook_apply_rounds": rounds,
        "webhook_apply_us_per_event_without_outbox": round(1e6 * base / (n * rounds)),
        "webhook_apply_us_per_event_with_outbox": round(1e6 * out / (n * rounds)),
        "webhook_apply_outbox_overhead_pct": round(100 * (out - base) / base, 1),
        "webhook_apply_cpu_us_per_event_without_outbox": round(1e6 * base_cpu / (n * rounds)),
        "webhook_apply_cpu_us_per_event_with_outbox": round(1e6 * out_cpu / (n * rounds)),
        "webhook_apply_outbox_cpu_overhead_pct": round(100 * (out_cpu - base_cpu) / base_cpu, 1),
    }


def run(args) -> dict:
    call_command("migrate", verbosity=0)
    sweep_n = int(os.environ.get("BENCH_OUTBOX_SWEEP_ROWS") or (20_000 if args.quick else 200_000))
    rounds = int(os.environ.get("BENCH_OUTBOX_ROUNDS", "2"))
    delivery_n = 2_000 if args.quick else 20_000
    if os.environ.get("BENCH_OUTBOX_WEBHOOKS_ONLY"):
        return _webhook_apply_ab(300 if args.quick else 2000, rounds)
    figures = _sweep_ab(sweep_n, rounds)
    if os.environ.get("BENCH_OUTBOX_SWEEP_ONLY"):
        return figures | {"sweep_target_overhead_pct": 10}
    figures |= _webhook_apply_ab(300 if args.quick else 2000, rounds)
    rate, cpu_us = _delivery_rate(delivery_n)
    audit_us, audit_outbox_us = _write_cost(500 if args.quick else 3000)
    return {
        "audited_change_us_without_outbox": round(audit_us),
        "audited_change_us_with_outbox": round(audit_outbox_us),
        **figures,
        "sweep_target_overhead_pct": 10,
        "delivery_events": delivery_n,
        "delivery_events_per_second": round(rate),
        "delivery_cpu_us_per_event": round(cpu_us),
        "delivery_events_per_cpu_second": round(1e6 / cpu_us),
        "delivery_target_events_per_second": 1000,
    }
