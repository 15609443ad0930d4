"""The entitlement endpoint under load, next to a bare Django view, both served by gunicorn.

- Data: 100,000 customers (10,000 with --quick) in the bench database, 20% with
  an active subscription, 5% with a grant; seeded once, reused afterwards.
- Server: gunicorn, 2 sync workers (the fastest setup on 2 cores, see
  DESIGN.md), production settings (DEBUG off), Redis cache, on 127.0.0.1.
- Load: N client processes in a closed loop (a new connection per request:
  sync workers close after each response). Latency is measured client-side.
- Scenarios: ``entitlements`` (the hot path: API key check, throttle and the
  cached entitlements of a working set primed beforehand), ``bare`` (a
  Django view reading one customer by primary key), and
  ``entitlements_miss`` (customers never asked before: resolution from the
  database, for information).
Targets: entitlements req/s >= bare req/s (ratio >= 1.0), entitlements p99 <= 15 ms.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from bench.db import ensure_database
from bench.lanes import broker_url

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "b"  # bench customers' external ids: b000000000 ...


class _Null:
    def write(self, *_):
        pass


def seed(count: int) -> dict:
    from django.core.management import call_command
    from django.db import transaction

    from monetization import clock
    from monetization.models import Customer, Provider
    from subscriptions.demo import catalog as demo_catalog
    from subscriptions.models import Entitlement, Grant, Plan, Platform, Subscription

    ensure_database()
    call_command("migrate", verbosity=0)
    demo_catalog.seed(rng=None, out=_Null(), options={})
    have = Customer.objects.filter(external_id__startswith=PREFIX).count()
    started = time.monotonic()
    if have < count:
        now = clock.now()
        plans = list(Plan.objects.filter(product__kind="consumer").order_by("code"))
        ent = Entitlement.objects.get(key="ad_free")
        rng = random.Random(7)
        batch = 10_000
        for start in range(have, count, batch):
            stop = min(count, start + batch)
            with transaction.atomic():
                Customer.objects.bulk_create(
                    [
                        Customer(
                            external_id=f"{PREFIX}{i:09d}",
                            handle=f"bench{i}",
                            email=f"bench{i}@example.com",
                            country="US",
                            created_at=now,
                        )
                        for i in range(start, stop)
                    ],
                    ignore_conflicts=True,
                )
                ids = dict(
                    Customer.objects.filter(
                        external_id__gte=f"{PREFIX}{start:09d}", external_id__lte=f"{PREFIX}{stop - 1:09d}"
                    ).values_list("external_id", "id")
                )
                subs, grants = [], []
                for i in range(start, stop):
                    cid = ids[f"{PREFIX}{i:09d}"]
                    if i % 5 == 0:
                        subs.append(
                            Subscription(
                                customer_id=cid,
                                plan=rng.choice(plans),
                                platform=Platform.WEB,
                                provider=Provider.STRIPE,
                                provider_subscription_id=f"sub_bench_{i}",
                                state=Subscription.State.ACTIVE,
                                current_period_start=now - timedelta(days=3),
                                current_period_end=now + timedelta(days=365),
                            )
                        )
                    if i % 20 == 3:
                        grants.append(Grant(customer_id=cid, entitlement=ent, reason="bench", starts_at=now))
                Subscription.objects.bulk_create(subs, ignore_conflicts=True)
                Grant.objects.bulk_create(grants)
    pks = list(Customer.objects.filter(external_id__startswith=PREFIX).values_list("id", flat=True)[:count])
    return {
        "customers": count,
        "seeded_now": max(0, count - have),
        "seed_seconds": time.monotonic() - started,
        "pks": pks,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_env() -> dict:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DEBUG="0",
        SECRET_KEY=env.get("SECRET_KEY") or "bench-only-secret-key-" + "k" * 40,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="0",
        # Production settings fail closed: a broker (nothing is queued here) and no payment provider.
        CELERY_BROKER_URL=broker_url(),
        PAYMENT_PROVIDERS_ENABLED="none",
        # Throttling stays on (its cost is measured) with a ceiling the benchmark never reaches.
        API_THROTTLE_RATE="100000000/min",
        API_THROTTLE_CUSTOMER_RATE="100000000/min",
        API_THROTTLE_IP_RATE="100000000/min",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return env


def start_server(
    port: int, extra_env: dict | None = None, app: str = "backoffice.wsgi:application", ready: str = "/healthz"
) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        app,
        "--workers",
        "2",
        "--worker-class",
        "sync",
        "--bind",
        f"127.0.0.1:{port}",
        "--backlog",
        "512",
        "--log-level",
        "warning",
    ]
    env = _server_env()
    env["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    env.update(extra_env or {})
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    deadline = time.monotonic() + 120  # a shared, busy machine can take over 30 s to import and fork
    while time.monotonic() < deadline:
        try:
            status, _ = _request(port, ready, "")
            if status == 200:
                return proc
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError("gunicorn exited at start")
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("gunicorn did not answer /healthz")


def _request(port: int, path: str, key: str) -> tuple[int, bytes]:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(req)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    data = b"".join(chunks)
    return int(data[9:12]), data


def _client(port, key, paths, duration, max_requests, queue):
    lat, errors, i = [], 0, 0
    end = time.perf_counter() + duration
    while time.perf_counter() < end and i < max_requests:
        path = paths[i % len(paths)]
        i += 1
        t0 = time.perf_counter()
        try:
            status, _ = _request(port, path, key)
        except OSError:
            status = 0
        lat.append(time.perf_counter() - t0)
        if status != 200:
            errors += 1
    queue.put((lat, errors))


def _figures(lat: list[float], errors: int, elapsed: float) -> dict:
    lat = sorted(lat)
    if not lat:
        return {"requests": 0}
    return {
        "requests": len(lat),
        "errors": errors,
        "req_per_s": round(len(lat) / elapsed),
        "p50_ms": round(lat[len(lat) // 2] * 1000, 2),
        "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 2),
    }


def load(
    port: int, key: str, paths: list[str], *, duration: float, concurrency: int, max_requests: int = 10**9
) -> dict:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    shards = [paths[n::concurrency] or paths for n in range(concurrency)]  # a one-path scenario: all ask it
    procs = [
        ctx.Process(target=_client, args=(port, key, shard, duration, max_requests // concurrency + 1, queue))
        for shard in shards
    ]
    started = time.perf_counter()
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - started
    lat = [x for r, _ in results for x in r]
    return {**_figures(lat, sum(e for _, e in results), elapsed), "_lat": lat, "_elapsed": elapsed}


def _combined(rounds: list[dict]) -> dict:
    """One scenario's figures over all its rounds."""
    lat = [x for r in rounds for x in r.get("_lat", [])]
    errors = sum(r.get("errors", 0) for r in rounds)
    return _figures(lat, errors, sum(r.get("_elapsed", 0) for r in rounds))


