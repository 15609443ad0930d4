"""Production's processes on this machine: ``python deploy/prod_local.py start|check``.

``start`` (``make prod-local``): the Procfile's processes with production settings (``DEBUG`` off)
under a small supervisor that starts any of them again when it exits: web x2 (gunicorn, ports
PROD_LOCAL_PORT and the next), a worker pool for the ``webhooks`` queue and one for the others
(sweeps, payouts, outbound, exports), and beat; migrate runs first, once (the Procfile's
``release``). PostgreSQL is a private primary (PROD_LOCAL_PG_PORT, 6441) with a streaming replica
on the next port and PgBouncer in transaction mode in front of the primary
(PROD_LOCAL_PGBOUNCER_PORT, 6443), all under the run's temporary directory
(deploy/local_postgres.py); the app reaches the primary through PgBouncer and reads reports,
charts and exports from the replica. The cache and the broker are a private redis-server on
PROD_LOCAL_REDIS_PORT (6431) unless PROD_LOCAL_BROKER_URL names another broker (RabbitMQ:
``amqp://user:password@127.0.0.1:5672/vhost``). Ctrl-C stops everything.

``check`` (``make prod-local-check``): starts the same, waits for both web processes to be ready
(``/healthz/ready``), sends ``--webhooks`` signed Stripe events (10,000) spread over both and
``--reads`` entitlement reads (50,000); while the webhooks go in it SIGKILLs, one at a time, web.1
(gunicorn and its workers), the webhooks worker pool, the batch worker pool and web.2, and while the
reads go in web.1 again and beat (``--no-kills`` not to);
a request refused by a dead web process is sent to the other, as a load balancer would. Then it waits
for every event to be applied (on the primary, and replayed on the replica), and prints errors,
retries, events applied, the processes restarted, replica lag, throughput and p99; it stops everything
and exits 1 on any error, event not applied or killed process not restarted.

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
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PROCESSES = ["web", "worker_webhooks", "worker_batch", "beat"]
CUSTOMERS = 1000
SUPERUSER = "postgres"
DB_NAME = "backoffice"


def _args(argv=None):
    parser = argparse.ArgumentParser(prog="python deploy/prod_local.py")
    parser.add_argument("mode", choices=["start", "check"])
    parser.add_argument("--webhooks", type=int, default=int(os.environ.get("PROD_LOCAL_WEBHOOKS", "10000")))
    parser.add_argument("--reads", type=int, default=int(os.environ.get("PROD_LOCAL_READS", "50000")))
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--no-kills", action="store_true", help="do not kill processes mid-run")
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


@dataclass
class Spec:
    """One process of the Procfile: its name (``web.1``), its command and its own environment."""

    name: str
    command: str
    env: dict[str, str] = field(default_factory=dict)


def procfile(port: int, web: int = 2) -> list[Spec]:
    """The Procfile's processes (``release`` aside), web x ``web`` on ``port`` and the next ones."""
    commands = {}
    for line in (REPO / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            commands[name.strip()] = command.strip()
    specs = [Spec(f"web.{i + 1}", commands["web"], {"PORT": str(port + i)}) for i in range(web)]
    return specs + [Spec(f"{name}.1", commands[name]) for name in PROCESSES if name != "web"]


class Supervisor:
    """Starts each process in a process group of its own and starts it again whenever it exits, until stopped.

    A killed gunicorn master or Celery worker takes its children with it (the whole group is signalled, as a
    container runtime does), so a restart never finds the old workers still holding the port or the queue.
    """

    def __init__(self, specs: list[Spec], env: dict[str, str], logs: Path | None):
        self.specs = {spec.name: spec for spec in specs}
        self.env, self.logs = env, logs
        self.procs: dict[str, subprocess.Popen] = {}
        self.restarts: dict[str, int] = dict.fromkeys(self.specs, 0)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def _spawn(self, name: str) -> None:
        spec = self.specs[name]
        out = None if self.logs is None else (self.logs / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            ["bash", "-c", f"exec {spec.command}"],
            cwd=REPO,
            env={**self.env, **spec.env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start(self) -> Supervisor:
        with self._lock:
            for name in self.specs:
                self._spawn(name)
        self._watcher.start()
        return self

    def _watch(self) -> None:
        while not self._stopping.wait(0.25):
            with self._lock:
                for name, proc in list(self.procs.items()):
                    if proc.poll() is None or self._stopping.is_set():
                        continue
                    # Its group too: a master killed alone leaves children that hold its port.
                    _killpg(proc.pid, signal.SIGKILL)
                    self.restarts[name] += 1
                    print(f"supervisor: {name} exited ({proc.returncode}), starting it again", file=sys.stderr)
                    self._spawn(name)

    def kill(self, name: str) -> int:
        """SIGKILL a process and its children (the way a machine or an OOM kill takes it); returns its pid."""
        with self._lock:
            pid = self.procs[name].pid
        _killpg(pid, signal.SIGKILL)
        return pid

    def pid(self, name: str) -> int:
        with self._lock:
            return self.procs[name].pid

    def stop(self) -> None:
        self._stopping.set()
        if self._watcher.is_alive():
            self._watcher.join()
        for proc in self.procs.values():
            _killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            _killpg(proc.pid, signal.SIGKILL)  # any child its leader left behind


def _killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


@contextlib.contextmanager
def databases(run: Path) -> Iterator[dict[str, str]]:
    """The primary, its streaming replica and PgBouncer in front of the primary, private to this run.

    The machine's PostgreSQL refuses replication connections (its pg_hba.conf has no ``replication``
    line), so the primary is a private one too (deploy/local_postgres.py). Yields the environment
    the processes connect with: the app through PgBouncer, session-level locks and migrations
    straight to the primary, reports from the replica.
    """
    from deploy.local_postgres import start_pgbouncer, streaming_pair

    pg_port = int(os.environ.get("PROD_LOCAL_PG_PORT", "6441"))
    bouncer_port = int(os.environ.get("PROD_LOCAL_PGBOUNCER_PORT", "6443"))
    run.chmod(0o755)  # PostgreSQL and PgBouncer run as postgres when this runs as root: they must reach in
    with streaming_pair(run / "pg", pg_port, pg_port + 1):
        bouncer = start_pgbouncer(
            run / "pgbouncer",
            bouncer_port,
            upstream_host="127.0.0.1",
            upstream_port=pg_port,
            pool_size=int(os.environ.get("PROD_LOCAL_PGBOUNCER_POOL", "20")),
            # Beside the web processes, as in production: a Unix socket, no TCP stack on the hop.
            unix_socket=True,
        )
        try:
            direct = f"postgres://{SUPERUSER}@127.0.0.1:{pg_port}/{DB_NAME}"
            yield {
                "DATABASE_URL": bouncer.url(DB_NAME),
                "DATABASE_POOLER": "pgbouncer",
                "DATABASE_SESSION_URL": direct,
                "DATABASE_REPLICA_URL": f"postgres://{SUPERUSER}@127.0.0.1:{pg_port + 1}/{DB_NAME}",
                "PROD_LOCAL_PRIMARY_URL": direct,
            }
        finally:
            bouncer.stop()


@contextlib.contextmanager
def running(env: dict[str, str], port: int, logs: Path, *, to_terminal: bool = False):
    """The private redis (unless a broker was named), the databases, migrate, then the supervised processes."""
    procs: list[subprocess.Popen] = []
    redis_port = int(env["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    supervisor = None
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
        with databases(logs) as urls:
            env.update(urls)
            # This controlling process (seeding, counting) and migrate talk to the primary itself.
            direct = {**env, "DATABASE_URL": urls["PROD_LOCAL_PRIMARY_URL"], "DATABASE_POOLER": ""}
            os.environ.update({k: direct[k] for k in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")})
            _ensure_database()
            # The Procfile's release (migrate), once, before the processes start.
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=direct, check=True
            )
            specs = procfile(port)
            for spec in specs:
                if spec.name.startswith("worker_batch"):
                    # Batch work keeps session state across the transactions of one run (a paying run's
                    # claims are named by its server session): past the pooler, on a connection of its own.
                    spec.env.update(DATABASE_URL=urls["PROD_LOCAL_PRIMARY_URL"], DATABASE_POOLER="")
            supervisor = Supervisor(specs, env, None if to_terminal else logs).start()
            try:
                yield supervisor
            finally:
                supervisor.stop()
    finally:
        for proc in reversed(procs):
            _killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                _killpg(proc.pid, signal.SIGKILL)
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


def _client(ports: list[int], jobs: list[tuple], counter, out: mp.Queue) -> None:
    """Requests in turn, each to the next web process; a refused or failed one is sent again to the other
    (a load balancer's retry: a killed web process costs a retry, not a lost webhook), up to 8 tries.

    ``jobs``: ``("POST", path, body)`` (a Stripe event, signed as it goes out: a signature holds
    STRIPE_WEBHOOK_TOLERANCE, 300 s) or ``("GET", path, headers)``.
    """
    from bench.bench_webhooks import _sign

    latencies, errors, retries = [], 0, 0
    for i, (method, path, payload) in enumerate(jobs):
        started = time.perf_counter()
        for attempt in range(8):
            port = ports[(i + attempt) % len(ports)]
            if method == "POST":
                headers = {"Stripe-Signature": _sign(payload), "Content-Type": "application/json"}
                body = payload
            else:
                headers, body = payload, None
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            retries += 1
            time.sleep(0.2 * (attempt + 1))
        else:
            errors += 1
        latencies.append(time.perf_counter() - started)
        with counter.get_lock():
            counter.value += 1
    out.put((latencies, errors, retries))


def _drive(ports: list[int], jobs: list[tuple], clients: int, kills: list[tuple[float, Callable[[], None]]]) -> dict:
    """``jobs`` over ``clients`` processes; each of ``kills`` (share done, action) runs once that share is done."""
    out: mp.Queue = mp.Queue()
    counter = mp.Value("l", 0)
    # Daemons: a check stopped (Ctrl-C) stops its clients too, not waits for them to send everything.
    procs = [
        mp.Process(target=_client, args=(ports, jobs[i::clients], counter, out), daemon=True) for i in range(clients)
    ]
    started = time.perf_counter()
    for proc in procs:
        proc.start()
    pending = sorted(kills, key=lambda k: k[0])
    while pending and any(proc.is_alive() for proc in procs):
        if counter.value >= pending[0][0] * len(jobs):
            pending.pop(0)[1]()
        time.sleep(0.05)
    results = [out.get() for _ in procs]
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join()
    return {
        "errors": sum(r[1] for r in results),
        "retries": sum(r[2] for r in results),
        "per_s": round(len(jobs) / elapsed),
        "p99_ms": _p99([x for r in results for x in r[0]]),
    }


def _p99(latencies: list[float]) -> float:
    latencies = sorted(latencies)
    return round(latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000, 1) if latencies else 0.0


def check(args, env: dict[str, str], port: int, supervisor: Supervisor) -> dict:
    from bench.bench_webhooks import _seed, _stripe_event
    from deploy.local_postgres import replication_lag, wait_replayed
    from monetization.models import ApiKey, Customer, WebhookEvent

    ports = [port, port + 1]  # web.1 and web.2
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
    webhooks = []
    for i in range(args.webhooks):
        event = _stripe_event(run_id, i, created=created)
        event["data"]["object"]["customer"] = f"cus_{run_id}_{i % CUSTOMERS}"
        event["data"]["object"]["metadata"]["external_id"] = f"{run_id}-{i % CUSTOMERS}"
        webhooks.append(("POST", "/api/v1/webhooks/stripe", json.dumps(event).encode()))
    result: dict = {"webhooks": args.webhooks, "reads": args.reads}

    killed: list[str] = []

    def kill(name: str) -> Callable[[], None]:
        def action() -> None:
            supervisor.kill(name)
            killed.append(name)

        return action

    # Each kind of process at least once, one at a time (each is back well before the next kill): while webhooks
    # arrive, both web processes and both worker pools; while entitlements are read, a web process and beat.
    webhook_kills = [(0.2, "web.1"), (0.4, "worker_webhooks.1"), (0.6, "worker_batch.1"), (0.8, "web.2")]
    read_kills = [(0.33, "web.1"), (0.66, "beat.1")]
    if args.no_kills:
        webhook_kills, read_kills = [], []
    # Replica lag under load: the primary's view of the standby, sampled every second while the requests go in
    # and until every event is applied.
    primary = env["PROD_LOCAL_PRIMARY_URL"]
    lag = {"bytes": 0, "seconds": 0.0, "samples": 0, "all_applied_at": None}
    sampling = threading.Event()

    def sample_lag() -> None:
        while not sampling.wait(1.0):
            with contextlib.suppress(Exception):  # a sample lost to a busy primary is only a sample
                for standby in replication_lag(primary):
                    lag["bytes"] = max(lag["bytes"], standby["lag_bytes"] or 0)
                    lag["seconds"] = max(lag["seconds"], standby["lag_seconds"])
                lag["samples"] += 1
                # When the last event was applied, while the reads may still be going in.
                if lag["all_applied_at"] is None and _applied(primary, run_id) >= args.webhooks:
                    lag["all_applied_at"] = time.perf_counter()

    sampler = threading.Thread(target=sample_lag, name="replica-lag", daemon=True)
    sampler.start()
    started = time.perf_counter()
    sent = _drive(ports, webhooks, args.clients, [(share, kill(name)) for share, name in webhook_kills])
    result["webhook_errors"] = sent["errors"]
    result["webhook_retries"] = sent["retries"]
    result["webhooks_per_s"] = sent["per_s"]
    result["webhook_p99_ms"] = sent["p99_ms"]
    # A full-size run takes long on a busy machine: each phase's figures as soon as it ends.
    print(f"webhooks sent: {sent}", file=sys.stderr, flush=True)

    auth = {"Authorization": f"Bearer {full}"}
    reads = [
        ("GET", f"/api/v1/customers/{run_id}-{(i * 7919) % CUSTOMERS}/entitlements", auth) for i in range(args.reads)
    ]
    read = _drive(ports, reads, args.clients, [(share, kill(name)) for share, name in read_kills])
    result["read_errors"] = read["errors"]
    result["read_retries"] = read["retries"]
    result["reads_per_s"] = read["per_s"]
    result["read_p99_ms"] = read["p99_ms"]
    print(f"reads done: {read}", file=sys.stderr, flush=True)

    rows = WebhookEvent.objects.filter(event_id__startswith=f"evt_bench_{run_id}_")
    deadline = time.monotonic() + args.drain_timeout
    while rows.filter(status="applied").count() < args.webhooks and time.monotonic() < deadline:
        time.sleep(0.5)
    sampling.set()
    sampler.join()
    result["applied"] = rows.filter(status="applied").count()
    result["not_applied"] = args.webhooks - result["applied"]
    result["drained_s"] = round((lag["all_applied_at"] or time.perf_counter()) - started, 1)
    result["killed"] = ", ".join(killed) or "none"
    # Every killed process is back (the supervisor's restarts) and serving.
    _wait(lambda: all(_ready(p) for p in ports), "the web processes after the kills", timeout=120)
    result["restarts"] = ", ".join(f"{name} x{n}" for name, n in supervisor.restarts.items() if n) or "none"
    result["replica_lag_max_bytes"] = lag["bytes"]
    result["replica_lag_max_s"] = lag["seconds"]
    result["replica_lag_samples"] = lag["samples"]
    standbys = replication_lag(primary)
    result["replica_lag_now_bytes"] = sum(s["lag_bytes"] or 0 for s in standbys)
    wait_replayed(primary, env["DATABASE_REPLICA_URL"])
    result["replica_applied"] = _applied(env["DATABASE_REPLICA_URL"], run_id)
    result["errors"] = result["webhook_errors"] + result["read_errors"]
    result["ok"] = not (
        result["errors"]
        or result["not_applied"]
        or result["replica_applied"] != args.webhooks
        or len(standbys) != 1
        or any(supervisor.restarts[name] < killed.count(name) for name in killed)
    )
    return result


def _applied(url: str, run_id: str) -> int:
    """The run's events applied, as the database at ``url`` (the primary or the replica) has them."""
    import psycopg

    with psycopg.connect(url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM monetization_webhookevent WHERE event_id LIKE %s AND status = 'applied'",
            [f"evt_bench_{run_id}_%"],
        ).fetchone()[0]


def main(argv=None) -> int:
    args = _args(argv)
    port = int(os.environ.get("PROD_LOCAL_PORT", "8000"))
    env = production_env(int(os.environ.get("PROD_LOCAL_REDIS_PORT", "6431")), port)
    logs = Path(tempfile.mkdtemp(prefix="prod-local-"))
    if args.mode == "start":
        with running(env, port, logs, to_terminal=True), contextlib.suppress(KeyboardInterrupt):
            signal.pause()
        return 0
    with running(env, port, logs) as supervisor:
        result = check(args, env, port, supervisor)
    result["logs"] = str(logs)
    width = max(len(k) for k in result)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in result.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
