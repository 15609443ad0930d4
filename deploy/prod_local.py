"""Production's processes on this machine: ``python deploy/prod_local.py start|check``.

``start`` (``make prod-local``): the Procfile's processes under honcho with production settings
(``DEBUG`` off): web x2 (gunicorn, ports PROD_LOCAL_PORT and the next), a worker pool for the
``webhooks`` queue and one for the others (sweeps, payouts, outbound, exports), and beat; migrate
runs first, once (the Procfile's ``release``). PostgreSQL is the machine's (PROD_LOCAL_DATABASE_URL,
a database of its own, created when missing); the cache and the broker are a private redis-server
on PROD_LOCAL_REDIS_PORT (6431) unless PROD_LOCAL_BROKER_URL names another broker (RabbitMQ:
``amqp://user:password@127.0.0.1:5672/vhost``). Ctrl-C stops everything.

``check`` (``make prod-local-check``): starts the same, waits for both web processes to be ready
(``/healthz/ready``), sends ``--webhooks`` signed Stripe events (10,000) spread over both and
``--reads`` entitlement reads (50,000), waits for every event to be applied, prints errors, events
applied, throughput and p99, stops everything and exits 1 on any error or event not applied.

Secrets are made up per run (a random ``SECRET_KEY``, the bench's test webhook secret, a Stripe key
never called): nothing here is a production secret.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing as mp
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PROCESSES = ["web", "worker_webhooks", "worker_batch", "beat"]
CUSTOMERS = 1000


def _args(argv=None):
    parser = argparse.ArgumentParser(prog="python deploy/prod_local.py")
    parser.add_argument("mode", choices=["start", "check"])
    parser.add_argument("--webhooks", type=int, default=int(os.environ.get("PROD_LOCAL_WEBHOOKS", "10000")))
    parser.add_argument("--reads", type=int, default=int(os.environ.get("PROD_LOCAL_READS", "50000")))
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--json", help="also write the figures to this file")
    return parser.parse_args(argv)


def production_env(redis_port: int, port: int) -> dict[str, str]:
    from bench.bench_webhooks import SECRET

    redis = f"redis://127.0.0.1:{redis_port}"
    return {
        **os.environ,
        "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ.get('PATH', '')}",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "DATABASE_URL": os.environ.get(
            "PROD_LOCAL_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/backoffice_prod_local"
        ),
        "REDIS_URL": f"{redis}/1",
        "CELERY_BROKER_URL": os.environ.get("PROD_LOCAL_BROKER_URL", f"{redis}/2"),
        "PAYMENT_PROVIDERS_ENABLED": "stripe",
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "STRIPE_API_KEY": "sk_test_prod_local_never_called",
        # One load generator calls from one address for every customer: the per-address and per-customer
        # ceilings are a client app's, not this check's (README, API throttling).
        "API_THROTTLE_IP_RATE": "100000/s",
        "API_THROTTLE_CUSTOMER_RATE": "100000/s",
        "PORT": str(port),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
    }


@contextlib.contextmanager
def running(env: dict[str, str], port: int, logs: Path, *, to_terminal: bool = False):
    """The private redis (unless a broker was named), migrate, then honcho with the Procfile's processes."""
    procs: list[subprocess.Popen] = []
    redis_port = int(env["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    try:
        if not _answers(redis_port):
            procs.append(
                subprocess.Popen(
                    ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""],
                    stdout=(logs / "redis.log").open("ab"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            _wait(lambda: _answers(redis_port), "redis")
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")})
        _ensure_database()
        # The Procfile's release (migrate), once, before the processes start.
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=env, check=True)
        honcho = subprocess.Popen(
            ["honcho", "start", "-p", str(port), "-c", "web=2", *PROCESSES],
            cwd=REPO,
            env=env,
            stdout=None if to_terminal else (logs / "honcho.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(honcho)
        yield honcho
    finally:
        for proc in reversed(procs):  # honcho first: it stops its processes on SIGTERM
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _wait(ready, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not come up in {timeout:g} s")


def _ensure_database() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backoffice.settings")
    os.environ.setdefault("DEBUG", "1")  # this controlling process only
    django.setup()
    from bench.db import ensure_database

    ensure_database()


def _get(port: int, path: str, headers: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _ready(port: int) -> bool:
    with contextlib.suppress(OSError):
        return _get(port, "/healthz/ready")[0] == 200
    return False


def _reader(port: int, run_id: str, key: str, n: int, out: mp.Queue) -> None:
    """Entitlement GETs for the run's customers in turn (gunicorn's sync workers close the connection)."""
    latencies, errors = [], 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for i in range(n):
        path = f"/api/v1/customers/{run_id}-{(i * 7919 + port) % CUSTOMERS}/entitlements"
        started = time.perf_counter()
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {key}"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors += 1
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies.append(time.perf_counter() - started)
    out.put((latencies, errors))


def _p99(latencies: list[float]) -> float:
    latencies = sorted(latencies)
    return round(latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000, 1) if latencies else 0.0


def check(args, env: dict[str, str], port: int) -> dict:
    from bench.bench_webhooks import _load, _seed, _sign, _stripe_event
    from monetization.models import ApiKey, Customer, WebhookEvent

    ports = [port, port + 1]  # honcho's web.1 and web.2
    _wait(lambda: all(_ready(p) for p in ports), "both web processes", timeout=120)
    _seed()
    full, prefix, key_hash = ApiKey.generate()
    ApiKey.objects.create(name="prod-local-check", prefix=prefix, key_hash=key_hash, scopes=["entitlements:read"])
    run_id = f"pl{int(time.time())}"
    created = int(time.time()) - 60
    # Spread over CUSTOMERS customers, as a platform's traffic is (one customer's entitlements are cached).
    Customer.objects.bulk_create(
        [Customer(external_id=f"{run_id}-{k}", handle=f"{run_id}-{k}") for k in range(CUSTOMERS)]
    )
    bodies = []
    for i in range(args.webhooks):
        event = _stripe_event(run_id, i, created=created)
        event["data"]["object"]["customer"] = f"cus_{run_id}_{i % CUSTOMERS}"
        event["data"]["object"]["metadata"]["external_id"] = f"{run_id}-{i % CUSTOMERS}"
        bodies.append(json.dumps(event).encode())
    result: dict = {"webhooks": args.webhooks, "reads": args.reads}

    started = time.perf_counter()
    sent = {"events": 0, "errors": 0, "latencies_p99": []}
    per_port = [bodies[i :: len(ports)] for i in range(len(ports))]
    for p, chunk in zip(ports, per_port, strict=True):
        # Signed as they go out (a signature holds STRIPE_WEBHOOK_TOLERANCE, 300 s).
        for start in range(0, len(chunk), 2000):
            part = [(b, {"Stripe-Signature": _sign(b)}) for b in chunk[start : start + 2000]]
            load = _load(p, "/api/v1/webhooks/stripe", part, args.clients)
            sent["events"] += load["events"]
            sent["errors"] += load["errors"]
            sent["latencies_p99"].append(load["p99_ms"])
    result["webhook_http_errors"] = sent["errors"]
    result["webhook_p99_ms_worst_batch"] = max(sent["latencies_p99"], default=0.0)
    result["webhooks_per_s"] = round(args.webhooks / (time.perf_counter() - started))

    out: mp.Queue = mp.Queue()
    share = -(-args.reads // args.clients)
    readers = [
        mp.Process(target=_reader, args=(ports[i % len(ports)], run_id, full, share, out)) for i in range(args.clients)
    ]
    started = time.perf_counter()
    for r in readers:
        r.start()
    results = [out.get() for _ in readers]
    for r in readers:
        r.join()
    elapsed = time.perf_counter() - started
    result["read_errors"] = sum(e for _, e in results)
    result["reads_per_s"] = round(share * args.clients / elapsed)
    result["read_p99_ms"] = _p99([x for lat, _ in results for x in lat])

    rows = WebhookEvent.objects.filter(event_id__startswith=f"evt_bench_{run_id}_")
    deadline = time.monotonic() + args.drain_timeout
    while time.monotonic() < deadline and rows.filter(status="applied").count() < args.webhooks:
        time.sleep(0.5)
    result["applied"] = rows.filter(status="applied").count()
    result["not_applied"] = args.webhooks - result["applied"]
    result["drained_s"] = round(time.perf_counter() - started, 1)
    result["ok"] = not (result["webhook_http_errors"] or result["read_errors"] or result["not_applied"])
    return result


def main(argv=None) -> int:
    args = _args(argv)
    port = int(os.environ.get("PROD_LOCAL_PORT", "8000"))
    env = production_env(int(os.environ.get("PROD_LOCAL_REDIS_PORT", "6431")), port)
    logs = Path(tempfile.mkdtemp(prefix="prod-local-"))
    if args.mode == "start":
        with running(env, port, logs, to_terminal=True) as honcho, contextlib.suppress(KeyboardInterrupt):
            honcho.wait()
        return honcho.returncode or 0
    with running(env, port, logs):
        result = check(args, env, port)
    result["logs"] = str(logs)
    width = max(len(k) for k in result)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in result.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