def _public(figures: dict) -> dict:
    return {k: v for k, v in figures.items() if not k.startswith("_")}


def measure(
    port: int,
    hello_port: int | None,
    key: str,
    working_ids: list[str],
    miss_paths: list[str],
    bare_paths: list[str],
    *,
    duration: float,
    concurrency: int,
) -> dict:
    """Prime the working set, then measure in turns the hit path, the bare view, a Django view without
    database, a bare WSGI hello and the hello reading its answer from Redis (on ``hello_port``), then
    the miss path."""
    import redis
    from django.core.cache import cache
    from django.db import connections

    from bench.hello import REDIS_BODY_KEY
    from subscriptions.entitlements import entitlements_cache_key

    ent_paths = [f"/api/v1/customers/{x}/entitlements" for x in working_ids]
    status, body = _request(port, ent_paths[0], key)
    assert status == 200, body[:300]
    # Prime the cache for the working set (every client app asks on session start).
    prime = load(port, key, ent_paths, duration=180, concurrency=concurrency, max_requests=len(ent_paths))
    # Measure the hit path on what the priming really cached (on a busy machine it may not finish).
    cached = cache.get_many([entitlements_cache_key(x) for x in working_ids])
    ent_paths = [
        f"/api/v1/customers/{x}/entitlements" for x in working_ids if entitlements_cache_key(x) in cached
    ] or ent_paths
    # The Redis hello answers one cached entitlement body, as large as a hit's.
    hit_body = cached.get(entitlements_cache_key(working_ids[0])) or body
    redis.Redis.from_url(os.environ["REDIS_URL"]).set(REDIS_BODY_KEY, hit_body)
    connections.close_all()
    load(port, key, bare_paths[:2000], duration=2, concurrency=concurrency)  # warm-up
    # Each scenario in ROUNDS turns, interleaved, so that the machine's load (busy with other work)
    # weighs on all alike; ratios are taken per round and over all rounds.
    scenarios = {
        "entitlements": (port, ent_paths),
        "bare": (port, bare_paths),
        "nodb": (port, ["/bench/nodb"]),
        "hello": (hello_port, ["/hello"]),
        "redis_hello": (hello_port, ["/hello/redis"]),
    }
    turns = {name: [] for name in scenarios}
    for _ in range(ROUNDS):
        for name, (at, paths) in scenarios.items():
            if at is not None:
                turns[name].append(load(at, key, paths, duration=duration / ROUNDS, concurrency=concurrency))
    miss = load(port, key, miss_paths, duration=min(duration, 5.0), concurrency=concurrency)
    figures = {name: _combined(rounds) for name, rounds in turns.items() if rounds}
    ratios = {}
    for other in ("bare", "nodb", "hello", "redis_hello"):
        per_round = [
            round(e["req_per_s"] / o["req_per_s"], 2)
            for e, o in zip(turns["entitlements"], turns[other], strict=False)
            if o.get("req_per_s")
        ]
        if per_round:
            ratios[f"entitlements_over_{other}"] = {
                "all_rounds": round(figures["entitlements"]["req_per_s"] / figures[other]["req_per_s"], 2),
                "per_round": per_round,
            }
    if figures.get("redis_hello", {}).get("req_per_s") and figures.get("hello", {}).get("req_per_s"):
        # What one Redis round trip alone leaves of the hello: the ceiling for a hit that makes one.
        ratios["redis_hello_over_hello"] = {
            "all_rounds": round(figures["redis_hello"]["req_per_s"] / figures["hello"]["req_per_s"], 2),
            "per_round": [
                round(r["req_per_s"] / h["req_per_s"], 2)
                for r, h in zip(turns["redis_hello"], turns["hello"], strict=False)
                if h.get("req_per_s")
            ],
        }
    return {
        "prime": _public(prime),
        "working_set_cached": len(ent_paths),
        **figures,
        "entitlements_miss": _public(miss),
        "ratios": ratios,
    }


