"""The entitlement endpoint with 1,000,000 subscriptions and grants behind it, and revocation latency.

- Data (set-based, INSERT ... SELECT generate_series; kept for the next run):
  600,000 customers, 1,000,000 subscriptions across every state and the three
  platforms (customer ``n % 600,000``: most have one or two, in mixed states),
  200,000 grants; ANALYZE. ``--quick``: 30,000 customers, 50,000 subscriptions,
  10,000 grants.
- Load: the foundation benchmark's method (bench/bench_entitlements.py: gunicorn
  sync x2, production settings, the same concurrency and durations, closed-loop
  client processes): the cached hit path over a primed working set, the bare
  primary-key view in the same run, and the cache-miss path for information.
- Revocation: gunicorn and a real Celery worker (solo pool) on a Redis broker;
  for N customers whose entitlements are cached, a correctly signed Stripe
  ``customer.subscription.deleted`` is POSTed, then the entitlement endpoint is
  polled every ~5 ms until the entitlement is gone: seconds from the webhook's
  200 to the entitlement disappearing.
Targets: entitlements req/s >= 1.2x bare, entitlements p99 <= 15 ms, revocation visible within 1 s.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import time
import uuid
from datetime import timedelta

from bench.bench_entitlements import _free_port, _Null, _request, _server_env, serve_and_measure, start_server
from bench.db import ensure_database
from bench.lanes import broker_url, cache_clear
from bench.worker import start_worker, wait_ready

PREFIX = "m"  # customers m000000000 ...
SECRET = "whsec_bench_1m_entitlements_7c2e"


def _stripe_env() -> dict:
    """The revocation arrives as a signed Stripe webhook: Stripe is this run's one provider (its API is never
    called), the worker's broker is the run's own Redis database."""
    return {
        "CELERY_BROKER_URL": broker_url(),
        "PAYMENT_PROVIDERS_ENABLED": "stripe",
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "STRIPE_API_KEY": "sk_test_bench_never_called",
    }


STATES = [  # one in ten subscriptions per slot: 40% active, the rest spread over every other state
    "active",
    "active",
    "active",
    "active",
    "expired",
    "canceled",
    "trialing",
    "in_grace_period",
    "on_hold",
    "revoked",
]
PLATFORMS = [("web", "stripe", "sub_m"), ("ios", "app_store", "2000000"), ("android", "google_play", "gpa.m")]


def seed(customers: int, subscriptions: int, grants: int) -> dict:
    from django.core.management import call_command
    from django.db import connection

    from monetization import clock
    from subscriptions.demo import catalog as demo_catalog
    from subscriptions.models import Entitlement, Plan

    ensure_database()
    call_command("migrate", verbosity=0)
    demo_catalog.seed(rng=None, out=_Null(), options={})
    started = time.monotonic()
    now = clock.now()
    plan_ids = list(Plan.objects.filter(product__kind="consumer").order_by("code").values_list("id", flat=True))
    ent_id = Entitlement.objects.get(key="ad_free").pk
    seeded = {}
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM monetization_customer WHERE external_id LIKE %s", [PREFIX + "%"])
        have = cur.fetchone()[0]
        if have < customers:
            cur.execute(
                """
                INSERT INTO monetization_customer (external_id, handle, email, country, created_at)
                SELECT %(p)s || lpad(i::text, 9, '0'), 'm' || i, 'm' || i || '@example.com',
                       (ARRAY['US','GB','DE','FR','BR','IN','JP'])[i %% 7 + 1], %(now)s
                FROM generate_series(%(have)s, %(n)s - 1) AS i
                ON CONFLICT (external_id) DO NOTHING
                """,
                {"p": PREFIX, "have": have, "n": customers, "now": now},
            )
            seeded["customers"] = cur.rowcount
        cur.execute("SELECT count(*) FROM subscriptions_subscription WHERE provider_subscription_id LIKE 'm1m.%%'")
        have_subs = cur.fetchone()[0]
        if have_subs < subscriptions:
            # Subscription n belongs to customer n % customers; state and platform cycle with n.
            cur.execute(
                """
                WITH c AS (
                    SELECT id, (substr(external_id, 2))::int AS i FROM monetization_customer
                    WHERE external_id LIKE %(p)s AND external_id < %(hi)s
                ), s AS (
                    SELECT n, (n %% %(customers)s) AS i,
                           CASE WHEN n %% 10 = 4 AND n %% 7 = 0 THEN (ARRAY['paused','pending'])[(n / 70) %% 2 + 1]
                                ELSE (%(states)s::text[])[n %% 10 + 1] END AS state,
                           (n / 10) %% 3 AS plat
                    FROM generate_series(%(have)s, %(total)s - 1) AS n
                )
                INSERT INTO subscriptions_subscription (
                    platform, provider, provider_subscription_id, state, current_period_start,
                    current_period_end, trial_end, grace_end, auto_renew, cancel_reason, quantity,
                    started_at, ended_at, created_at, updated_at, customer_id, plan_id)
                SELECT (ARRAY['web','ios','android'])[s.plat + 1],
                       (ARRAY['stripe','app_store','google_play'])[s.plat + 1],
                       'm1m.' || s.n,
                       s.state,
                       %(now)s - interval '10 days',
                       CASE WHEN s.state IN ('expired','revoked') THEN %(now)s - interval '1 day'
                            ELSE %(now)s + interval '20 days' END,
                       CASE WHEN s.state = 'trialing' THEN %(now)s + interval '5 days' END,
                       CASE WHEN s.state = 'in_grace_period' THEN %(now)s + interval '3 days' END,
                       s.state NOT IN ('canceled','expired','revoked'),
                       '',
                       1,
                       %(now)s - interval '40 days',
                       CASE WHEN s.state IN ('expired','revoked') THEN %(now)s - interval '1 day' END,
                       %(now)s, %(now)s, c.id,
                       (%(plans)s::bigint[])[s.n %% %(nplans)s + 1]
                FROM s JOIN c ON c.i = s.i
                ON CONFLICT (provider, provider_subscription_id) DO NOTHING
                """,
                {
                    "p": PREFIX + "%",
                    "hi": f"{PREFIX}{customers:09d}",
                    "customers": customers,
                    "states": STATES,
                    "have": have_subs,
                    "total": subscriptions,
                    "now": now,
                    "plans": plan_ids,
                    "nplans": len(plan_ids),
                },
            )
            seeded["subscriptions"] = cur.rowcount
        cur.execute("SELECT count(*) FROM subscriptions_grant WHERE reason = 'bench-1m'")
        have_grants = cur.fetchone()[0]
        if have_grants < grants:
            # Grants on every third customer (some expired, some revoked, most active).
            cur.execute(
                """
                INSERT INTO subscriptions_grant (
                    starts_at, ends_at, reason, revoked_at, revoke_reason, created_at, customer_id, entitlement_id)
                SELECT %(now)s - interval '5 days',
                       CASE WHEN g %% 10 = 0 THEN %(now)s - interval '1 day'
                            WHEN g %% 10 = 1 THEN %(now)s + interval '30 days' END,
                       'bench-1m',
                       CASE WHEN g %% 10 = 2 THEN %(now)s - interval '2 days' END,
                       CASE WHEN g %% 10 = 2 THEN 'bench' ELSE '' END,
                       %(now)s, c.id, %(ent)s
                FROM generate_series(%(have)s, %(total)s - 1) AS g
                JOIN monetization_customer c
                  ON c.external_id = %(pfx)s || lpad(((g * 3 + 1) %% %(customers)s)::text, 9, '0')
                """,
                {
                    "now": now,
                    "have": have_grants,
                    "total": grants,
                    "pfx": PREFIX,
                    "customers": customers,
                    "ent": ent_id,
                },
            )
            seeded["grants"] = cur.rowcount
        if seeded:
            cur.execute("ANALYZE monetization_customer, subscriptions_subscription, subscriptions_grant")
        cur.execute("SELECT count(*) FROM subscriptions_subscription WHERE provider_subscription_id LIKE 'm1m.%%'")
        total_subs = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM subscriptions_grant WHERE reason = 'bench-1m'")
        total_grants = cur.fetchone()[0]
    return {
        "customers": customers,
        "subscriptions": total_subs,
        "grants": total_grants,
        "seeded_now": seeded,
        "seed_seconds": round(time.monotonic() - started, 1),
    }


# --- revocation -----------------------------------------------------------------


def _revocation_customers(n: int) -> tuple[list[tuple[str, str, str]], str]:
    """N fresh customers, each with one active Stripe subscription and a Stripe customer identity."""
    from django.db import transaction

    from monetization import clock
    from monetization.models import Customer, Provider, ProviderIdentity
    from subscriptions.models import Platform, Sku, Subscription

    run = uuid.uuid4().hex[:10]
    now = clock.now()
    sku = Sku.objects.filter(platform=Platform.WEB).select_related("plan").order_by("pk").first()
    plan = sku.plan
    rows = [(f"rv{run}{i:04d}", f"cus_rv{run}{i:04d}", f"sub_rv{run}{i:04d}") for i in range(n)]
    with transaction.atomic():
        customers = Customer.objects.bulk_create(
            [
                Customer(external_id=x, handle=x, email=f"{x}@example.com", country="US", created_at=now)
                for x, _, _ in rows
            ]
        )
        ProviderIdentity.objects.bulk_create(
            [
                ProviderIdentity(
                    customer=c,
                    provider=Provider.STRIPE,
                    kind=ProviderIdentity.Kind.CUSTOMER_ID,
                    value=cus,
                    created_at=now,
                )
                for c, (_, cus, _) in zip(customers, rows, strict=True)
            ]
        )
        Subscription.objects.bulk_create(
            [
                Subscription(
                    customer=c,
                    plan=plan,
                    sku=sku,
                    platform=Platform.WEB,
                    provider=Provider.STRIPE,
                    provider_subscription_id=sub,
                    state=Subscription.State.ACTIVE,
                    current_period_start=now - timedelta(days=3),
                    current_period_end=now + timedelta(days=27),
                    started_at=now - timedelta(days=3),
                )
                for c, (_, _, sub) in zip(customers, rows, strict=True)
            ]
        )
    return rows, sku.store_product_id


def _deleted_event(external_id: str, cus: str, sub: str, price_id: str) -> bytes:
    from tests.webhooks.support import stripe_body, stripe_subscription_event

    now = int(time.time())
    event = stripe_subscription_event(
        event_id=f"evt_{sub}",
        created=now,
        status="canceled",
        event_type="customer.subscription.deleted",
        sub_id=sub,
        external_id=external_id,
        period_start=now - 3 * 86400,
        period_end=now + 27 * 86400,
        price_id=price_id,
    )
    obj = event["data"]["object"]
    obj["customer"] = cus
    obj.update(canceled_at=now, ended_at=now)
    return stripe_body(event)


def _post(port: int, path: str, body: bytes, headers: dict) -> int:
    head = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    raw = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(raw)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return int(b"".join(chunks)[9:12])


def _entitled(port: int, external_id: str, key: str) -> bool:
    status, data = _request(port, f"/api/v1/customers/{external_id}/entitlements", key)
    assert status == 200, data[:300]
    body = json.loads(data.split(b"\r\n\r\n", 1)[1])
    return bool(body["entitlements"])


def _start_worker(log_path: str) -> tuple[subprocess.Popen, object, str]:
    env = _server_env()
    env.update(_stripe_env())
    log = open(log_path, "wb")  # noqa: SIM115 (closed by the caller)
    node = f"bench-ent1m-{os.getpid()}@localhost"
    return start_worker(env, node=node, log=log), log, node


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def revocation(key: str, n: int) -> dict:
    import tempfile

    from django.db import connections

    from backoffice.celery import app as celery_app
    from tests.webhooks.support import stripe_signature

    rows, price_id = _revocation_customers(n)
    connections.close_all()
    celery_app.conf.update(broker_url=broker_url())
    with celery_app.connection_for_write(url=broker_url()) as conn:
        conn.default_channel.queue_purge("webhooks")  # no leftovers from an earlier run
    log_path = os.path.join(tempfile.gettempdir(), f"bench-ent1m-worker-{os.getpid()}.log")
    server = worker = log = None
    latencies, accept_ms, not_gone, polls = [], [], 0, 0
    try:
        worker, log, node = _start_worker(log_path)
        port = _free_port()
        server = start_server(port, _stripe_env())
        wait_ready(worker, node, what=log_path)
        for external_id, _, _ in rows:  # prime: every entitlement cached
            assert _entitled(port, external_id, key), external_id
        for external_id, cus, sub in rows:
            assert _entitled(port, external_id, key)  # served from cache right before the webhook
            body = _deleted_event(external_id, cus, sub, price_id)
            t0 = time.perf_counter()
            status = _post(
                port, "/api/v1/webhooks/stripe", body, {"Stripe-Signature": stripe_signature(body, secret=SECRET)}
            )
            accepted = time.perf_counter()
            assert status == 200, status
            accept_ms.append((accepted - t0) * 1000)
            gone_by = accepted + 10.0
            while True:
                polls += 1
                if not _entitled(port, external_id, key):
                    latencies.append(time.perf_counter() - accepted)
                    break
                if time.perf_counter() > gone_by:
                    not_gone += 1
                    break
                time.sleep(0.005)
    finally:
        _stop(server)
        _stop(worker)
        if log is not None:
            log.close()
    lat = sorted(latencies)
    acc = sorted(accept_ms)
    if not lat:
        return {"webhooks": n, "revoked_seen": 0, "not_gone_after_10s": not_gone}
    return {
        "webhooks": n,
        "revoked_seen": len(lat),
        "not_gone_after_10s": not_gone,
        "polls": polls,
        "webhook_200_p50_ms": round(acc[len(acc) // 2], 1),
        "visible_p50_s": round(lat[len(lat) // 2], 3),
        "visible_p95_s": round(lat[min(len(lat) - 1, int(len(lat) * 0.95))], 3),
        "visible_max_s": round(lat[-1], 3),
    }


def run(args) -> dict:
    from django.db import connection, connections

    from monetization.services.api_keys import api_key_create

    quick = getattr(args, "quick", False)
    customers, subscriptions, grants = (30_000, 50_000, 10_000) if quick else (600_000, 1_000_000, 200_000)
    duration = 5.0 if quick else 15.0  # as the foundation benchmark
    concurrency = int(os.environ.get("BENCH_CONCURRENCY", "4"))
    revocations = int(os.environ.get("BENCH_REVOCATIONS", "20" if quick else "50"))
    data = seed(customers, subscriptions, grants)
    with connection.cursor() as cur:
        cur.execute("SELECT min(id), max(id) FROM monetization_customer WHERE external_id LIKE %s", [PREFIX + "%"])
        lo, hi = cur.fetchone()
    full_key, _ = api_key_create(name="bench-1m", scopes=["entitlements:read"])
    cache_clear()
    connections.close_all()  # the client processes fork from here

    rng = random.Random(11)
    working = rng.sample(range(customers), min(customers, 5_000 if quick else 20_000))
    chosen = set(working)
    miss = [i for i in rng.sample(range(customers), min(customers, 25_000)) if i not in chosen][:20_000]
    miss_paths = [f"/api/v1/customers/{PREFIX}{i:09d}/entitlements" for i in miss]
    bare_paths = [f"/bench/bare/{rng.randint(lo, hi)}" for _ in range(20_000)]

    figures, ratio = serve_and_measure(
        full_key,
        [f"{PREFIX}{i:09d}" for i in working],
        miss_paths,
        bare_paths,
        duration=duration,
        concurrency=concurrency,
    )
    ent = figures["entitlements"]
    rev = revocation(full_key, revocations)
    load_avg = [round(x, 2) for x in os.getloadavg()]
    return {
        **data,
        "concurrency": concurrency,
        "duration_s": duration,
        **figures,
        "ratio_entitlements_over_bare": ratio,
        "revocation": rev,
        "load_average_1_5_15": load_avg,
        "target": "ratio >= 1.2, entitlements p99 <= 15 ms, revocation visible_max_s <= 1.0",
        "target_met": bool(
            ratio
            and ratio >= 1.2
            and ent["p99_ms"] <= 15
            and rev.get("revoked_seen") == revocations
            and rev.get("visible_max_s", 99) <= 1.0
        ),
    }
