"""Webhook inbox throughput.

1. Stripe-signed webhooks accepted into the inbox over HTTP (gunicorn sync x2 on
   127.0.0.1, concurrent client processes): events/s, target >= 1,000.
2. App Store JWS notifications (x5c chain verified by Apple's library): target >= 500/s.
3. Applying stored events in one worker process: a real ``celery worker --pool solo``
   on the Redis broker, the apply task queued as the endpoints queue it; events/s
   from the worker starting to consume to the last event applied: target >= 500/s; then by type
   (``invoice.paid`` alone >= 800/s, the Stripe mix >= 1,000/s, the App Store mix >= 800/s), with the
   statements per event of each type counted in this process. ``BENCH_WEBHOOKS_APPLY_ONLY=1`` skips 1 and 2.

Every delivery is a distinct event (distinct id, fresh signature), so each one is
a real INSERT and a real enqueue onto the Redis broker (purged afterwards).
"""

from __future__ import annotations

import http.client
import json
import math
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.lanes import broker_url
from bench.worker import start_worker, wait_ready

REPO = Path(__file__).resolve().parent.parent
SECRET = "whsec_bench_5e1f2a9c"
TARGETS = {
    "stripe_events_per_s": 1000,
    "app_store_events_per_s": 500,
    "apply_events_per_s": 500,
    # Issue 18: applying what providers send most, by one worker.
    "apply_invoice_paid_events_per_s": 800,
    "apply_stripe_mix_events_per_s": 1000,
    "apply_app_store_mix_events_per_s": 800,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _client(port: int, path: str, bodies: list[tuple[bytes, dict]], out: mp.Queue) -> None:
    """A lean HTTP/1.0-style client: prebuilt request bytes, one connection per request (sync gunicorn closes)."""
    requests = []
    for body, headers in bodies:
        head = [
            f"POST {path} HTTP/1.1",
            "Host: 127.0.0.1",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "Connection: close",
        ]
        head += [f"{k}: {v}" for k, v in headers.items()]
        requests.append(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    latencies, errors = [], 0
    cpu_started = time.process_time()
    for raw in requests:
        started = time.perf_counter()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(raw)
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
            if not b"".join(chunks[:1])[:12].endswith(b"200"):
                errors += 1
        except OSError:
            errors += 1
        latencies.append(time.perf_counter() - started)
    out.put((latencies, errors, time.process_time() - cpu_started))


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _tree_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) of a process and its direct children (gunicorn master + workers), Linux only."""
    if pid is None:
        return 0.0
    total = 0.0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for p in [str(pid), *children]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICK
        except (OSError, IndexError, ValueError):
            pass
    return total


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat (0, 0 elsewhere)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values) - idle) / _TICK, sum(values) / _TICK


def _load(port: int, path: str, bodies: list[tuple[bytes, dict]], clients: int, server_pid: int | None = None) -> dict:
    out: mp.Queue = mp.Queue()
    chunks = [bodies[i::clients] for i in range(clients)]
    procs = [mp.Process(target=_client, args=(port, path, chunk, out)) for chunk in chunks]
    server_cpu, (busy, total) = _tree_cpu(server_pid), _machine_cpu()
    started = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    elapsed = time.perf_counter() - started
    server_cpu = _tree_cpu(server_pid) - server_cpu
    busy_after, total_after = _machine_cpu()
    for p in procs:
        p.join()
    latencies = sorted(x for lat, _, _ in results for x in lat)
    errors = sum(e for _, e, _ in results)
    client_cpu = sum(c for _, _, c in results)
    cores = (total_after - total) / elapsed if total_after > total else float(os.cpu_count() or 1)
    cpu = {
        # Shares of the machine's CPU capacity over the run (cores x seconds), to show who used it.
        "load_generator_cpu_share": round(client_cpu / (elapsed * cores), 2),
        "gunicorn_cpu_share": round(server_cpu / (elapsed * cores), 2) if server_pid else None,
        "machine_busy_share": round((busy_after - busy) / (total_after - total), 2) if total_after > total else None,
        "gunicorn_cpu_ms_per_event": round(server_cpu * 1000 / len(bodies), 2) if server_pid else None,
        "load_generator_cpu_ms_per_event": round(client_cpu * 1000 / len(bodies), 2),
    }
    return {
        **cpu,
        "events": len(bodies),
        "seconds": round(elapsed, 2),
        "events_per_s": round(len(bodies) / elapsed),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
        "errors": errors,
    }


def _gunicorn(env: dict, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "backoffice.wsgi",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "--backlog",
            "2048",
        ],
        cwd=REPO,
        env=env,
    )
    deadline = time.monotonic() + 300  # a shared, busy machine can take minutes to import and fork
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.terminate()  # the master, so that it stops its workers too
    _stopped(proc)
    raise RuntimeError("gunicorn did not start")


def _seed():
    from monetization.models import Customer, Provider, ProviderIdentity
    from subscriptions.models import Entitlement, Plan, Platform, Product, Sku

    product, _ = Product.objects.get_or_create(code="bench-premium", defaults={"name": "Bench Premium"})
    ent, _ = Entitlement.objects.get_or_create(key="bench_badge", defaults={"name": "Bench badge"})
    product.entitlements.add(ent)
    plan, _ = Plan.objects.get_or_create(
        code="bench-premium-monthly", defaults={"product": product, "interval": "month"}
    )
    Sku.objects.get_or_create(plan=plan, platform=Platform.WEB, defaults={"store_product_id": "price_bench_monthly"})
    Sku.objects.get_or_create(
        plan=plan, platform=Platform.IOS, defaults={"store_product_id": "com.example.bench.monthly"}
    )
    customer, _ = Customer.objects.get_or_create(external_id="bench-customer", defaults={"handle": "bench"})
    ProviderIdentity.objects.get_or_create(
        provider=Provider.APP_STORE,
        kind="app_account_token",
        value="0b0b0b0b-0000-4000-8000-000000000001",
        defaults={"customer": customer},
    )
    return customer


def _stripe_event(run: str, i: int, *, created: int) -> dict:
    sub_id = f"sub_bench_{run}_{i}"
    return {
        "id": f"evt_bench_{run}_{i}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": created + i,
        "type": "customer.subscription.updated",
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {
            "object": {
                "id": sub_id,
                "object": "subscription",
                "customer": f"cus_bench_{run}",
                "status": "active",
                "cancel_at_period_end": False,
                "cancel_at": None,
                "trial_end": None,
                "metadata": {"external_id": "bench-customer"},
                "items": {
                    "object": "list",
                    "data": [
                        {
                            "id": f"si_bench_{run}_{i}",
                            "object": "subscription_item",
                            "current_period_start": created,
                            "current_period_end": created + 2592000,
                            "price": {"id": "price_bench_monthly", "object": "price"},
                            "quantity": 1,
                        }
                    ],
                },
            }
        },
    }


def _stripe_renewals(run: str, count: int, *, created: int, tag: str) -> list:
    """``customer.subscription.updated`` of the run's first ``count`` subscriptions, into a period from ``created``."""
    from monetization.providers.stripe.parsing import event_from_dict

    events = []
    for i in range(count):
        event = _stripe_event(run, i, created=created)
        event["id"] = f"evt_bench_{run}_{tag}_{i}"
        event["data"]["object"]["items"]["data"][0].update(
            current_period_start=created, current_period_end=created + 2592000
        )
        events.append(event_from_dict(event))
    return events


def _stripe_invoices(run: str, count: int, *, created: int, tag: str) -> list:
    """``invoice.paid`` of a renewal of each of the run's first ``count`` subscriptions (the recorded invoice)."""
    from monetization.providers.stripe.parsing import event_from_dict
    from tests.webhooks.support import stripe_invoice_event

    return [
        event_from_dict(
            stripe_invoice_event(
                event_id=f"evt_bench_{run}_{tag}_inv_{i}",
                created=created + i,
                invoice_id=f"in_bench_{run}_{tag}_{i}",
                sub_id=f"sub_bench_{run}_{i}",
                customer=f"cus_bench_{run}",
            )
        )
        for i in range(count)
    ]


APPLE_TOKEN = "0b0b0b0b-0000-4000-8000-000000000001"
APPLE_PRODUCT = "com.example.bench.monthly"
_DAY_MS = 86_400_000


def _app_store_event(
    run: str, i: int, ntype: str, subtype: str, *, tx_id: str, purchase_ms: int, tag: str, auto_renew=True
):
    """A verified App Store notification as the inbox stores it (decoded), about the run's ``i``-th purchase."""
    from monetization.providers.app_store import payloads
    from monetization.providers.app_store.parsing import ms
    from monetization.providers.base import ProviderEvent

    now_ms = int(time.time() * 1000)
    original = f"7{run}{i:06d}"
    transaction = payloads.transaction(
        transaction_id=tx_id,
        original_transaction_id=original,
        web_order_line_item_id=tx_id,
        bundle_id="com.example.backoffice",
        product_id=APPLE_PRODUCT,
        purchase_ms=purchase_ms,
        original_purchase_ms=purchase_ms,
        expires_ms=purchase_ms + 30 * _DAY_MS,
        signed_ms=now_ms,
        price=9990,
        currency="USD",
        app_account_token=APPLE_TOKEN,
        reason="PURCHASE" if ntype == "SUBSCRIBED" else "RENEWAL",
    )
    renewal = payloads.renewal_info(
        original_transaction_id=original,
        product_id=APPLE_PRODUCT,
        signed_ms=now_ms,
        recent_start_ms=purchase_ms,
        renewal_ms=purchase_ms + 30 * _DAY_MS,
        renewal_price=9990,
        currency="USD",
        auto_renew=auto_renew,
    )
    note = payloads.notification(
        notification_type=ntype,
        subtype=subtype,
        uuid=f"bench-{run}-{tag}-{i}",
        signed_ms=now_ms,
        app_apple_id=1234567890,
        bundle_id="com.example.backoffice",
    )
    return ProviderEvent(
        provider="app_store",
        event_id=note["notificationUUID"],
        event_type=f"{ntype}.{subtype}" if subtype else ntype,
        occurred_at=ms(now_ms),
        payload=payloads.decoded(note, transaction, renewal),
        subscription_ref=original,
    )


def _app_store_purchases(run: str, count: int) -> list:
    """``SUBSCRIBED`` of ``count`` new purchases (20 days ago) of the bench customer (its app account token)."""
    bought = int(time.time() * 1000) - 20 * _DAY_MS
    return [
        _app_store_event(run, i, "SUBSCRIBED", "INITIAL_BUY", tx_id=f"8{run}{i:06d}", purchase_ms=bought, tag="buy")
        for i in range(count)
    ]


def _app_store_mix(run: str, count: int, *, tag: str) -> list:
    """Half ``DID_RENEW`` (a payment each), half ``DID_CHANGE_RENEWAL_STATUS`` (auto-renew off), interleaved,
    about the run's first ``count`` purchases."""
    bought = int(time.time() * 1000) - 20 * _DAY_MS
    renewed = int(time.time() * 1000) - 3_600_000
    return [
        _app_store_event(run, i, "DID_RENEW", "", tx_id=f"9{run}{i:06d}{tag}", purchase_ms=renewed, tag=f"{tag}renew")
        if i % 2 == 0
        else _app_store_event(
            run,
            i,
            "DID_CHANGE_RENEWAL_STATUS",
            "AUTO_RENEW_DISABLED",
            tx_id=f"8{run}{i:06d}",
            purchase_ms=bought,
            tag=f"{tag}status",
            auto_renew=False,
        )
        for i in range(count)
    ]


PLAY_PRODUCT = "bench.premium"


def _play_says(client, tokens: list[str], *, order: str, expiry: str, auto_renew: bool = True) -> None:
    """What the recorded Play API answers now for each token (its latest order ``GPA.<token><order>``)."""
    from monetization.providers.google_play import payloads as play

    for token in tokens:
        client.resources[token] = play.subscription_v2(
            state="SUBSCRIPTION_STATE_ACTIVE",
            product_id=PLAY_PRODUCT,
            base_plan_id="monthly",
            start="2026-01-01T00:00:00.000Z",
            expiry=expiry,
            order_id=f"GPA.{token}{order}",
            currency="USD",
            units="9",
            nanos=990000000,
            account_id="bench-customer",
            auto_renew=auto_renew,
        )


def _play_events(tokens: list[str], codes: list[int], *, tag: str) -> list:
    """Play developer notifications as its push stores them, ``codes[i]`` about ``tokens[i]``."""
    from monetization.providers.base import ProviderEvent
    from monetization.providers.google_play import NOTIFICATION_TYPES
    from monetization.providers.google_play import payloads as play

    now_ms = int(time.time() * 1000)
    events = []
    for i, (token, code) in enumerate(zip(tokens, codes, strict=True)):
        note = play.developer_notification(
            package_name="com.example.backoffice", event_ms=now_ms + i, code=code, token=token, product_id=PLAY_PRODUCT
        )
        events.append(
            ProviderEvent(
                provider="google_play",
                event_id=f"bench-play-{tag}-{i}",
                event_type=NOTIFICATION_TYPES[code],
                occurred_at=datetime.fromtimestamp((now_ms + i) / 1000, tz=UTC),
                payload={"message": {"messageId": f"bench-play-{tag}-{i}"}, "notification": note},
                subscription_ref=token,
            )
        )
    return events


def _play_mix(run: str, count: int) -> dict:
    """Google Play, in this process (its events are read back from the Play API, which only the tests' recorded
    client stands in for, and a worker process has none): ``count`` purchases, then a mix of half renewals
    (``SUBSCRIPTION_RENEWED``: a snapshot and a payment) and half auto-renew turned off (``SUBSCRIPTION_CANCELED``),
    applied as the worker applies them (``webhook_events_apply_waiting``, its batches); events/s, CPU of this
    process and of its database session per event, statements per event."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from monetization.providers.base import get_provider
    from monetization.services.webhooks import webhook_events_apply_waiting
    from subscriptions.models import Plan, Platform, Sku
    from tests.webhooks.support import RecordedPlayClient

    Sku.objects.get_or_create(
        plan=Plan.objects.get(code="bench-premium-monthly"),
        platform=Platform.ANDROID,
        store_product_id=PLAY_PRODUCT,
        defaults={"base_plan_id": "monthly"},
    )
    client = RecordedPlayClient()
    get_provider("google_play").client = client
    tokens = [f"bench-play-{run}-{i}" for i in range(count)]
    _play_says(client, tokens, order="", expiry="2027-01-01T00:00:00.000Z")

    def apply(events: list) -> dict:
        ids = _store(events)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        session_cpu = _tree_cpu(backend)
        cpu, started = time.process_time(), time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            outcomes, _more = webhook_events_apply_waiting(max_batches=10**6)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        session_cpu = _tree_cpu(backend) - session_cpu
        return {
            "events": len(ids),
            "applied": sum(not isinstance(o, Exception) and o.status == "applied" for o in outcomes.values()),
            "events_per_s": round(len(ids) / elapsed),
            "cpu_ms_per_event_in_process": round(cpu * 1000 / len(ids), 2),
            "db_session_cpu_ms_per_event": round(session_cpu * 1000 / len(ids), 2),
            "queries_per_event": round(len(queries) / len(ids), 2),
        }

    result = {"purchases": apply(_play_events(tokens, [4] * count, tag=f"{run}-buy"))}
    renewed, turned_off = tokens[0::2], tokens[1::2]
    _play_says(client, renewed, order="..0", expiry="2027-02-01T00:00:00.000Z")
    _play_says(client, turned_off, order="", expiry="2027-01-01T00:00:00.000Z", auto_renew=False)
    mixed = [token for pair in zip(renewed, turned_off, strict=False) for token in pair]
    codes = [2 if token in set(renewed) else 3 for token in mixed]
    result["mix"] = apply(_play_events(mixed, codes, tag=f"{run}-mix"))
    result["note"] = "in process (no Celery worker), the Play API answered by the tests' recorded client"
    return result


def _queries_per_event(events: list) -> dict:
    """Apply stored events in this process, as the worker does (its batches), counting statements and CPU."""
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from monetization.services.webhooks import webhook_events_apply_batch

    ids = _store(events)
    batch = settings.WEBHOOK_APPLY_BATCH
    cpu = time.process_time()
    with CaptureQueriesContext(connection) as queries:
        outcomes = {}
        for start in range(0, len(ids), batch):
            outcomes.update(webhook_events_apply_batch(event_ids=ids[start : start + batch]))
    cpu = time.process_time() - cpu
    return {
        "events": len(ids),
        "failed": sum(isinstance(o, Exception) for o in outcomes.values()),
        "queries_per_event": round(len(queries) / len(ids), 2),
        "cpu_ms_per_event_in_process": round(cpu * 1000 / len(ids), 2),
    }


def _store(events: list) -> list[int]:
    """Store events in the inbox as a delivery does (not yet applied); their ids."""
    from monetization.services.webhooks import webhook_store

    stored = []
    for start in range(0, len(events), 500):
        stored += [pk for pk, _ in webhook_store(events=events[start : start + 500])]
    return stored


def _sign(body: bytes) -> str:
    import hashlib
    import hmac

    t = int(time.time())
    return f"t={t},v1={hmac.new(SECRET.encode(), f'{t}.'.encode() + body, hashlib.sha256).hexdigest()}"


def _worker(env: dict, name: str = "") -> subprocess.Popen:
    """``celery worker --pool solo`` on the bench broker, ready (answering a ping) when returned."""
    node = f"bench-webhooks-{os.getpid()}{name}@localhost"
    proc = start_worker(env, node=node)
    try:
        wait_ready(proc, node, timeout=180)  # a shared, busy machine can take minutes to start one
    except RuntimeError:
        proc.kill()
        raise
    return proc


def _drain(worker: subprocess.Popen, ids: list[int]) -> dict:
    """Schedule applying as each delivery does, then wait until the worker has applied every event."""
    from backoffice.celery import app as celery_app
    from monetization.models import WebhookEvent
    from monetization.webhook_queue import webhook_apply_schedule

    # The queue is filled while the worker doesn't consume, then the clock starts as it does: the rate is
    # the worker's, not this process's enqueueing.
    node = worker.args[worker.args.index("-n") + 1]
    celery_app.control.cancel_consumer("webhooks", destination=[node], reply=True, timeout=5)
    for _ in ids:  # each delivery's commit, as the endpoints do: the first queues a task, the rest see it queued
        webhook_apply_schedule()
    cpu = _tree_cpu(worker.pid)
    started = time.perf_counter()
    celery_app.control.add_consumer("webhooks", destination=[node], reply=True, timeout=5)
    deadline = started + 600
    applied = 0
    while time.perf_counter() < deadline:
        applied = WebhookEvent.objects.filter(id__in=ids, status="applied").count()
        if applied == len(ids):
            break
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    # The remaining tasks (their events applied in earlier batches) finish at once; let them, then count CPU.
    while time.perf_counter() < deadline:
        with celery_app.connection_for_write(url=broker_url()) as conn:
            if not conn.default_channel.client.llen("webhooks"):
                break
        time.sleep(0.05)
    drained = time.perf_counter() - started
    cpu = _tree_cpu(worker.pid) - cpu
    return {
        "events": len(ids),
        "applied": applied,
        "seconds": round(elapsed, 2),
        "events_per_s": round(len(ids) / elapsed) if applied == len(ids) else 0,
        "queue_drained_seconds": round(drained, 2),
        "worker_cpu_ms_per_event": round(cpu * 1000 / len(ids), 2) if ids else None,
    }


def _purge_queues() -> int:
    """Every work queue of the bench broker emptied, and the tasks a worker of an earlier run took but never
    acknowledged (Redis gives those back to the next worker that starts): any of them would apply the measured
    events before the clock starts. Returns how many tasks went."""
    from django.conf import settings
    from django.core.cache import cache

    from backoffice.celery import app as celery_app
    from monetization.services.webhooks import APPLY_SCHEDULED_KEY

    # This process enqueues for the workers. Through Django's settings, which the app's configuration
    # reads (``conf.update`` did not reach it): left eager, scheduling applied every event here, before the
    # clock started.
    settings.CELERY_BROKER_URL = broker_url()
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with celery_app.connection_for_write(url=broker_url()) as conn:
        channel = conn.default_channel
        purged = sum(channel.queue_purge(queue) or 0 for queue in settings.WORK_QUEUES)
        channel.client.delete(channel.unacked_key, channel.unacked_index_key)
    cache.delete(APPLY_SCHEDULED_KEY)  # its task was just purged
    return purged


def _production_env() -> tuple[dict, object, Path]:
    """The environment of a production process here (DEBUG off, made-up secrets), the Apple-shaped PKI its
    App Store root certificate is from, and the temporary directory that certificate is in."""
    tmp = Path(tempfile.mkdtemp())
    from tests.webhooks.support import ApplePKI  # the same throwaway Apple-shaped PKI the tests use

    pki = ApplePKI()
    root = pki.write_root(tmp / "root.cer")
    env = {
        **os.environ,
        "STRIPE_WEBHOOK_SECRET": SECRET,
        # The broker the gunicorn enqueues onto (its "webhooks" list is purged afterwards).
        "CELERY_BROKER_URL": broker_url(),
        "PAYMENT_PROVIDERS_ENABLED": "stripe,app_store",
        # Production settings ask for the providers' API credentials; this run never calls their APIs.
        "STRIPE_API_KEY": "sk_test_bench_never_called",
        "APP_STORE_KEY_ID": "BENCHKEYID",
        "APP_STORE_ISSUER_ID": "bench-issuer",
        "APP_STORE_PRIVATE_KEY_PATH": str(tmp / "never-read.p8"),
        "APP_STORE_ROOT_CERTS": str(root),
        "APP_STORE_BUNDLE_ID": "com.example.backoffice",
        "APP_STORE_APP_APPLE_ID": "1234567890",
        "APP_STORE_ENVIRONMENT": "Production",
        "DEBUG": "0",
        "SECRET_KEY": "bench-secret-key-not-for-production-0123456789",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "WARNING",
    }
    return env, pki, tmp


ROUNDS = 3
# ``--via-pgbouncer``'s apply turns: long enough that a second of noise on a shared machine does not decide the
# ratio (at 300 events a turn one lasted ~1 s). Sized at the warm-up rate, which runs below the measured turns
# (a turn sized for 10 s took 7-9 s): 15 s. Each subscription is renewed this many times at most per turn.
APPLY_TURN_SECONDS = float(os.environ.get("BENCH_APPLY_TURN_SECONDS", "15"))
APPLY_MAX_PASSES = 100
# Its Stripe deliveries over HTTP, likewise: 300 deliveries a turn lasted under 2 s (ratios 0.71-1.27 a round). A turn
# is sized at the faster side's rate in an unmeasured warm-up round; each delivery is signed just before its turn
# (well inside the signature's 300 s tolerance); at most HTTP_MAX_EVENTS a turn.
HTTP_TURN_SECONDS = float(os.environ.get("BENCH_HTTP_TURN_SECONDS", "15"))
HTTP_MAX_EVENTS = 50_000


def run_pooled(args, env: dict) -> dict:
    """``--via-pgbouncer``: Stripe deliveries over HTTP and the worker applying events, each direct and through a
    private PgBouncer (bench/pooler.py) in ROUNDS interleaved turns, the side going first alternating: two
    gunicorns and two ``--pool solo`` workers, one of each side, up at once; pooled over direct per round and
    over all rounds, and the CPU per event of each side."""
    from backoffice.celery import app as celery_app
    from bench.pooler import described, pgbouncer_env, ratios, served
    from monetization.models import WebhookEvent

    quick = getattr(args, "quick", False)
    per_turn_http = 300 if quick else 1000
    n_apply = 300 if quick else 1500
    clients = 4
    run_id = str(int(time.time()))
    created = int(time.time()) - 60
    sides = ("direct", "pgbouncer")
    result: dict = {
        "rounds": ROUNDS,
        "pgbouncer": described(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    with pgbouncer_env(os.environ["DATABASE_URL"]) as pooled:
        envs = {"direct": env, "pgbouncer": {**env, **pooled}}
        ports = {side: _free_port() for side in sides}
        servers: dict = {}
        http: dict = {side: [] for side in sides}
        try:
            for side in sides:
                servers[side] = _gunicorn(envs[side], ports[side])
            sent = 0

            def deliver(side: str, count: int) -> dict:
                nonlocal sent
                bodies = []
                for i in range(sent, sent + count):  # signed just before sending: the signature's tolerance
                    body = json.dumps(_stripe_event(run_id, i, created=created)).encode()
                    bodies.append((body, {"Stripe-Signature": _sign(body)}))
                sent += count
                return _load(ports[side], "/api/v1/webhooks/stripe", bodies, clients, servers[side].pid)

            # The first round warms both up (connections, imports) and sizes the measured turns; it is not counted.
            warm = {side: deliver(side, per_turn_http) for side in sides}
            rate = max(w["events"] / w["seconds"] for w in warm.values() if w["seconds"]) or 1
            per_turn = max(per_turn_http, min(HTTP_MAX_EVENTS, math.ceil(HTTP_TURN_SECONDS * rate)))
            result["http_turn_sizing"] = {
                "warm_up_events_per_s": {side: w["events_per_s"] for side, w in warm.items()},
                "events_per_turn": per_turn,
                "target_seconds_per_turn": HTTP_TURN_SECONDS,
            }
            for r in range(ROUNDS):
                for side in sides if r % 2 == 0 else sides[::-1]:
                    before = served(pooled) if side == "pgbouncer" else None
                    http[side].append(deliver(side, per_turn))
                    if before is not None:
                        # What one delivery costs the server, as PgBouncer counted it (it counts with a lag of a
                        # statement or so: nothing at this many).
                        after = served(pooled)
                        http[side][-1]["server_statements_per_event"] = round(
                            (after["query"] - before["query"]) / per_turn, 3
                        )
                        http[side][-1]["server_transactions_per_event"] = round(
                            (after["xact"] - before["xact"]) / per_turn, 3
                        )
        finally:
            for server in servers.values():
                server.send_signal(signal.SIGTERM)
            for server in servers.values():
                _stopped(server)
        result["stripe_http"] = {
            **{side: _totals(http[side], "gunicorn_cpu_ms_per_event") for side in sides},
            "pgbouncer_over_direct_events_per_s": ratios(
                _with_rate(http["direct"]), _with_rate(http["pgbouncer"]), "_rate"
            ),
            "pgbouncer_over_direct_p99": ratios(http["direct"], http["pgbouncer"], "p99_ms"),
            "pgbouncer_server_statements_per_event": [t["server_statements_per_event"] for t in http["pgbouncer"]],
            "pgbouncer_server_transactions_per_event": [t["server_transactions_per_event"] for t in http["pgbouncer"]],
        }

        result["enqueued_tasks_purged"] = _purge_queues()
        # The subscriptions the applied events are about: created by the first n_apply deliveries, applied by
        # the direct worker (not measured); the rest of the deliveries are set aside.
        ids = list(
            WebhookEvent.objects.filter(
                provider="stripe", event_id__startswith=f"evt_bench_{run_id}_", status="received"
            )
            .order_by("id")
            .values_list("id", flat=True)[:n_apply]
        )
        WebhookEvent.objects.filter(status="received").exclude(id__in=ids).update(
            status="ignored", note="set aside by the benchmark"
        )
        from django.db import connection

        connection.close()
        workers: dict = {}
        nodes: dict = {}

        def drain(side: str, event_ids: list[int]) -> dict:
            figures = _drain(workers[side], event_ids)
            celery_app.control.cancel_consumer("webhooks", destination=[nodes[side]], reply=True, timeout=5)
            return figures

        apply: dict = {side: [] for side in sides}
        try:
            for side in sides:
                workers[side] = _worker(envs[side], f"-{side}")
                nodes[side] = workers[side].args[workers[side].args.index("-n") + 1]
            celery_app.control.cancel_consumer("webhooks", destination=list(nodes.values()), reply=True, timeout=5)
            drain("direct", ids)
            period = 0

            def renewals(passes: int, tag: str) -> list[int]:
                # Every subscription renewed ``passes`` times over, pass after pass, each into a newer period, so
                # each event changes its subscription; a batch (WEBHOOK_APPLY_BATCH, oldest first) never holds
                # two of one subscription while len(ids) >= the batch.
                nonlocal period
                stored = []
                for p in range(passes):
                    period += 1
                    events = _stripe_renewals(run_id, len(ids), created=created + period * 2592000, tag=f"{tag}p{p}")
                    stored += _store(events)
                return stored

            # A turn of each side unmeasured: warms the pooled worker as the creations warmed the direct one,
            # and sizes the measured turns to APPLY_TURN_SECONDS at the faster side's rate.
            warm = {side: drain(side, renewals(1, f"w{side[0]}")) for side in sides}
            rate = max(w["events_per_s"] for w in warm.values()) or 1
            passes = max(1, min(APPLY_MAX_PASSES, math.ceil(APPLY_TURN_SECONDS * rate / len(ids))))
            result["apply_turn_sizing"] = {
                "warm_up_events_per_s": {side: w["events_per_s"] for side, w in warm.items()},
                "subscriptions": len(ids),
                "renewals_per_subscription_per_turn": passes,
                "events_per_turn": passes * len(ids),
                "target_seconds_per_turn": APPLY_TURN_SECONDS,
            }
            turn = 0
            for r in range(ROUNDS):
                for side in sides if r % 2 == 0 else sides[::-1]:
                    turn += 1
                    apply[side].append(drain(side, renewals(passes, f"t{turn}")))
        finally:
            for worker in workers.values():
                worker.terminate()
            for worker in workers.values():
                _stopped(worker)
        result["apply_existing"] = {
            **{side: _totals(apply[side], "worker_cpu_ms_per_event") for side in sides},
            "pgbouncer_over_direct_events_per_s": ratios(
                _with_rate(apply["direct"]), _with_rate(apply["pgbouncer"]), "_rate"
            ),
        }
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["target"] = "pgbouncer events/s >= 0.9 x direct (issue 17)"
    return result


def _stopped(proc: subprocess.Popen, timeout: float = 60) -> None:
    """Until ``proc``, already told to stop, has; killed past ``timeout`` (a busy machine's gunicorn can take
    longer than its graceful timeout to finish)."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _with_rate(turns: list[dict]) -> list[dict]:
    """Each turn with its unrounded events/s (``_rate``): at tens of events a second rounded rates skew ratios."""
    return [{**t, "_rate": t["events"] / t["seconds"] if t["seconds"] else 0.0} for t in turns]


def _totals(turns: list[dict], cpu_key: str) -> dict:
    """One side's turns together: events, events/s over the time they took, the worst p99, mean CPU per event."""
    events = sum(t["events"] for t in turns)
    seconds = sum(t["seconds"] for t in turns)
    totals = {
        "events": events,
        "events_per_s": round(events / seconds) if seconds else None,
        cpu_key: round(sum(t[cpu_key] * t["events"] for t in turns) / events, 2) if events else None,
        "per_round_events_per_s": [t["events_per_s"] for t in turns],
        "per_round_seconds": [t["seconds"] for t in turns],
        "median_events_per_s": round(statistics.median(t["events"] / t["seconds"] for t in turns if t["seconds"]))
        if turns
        else None,
    }
    if all("p99_ms" in t for t in turns):
        totals["p99_ms_worst_round"] = max(t["p99_ms"] for t in turns)
    if all("errors" in t for t in turns):
        totals["errors"] = sum(t["errors"] for t in turns)
    return totals


def run(args) -> dict:
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    _seed()
    if getattr(args, "via_pgbouncer", False):
        env, _, tmp = _production_env()
        try:
            return run_pooled(args, env)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    quick = getattr(args, "quick", False)
    n_http = 1500 if quick else 6000
    n_jws = 600 if quick else 3000
    n_apply = 500 if quick else 3000
    clients = 4
    run_id = str(int(time.time()))
    # The machine is shared: the 1/5/15-minute load averages say how busy it was around the run.
    result: dict = {"targets": TARGETS, "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}

    env, pki, _ = _production_env()
    port = _free_port()
    created = int(time.time()) - 60
    if os.environ.get("BENCH_WEBHOOKS_APPLY_ONLY") == "1":
        # Applying only (the speed work on it): the Stripe events stored as a delivery stores them, no HTTP.
        from monetization.providers.stripe.parsing import event_from_dict

        _store([event_from_dict(_stripe_event(run_id, i, created=created)) for i in range(n_apply)])
    else:
        server = _gunicorn(env, port)
        try:
            # 1. Stripe.
            bodies = []
            for i in range(n_http):
                body = json.dumps(_stripe_event(run_id, i, created=created)).encode()
                bodies.append((body, {"Stripe-Signature": _sign(body)}))
            _load(port, "/api/v1/webhooks/stripe", bodies[:100], 2)  # warm-up (also real inserts)
            stripe_result = _load(port, "/api/v1/webhooks/stripe", bodies[100:], clients, server.pid)
            result["stripe_http"] = stripe_result
            result["stripe_events_per_s"] = stripe_result["events_per_s"]

            # 2. App Store: every notification carries three JWS, each verified against the chain.
            from tests.webhooks.support import fixture

            template = fixture("app_store", "subscribed")
            jws_bodies = []
            now_ms = int(time.time() * 1000)
            for i in range(n_jws):
                tx = {
                    **template["transaction"],
                    "originalTransactionId": f"7{run_id}{i:06d}",
                    "transactionId": f"8{run_id}{i:06d}",
                    "appAccountToken": "0b0b0b0b-0000-4000-8000-000000000001",
                    "productId": "com.example.bench.monthly",
                    "signedDate": now_ms,
                }
                renewal = {
                    **template["renewal"],
                    "originalTransactionId": tx["originalTransactionId"],
                    "signedDate": now_ms,
                }
                note = {**template["notification"], "notificationUUID": f"bench-{run_id}-{i}", "signedDate": now_ms}
                note["data"] = {
                    **note["data"],
                    "signedTransactionInfo": pki.sign(tx),
                    "signedRenewalInfo": pki.sign(renewal),
                }
                jws_bodies.append((json.dumps({"signedPayload": pki.sign(note)}).encode(), {}))
            _load(port, "/api/v1/webhooks/app-store", jws_bodies[:50], 2)
            apple = _load(port, "/api/v1/webhooks/app-store", jws_bodies[50:], clients, server.pid)
            result["app_store_http"] = apple
            result["app_store_events_per_s"] = apple["events_per_s"]
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=20)

    # Nobody consumed the enqueued tasks: drop them.
    result["enqueued_tasks_purged"] = _purge_queues()

    # 3. Apply: a real Celery worker (solo pool: one process) consuming the apply tasks from Redis as the
    #    webhook endpoints queue them; the clock runs from the worker consuming to the last event applied.
    from monetization.models import WebhookEvent

    ids = list(
        WebhookEvent.objects.filter(provider="stripe", event_id__startswith=f"evt_bench_{run_id}_", status="received")
        .order_by("id")
        .values_list("id", flat=True)[:n_apply]
    )
    # Whatever else is waiting (the App Store deliveries, the Stripe ones beyond n_apply) is not measured here:
    # set aside, so the worker's batches hold only the measured events.
    WebhookEvent.objects.filter(status="received").exclude(id__in=ids).update(
        status="ignored", note="set aside by the benchmark"
    )
    later = created + 2592000
    renewals = _stripe_renewals(run_id, len(ids), created=later, tag="renew")
    connection.close()
    worker = _worker(env)
    try:
        result["apply"] = _drain(worker, ids)
        result["apply"]["note"] = "each event creates a subscription (customer, SKU lookups, audit, state change)"
        result["apply_events_per_s"] = result["apply"]["events_per_s"]
        # 3b. The steady state: events about subscriptions we already know (renewals, status changes).
        result["apply_existing"] = _drain(worker, _store(renewals))
        result["apply_existing_events_per_s"] = result["apply_existing"]["events_per_s"]
        # 3c. Per event type (issue 18's real mix): the renewal's payment, then half status changes and half
        #     payments, each about subscriptions we know; the worker's CPU per event says what each costs.
        paid = _stripe_invoices(run_id, len(ids), created=later, tag="paid")
        result["apply_invoice_paid"] = _drain(worker, _store(paid))
        updated = _stripe_renewals(run_id, len(ids) // 2, created=later + 2592000, tag="mix")
        payments = _stripe_invoices(run_id, len(ids) // 2, created=later, tag="mix")
        mix = [event for pair in zip(updated, payments, strict=True) for event in pair]
        result["apply_mix_updated_and_paid"] = _drain(worker, _store(mix))
        per_event = {
            "customer.subscription.updated": result["apply_existing"]["worker_cpu_ms_per_event"],
            "invoice.paid": result["apply_invoice_paid"]["worker_cpu_ms_per_event"],
        }
        # 3d. The App Store: new purchases, then its mix (renewals with their payments, status changes).
        result["apply_app_store_purchases"] = _drain(worker, _store(_app_store_purchases(run_id, len(ids))))
        result["apply_app_store_mix"] = _drain(worker, _store(_app_store_mix(run_id, len(ids), tag="m")))
        per_event["app_store mix"] = result["apply_app_store_mix"]["worker_cpu_ms_per_event"]
        per_event["stripe mix"] = result["apply_mix_updated_and_paid"]["worker_cpu_ms_per_event"]
        result["apply_worker_cpu_ms_per_event_by_type"] = per_event
        result["apply_invoice_paid_events_per_s"] = result["apply_invoice_paid"]["events_per_s"]
        result["apply_stripe_mix_events_per_s"] = result["apply_mix_updated_and_paid"]["events_per_s"]
        result["apply_app_store_mix_events_per_s"] = result["apply_app_store_mix"]["events_per_s"]
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    # 3e. Statements per event, by type: the same batches applied in this process, counted (about subscriptions
    #     the worker created above; Google Play's mix needs its API, faked only in the tests: not measured).
    settings.CELERY_TASK_ALWAYS_EAGER = True  # nothing here is for the stopped worker
    sample = min(len(ids), 200)
    result["apply_queries_by_type"] = {
        "invoice.paid": _queries_per_event(_stripe_invoices(run_id, sample, created=later + 1, tag="q")),
        "stripe mix": _queries_per_event(
            [
                event
                for pair in zip(
                    _stripe_renewals(run_id, sample // 2, created=later + 2 * 2592000, tag="qmix"),
                    _stripe_invoices(run_id, sample // 2, created=later + 2, tag="qmix"),
                    strict=True,
                )
                for event in pair
            ]
        ),
        "app_store mix": _queries_per_event(_app_store_mix(run_id, sample, tag="q")),
    }
    # 3f. Google Play's mix, in this process (see _play_mix).
    result["apply_play_in_process"] = _play_mix(run_id, min(len(ids), 1000 if quick else 3000))
    result["apply_play_mix_events_per_s_in_process"] = result["apply_play_in_process"]["mix"]["events_per_s"]
    result["apply_settings"] = {"WEBHOOK_APPLY_BATCH": settings.WEBHOOK_APPLY_BATCH, "worker": "celery --pool solo"}
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    for key, target in TARGETS.items():
        value = result.get(key)
        result[f"{key}_vs_target"] = f"{value} / {target} ({'met' if value and value >= target else 'NOT met'})"
    return result