ROUNDS = 3


def serve_and_measure(
    full_key: str, working_ids: list[str], miss_paths: list[str], bare_paths: list[str], *, duration, concurrency
) -> tuple[dict, float | None]:
    """Start gunicorn, run :func:`measure`, stop it; returns the figures and entitlements/bare req/s."""
    port, hello_port = _free_port(), _free_port()
    server = start_server(port)
    hello = start_server(hello_port, app="bench.hello:application", ready="/hello")
    try:
        figures = measure(
            port, hello_port, full_key, working_ids, miss_paths, bare_paths, duration=duration, concurrency=concurrency
        )
    finally:
        for proc in (server, hello):
            proc.terminate()
            proc.wait(timeout=30)
    ent, bare = figures["entitlements"], figures["bare"]
    ratio = round(ent["req_per_s"] / bare["req_per_s"], 2) if bare.get("req_per_s") else None
    return figures, ratio


def measure_pooled(
    full_key: str, working_ids: list[str], miss_paths: list[str], bare_paths: list[str], *, duration, concurrency
) -> dict:
    """``--via-pgbouncer``: the same gunicorn twice, straight to PostgreSQL and through a private PgBouncer
    (bench/pooler.py), each scenario in ROUNDS interleaved turns (the side going first alternates): the cached
    hit path, the bare view (one primary-key read a request) and the miss path (entitlements resolved from the
    database, customers never asked before: a slice of its own per turn). Figures per side, pooled over direct
    per round and over all rounds, and gunicorn's CPU per request (master and workers)."""
    from django.core.cache import cache

    from bench.bench_webhooks import _stopped, _tree_cpu
    from bench.pooler import pgbouncer_env, ratios
    from subscriptions.entitlements import entitlements_cache_key

    ent_paths = [f"/api/v1/customers/{x}/entitlements" for x in working_ids]
    sides = ("direct", "pgbouncer")
    slices = [miss_paths[n :: ROUNDS * len(sides)] for n in range(ROUNDS * len(sides))]
    with pgbouncer_env(os.environ["DATABASE_URL"]) as pooled_env:
        ports = {"direct": _free_port(), "pgbouncer": _free_port()}
        servers: dict = {}
        try:
            servers["direct"] = start_server(ports["direct"])
            servers["pgbouncer"] = start_server(ports["pgbouncer"], pooled_env)
            status, body = _request(ports["pgbouncer"], ent_paths[0], full_key)
            assert status == 200, body[:300]
            # The cache is the two sides' one Redis: primed once, through both.
            prime = load(
                ports["pgbouncer"],
                full_key,
                ent_paths,
                duration=180,
                concurrency=concurrency,
                max_requests=len(ent_paths),
            )
            # The hit path on what the priming really cached (on a busy machine it may not finish).
            cached = cache.get_many([entitlements_cache_key(x) for x in working_ids])
            ent_paths = [
                f"/api/v1/customers/{x}/entitlements" for x in working_ids if entitlements_cache_key(x) in cached
            ] or ent_paths
            for side in sides:
                load(ports[side], full_key, bare_paths[:2000], duration=2, concurrency=concurrency)  # warm-up
            turns: dict = {(side, name): [] for side in sides for name in ("entitlements", "bare", "miss")}
            for r in range(ROUNDS):
                for k, side in enumerate(sides if r % 2 == 0 else sides[::-1]):
                    port, pid = ports[side], servers[side].pid
                    miss = slices[r * len(sides) + k]
                    for name, paths, limit in (
                        ("entitlements", ent_paths, 10**9),
                        ("bare", bare_paths, 10**9),
                        ("miss", miss, len(miss)),  # never a path twice: each a miss
                    ):
                        cpu = _tree_cpu(pid)
                        figures = load(
                            port,
                            full_key,
                            paths,
                            duration=duration / ROUNDS,
                            concurrency=concurrency,
                            max_requests=limit,
                        )
                        figures["_cpu"] = _tree_cpu(pid) - cpu
                        # Unrounded: at a few requests a second, rounded rates make ratios of 1.0 or 2.0.
                        figures["_rate"] = figures.get("requests", 0) / figures["_elapsed"]
                        turns[(side, name)].append(figures)
        finally:
            for proc in servers.values():
                proc.terminate()
            for proc in servers.values():
                _stopped(proc)
    result: dict = {"prime": _public(prime), "working_set_cached": len(ent_paths)}
    for name in ("entitlements", "bare", "miss"):
        per_side = {}
        for side in sides:
            rounds = turns[(side, name)]
            requests = sum(r.get("requests", 0) for r in rounds)
            cpu = sum(r["_cpu"] for r in rounds)
            per_side[side] = {
                **_combined(rounds),
                "gunicorn_cpu_ms_per_request": round(cpu * 1000 / requests, 2) if requests else None,
            }
        result[name] = {
            **per_side,
            "pgbouncer_over_direct_req_per_s": ratios(turns[("direct", name)], turns[("pgbouncer", name)], "_rate"),
            "pgbouncer_over_direct_p99": ratios(turns[("direct", name)], turns[("pgbouncer", name)], "p99_ms"),
        }
    return result


