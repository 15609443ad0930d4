"""Faults without a person: ``python -m reliability [--events N] [--kills K] [--outage S] [--json PATH]``.

Signed Stripe events go over HTTP to a live server (gunicorn, production settings) while a
prefork Celery worker applies them and beat runs the webhook sweep, each a process of its own as
in production. Meanwhile the worker is SIGKILLed ``--kills`` times (with its children, restarted a
second later, as its supervisor would) and the broker, a private redis-server (``--redis-port``,
6421), is stopped for ``--outage`` seconds once (the worker is not restarted for that: it must
survive it). Some deliveries are sent twice, as providers do. Then it waits for the inbox to
drain and prints: events sent, stored, applied, duplicated (applied more than once), stuck (not
finished ``--drain-timeout`` seconds after the last restart) and the time to drain after the last
restart. PostgreSQL is the machine's, in a database of this run's own (DATABASE_URL, default
``postgres://postgres@127.0.0.1:5432/backoffice_reliability``); the cache is REDIS_URL's.

Exits 1 when anything is stuck or duplicated, or an event is missing or not applied.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m reliability")
    parser.add_argument("--events", type=int, default=10_000, help="distinct events sent")
    parser.add_argument("--kills", type=int, default=5, help="times the worker is SIGKILLed")
    parser.add_argument("--outage", type=float, default=15.0, help="seconds the broker is stopped, once (0: never)")
    parser.add_argument("--repeat", type=float, default=0.05, help="share of deliveries sent a second time")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--redis-port", type=int, default=int(os.environ.get("RELIABILITY_REDIS_PORT", "6421")))
    parser.add_argument("--drain-timeout", type=float, default=180.0)
    parser.add_argument("--json", help="also write the figures to this file")
    return parser.parse_args(argv)


class Process:
    """A program of the run, in its own process group (a kill takes its children too)."""

    def __init__(self, name: str, argv: list[str], env: dict, log: Path):
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _wait_redis(port: int, up: bool, timeout: float = 15) -> None:
    import redis

    client = redis.Redis(port=port, socket_timeout=1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.ping() and up:
                return
        except redis.ConnectionError:
            if not up:
                return
        time.sleep(0.1)
    raise RuntimeError(f"redis on {port} did not come {'up' if up else 'down'}")


def _inbox(run_id: str) -> dict:
    from django.db.models import Count

    from monetization.models import AuditEvent, WebhookEvent
    from subscriptions.models import Subscription

    rows = WebhookEvent.objects.filter(event_id__startswith=f"evt_bench_{run_id}_")
    by_status = dict(rows.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    subs = Subscription.objects.filter(provider_subscription_id__startswith=f"sub_bench_{run_id}_")
    creates = AuditEvent.objects.filter(
        action="subscription.create", actor_label__startswith=f"stripe:sub_bench_{run_id}_"
    ).count()
    return {
        "by_status": by_status,
        "stored": sum(by_status.values()),
        "subscriptions": subs.count(),
        "creates": creates,
    }


def run(args) -> dict:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backoffice.settings")
    django.setup()
    from django.core.management import call_command

    from bench.bench_webhooks import SECRET, _free_port, _gunicorn, _load, _seed, _sign, _stripe_event
    from bench.db import ensure_database

    ensure_database()
    call_command("migrate", verbosity=0)
    _seed()
    run_id = f"r{int(time.time())}"
    tmp = Path(tempfile.mkdtemp(prefix="reliability-"))
    broker = f"redis://127.0.0.1:{args.redis_port}/0"
    redis_server = Process(
        "redis",
        ["redis-server", "--port", str(args.redis_port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp)],
        dict(os.environ),
        tmp / "redis.log",
    )
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": "reliability-secret-key-not-for-production-0123456789",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "WARNING",
        "PAYMENT_PROVIDERS_ENABLED": "stripe",
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "STRIPE_API_KEY": "sk_test_reliability_never_called",
        "CELERY_BROKER_URL": broker,
        "DB_CONN_MAX_AGE": "0",
    }
    celery = [sys.executable, "-m", "celery", "-A", "backoffice"]
    worker = Process(
        "worker",
        [*celery, "worker", "-l", "warning", "--concurrency", "2", "-n", f"{run_id}@localhost"],
        env,
        tmp / "worker.log",
    )
    beat = Process(
        "beat",
        [*celery, "beat", "-l", "warning", "--scheduler", "celery.beat:PersistentScheduler", "-s", str(tmp / "beat")],
        env,
        tmp / "beat.log",
    )
    created = int(time.time()) - 60
    bodies = [json.dumps(_stripe_event(run_id, i, created=created)).encode() for i in range(args.events)]
    rng = random.Random(run_id)
    deliveries = bodies + rng.sample(bodies, int(len(bodies) * args.repeat))
    rng.shuffle(deliveries)

    result: dict = {"events": args.events, "deliveries": len(deliveries), "kills": args.kills, "outage_s": args.outage}
    port = _free_port()
    redis_server.start()
    _wait_redis(args.redis_port, up=True)
    server = _gunicorn(env, port)
    worker.start()
    beat.start()
    try:
        # The faults come while the deliveries go out: kills spread over the sending, the outage in the middle.
        chunks = args.kills + 1
        size = -(-len(deliveries) // chunks)
        sent = errors = 0
        outage_at = chunks // 2 if args.outage > 0 else -1
        outage_thread = None
        last_restart = time.monotonic()
        worker_alive_after_outage = None
        for c in range(chunks):
            if c == outage_at:

                def outage():
                    nonlocal worker_alive_after_outage
                    redis_server.kill(signal.SIGTERM)
                    _wait_redis(args.redis_port, up=False)
                    time.sleep(args.outage)
                    redis_server.start()
                    _wait_redis(args.redis_port, up=True)
                    time.sleep(2)
                    worker_alive_after_outage = worker.alive()

                outage_thread = threading.Thread(target=outage)
                outage_thread.start()
            # Signed as each chunk goes out: a signature is accepted for STRIPE_WEBHOOK_TOLERANCE (300 s).
            chunk = [(body, {"Stripe-Signature": _sign(body)}) for body in deliveries[c * size : (c + 1) * size]]
            load = _load(port, "/api/v1/webhooks/stripe", chunk, args.clients)
            sent += load["events"]
            errors += load["errors"]
            if c < args.kills:
                worker.kill()  # SIGKILL, mid-work: the worker was applying what this chunk brought
                time.sleep(1)
                worker.start()
                last_restart = time.monotonic()
        if outage_thread is not None:
            outage_thread.join()
        result.update(sent=sent, http_errors=errors)
        result["worker_survived_outage"] = worker_alive_after_outage

        # Drain: nobody replays anything; the sweep and the worker finish what is left.
        deadline = last_restart + args.drain_timeout
        while time.monotonic() < deadline:
            inbox = _inbox(run_id)
            unfinished = sum(inbox["by_status"].get(s, 0) for s in ("received", "waiting", "retrying"))
            if inbox["stored"] >= args.events and not unfinished:
                break
            time.sleep(0.5)
        result["drain_after_last_restart_s"] = round(time.monotonic() - last_restart, 1)
    finally:
        for proc in (beat, worker):
            proc.kill(signal.SIGTERM)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        redis_server.kill(signal.SIGTERM)

    inbox = _inbox(run_id)
    statuses = inbox["by_status"]
    result.update(
        stored=inbox["stored"],
        applied=statuses.get("applied", 0),
        failed=statuses.get("failed", 0),
        stuck=sum(statuses.get(s, 0) for s in ("received", "waiting", "retrying")),
        duplicated=max(0, inbox["creates"] - inbox["subscriptions"]),
        logs=str(tmp),
    )
    result["ok"] = (
        result["stored"] == args.events
        and result["applied"] == args.events
        and result["stuck"] == 0
        and result["duplicated"] == 0
        and result["worker_survived_outage"] is not False
    )
    return result


def table(result: dict) -> str:
    rows = [
        ("events sent (distinct)", result["events"]),
        ("deliveries (with repeats)", result["deliveries"]),
        ("HTTP errors", result.get("http_errors")),
        ("stored", result["stored"]),
        ("applied", result["applied"]),
        ("duplicated", result["duplicated"]),
        ("stuck", result["stuck"]),
        ("failed", result["failed"]),
        ("worker SIGKILLs", result["kills"]),
        (f"broker stopped {result['outage_s']:g} s: worker survived", result.get("worker_survived_outage")),
        ("drained after the last restart (s)", result.get("drain_after_last_restart_s")),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main(argv=None) -> int:
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/backoffice_reliability")
    os.environ.setdefault("DEBUG", "1")  # this controlling process; the server and worker run with DEBUG off
    args = _args(argv)
    result = run(args)
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