def run(args) -> dict:
    from django.db import connections

    from bench.lanes import cache_clear
    from monetization.services.api_keys import api_key_create

    quick = getattr(args, "quick", False)
    count = 10_000 if quick else 100_000
    # Seconds of load per scenario, over all its rounds: longer on a busy machine for steadier figures.
    duration = float(os.environ.get("BENCH_DURATION", "5" if quick else "15"))
    concurrency = int(os.environ.get("BENCH_CONCURRENCY", "4"))
    data = seed(count)
    pks = data.pop("pks")
    full_key, _ = api_key_create(name="bench", scopes=["entitlements:read"])
    cache_clear()
    connections.close_all()  # the client processes fork from here

    rng = random.Random(11)
    working = rng.sample(range(count), min(count, 20_000 if not quick else 5_000))
    chosen = set(working)
    cold = [i for i in range(count) if i not in chosen]
    miss_paths = [f"/api/v1/customers/{PREFIX}{i:09d}/entitlements" for i in rng.sample(cold, min(len(cold), 20_000))]
    bare_paths = [f"/bench/bare/{pk}" for pk in rng.choices(pks, k=20_000)]

    if getattr(args, "via_pgbouncer", False):
        from bench.pooler import described

        return {
            **data,
            "seed_seconds": round(data["seed_seconds"], 1),
            "concurrency": concurrency,
            "duration_s": duration,
            "rounds": ROUNDS,
            "pgbouncer": described(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            **measure_pooled(
                full_key,
                [f"{PREFIX}{i:09d}" for i in working],
                miss_paths,
                bare_paths,
                duration=duration,
                concurrency=concurrency,
            ),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "target": "pgbouncer req/s >= 0.9 x direct (issue 17)",
        }
    figures, ratio = serve_and_measure(
        full_key,
        [f"{PREFIX}{i:09d}" for i in working],
        miss_paths,
        bare_paths,
        duration=duration,
        concurrency=concurrency,
    )
    ent = figures["entitlements"]
    return {
        **data,
        "seed_seconds": round(data["seed_seconds"], 1),
        "concurrency": concurrency,
        "duration_s": duration,
        **figures,
        "ratio_entitlements_over_bare": ratio,
        "target": "ratio >= 1.0 and entitlements p99 <= 15 ms",
        "target_met": bool(ratio and ratio >= 1.0 and ent["p99_ms"] <= 15),
    }
