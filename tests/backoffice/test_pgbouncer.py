"""The app through a real PgBouncer in transaction mode: Debian's pgbouncer as a private process on a port
of its own (deploy/local_postgres.py) in front of the test database, the connection shaped as the
settings shape it for ``DATABASE_POOLER=pgbouncer`` (backoffice/databases.py)."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

import psycopg
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import request_finished, request_started
from django.db import connection, connections, transaction
from django.db.utils import DatabaseError

from backoffice.databases import database_settings
from deploy.local_postgres import Unavailable, free_port, pgbouncer_binary, pgbouncer_stats, start_pgbouncer
from monetization import webhook_queue
from monetization.models import ApiKey, Customer, WebhookEvent
from tests.backoffice.private_postgres import databases_at
from tests.webhooks.support import STRIPE_SECRET, post_stripe, stripe_subscription_event

POOL = 2  # server connections: few, so that one client's consecutive transactions can land on different ones
ROWS = 3000


@pytest.fixture(scope="module")
def bouncer_process(django_db_setup):
    try:
        pgbouncer_binary()
    except Unavailable as exc:
        pytest.skip(f"no pgbouncer: {exc}")
    upstream = connections["default"].settings_dict
    directory = Path(tempfile.mkdtemp(prefix="bo-pgbouncer-test-"))
    port = free_port()
    process = start_pgbouncer(
        directory,
        port,
        upstream_host=upstream["HOST"] or "127.0.0.1",
        upstream_port=int(upstream["PORT"] or 5432),
        pool_size=POOL,
        unix_socket=True,
    )
    try:
        yield process
    finally:
        process.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def bouncer(bouncer_process):
    return bouncer_process.port


def _pooled(port: int, **overrides) -> dict:
    shaped = database_settings("postgres://postgres@127.0.0.1:1/x", pooler="pgbouncer")
    return {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DISABLE_SERVER_SIDE_CURSORS": shaped["DISABLE_SERVER_SIDE_CURSORS"],
        "CONN_HEALTH_CHECKS": shaped["CONN_HEALTH_CHECKS"],
        "OPTIONS": {**connections["default"].settings_dict["OPTIONS"], **shaped["OPTIONS"]},
        **overrides,
    }


@pytest.fixture
def through_bouncer(transactional_db, bouncer):
    with databases_at(default=_pooled(bouncer)):
        yield bouncer


def _transactions_served(port: int) -> int:
    """Transactions PgBouncer has passed to the server (its admin console, which speaks only simple queries)."""
    return _stats(port, "total_xact_count")


def _stats(port: int, column: str) -> int:
    return pgbouncer_stats(port)[column]


class _Holder(threading.Thread):
    """A second client that opens a transaction through PgBouncer and holds its server connection."""

    def __init__(self):
        super().__init__(daemon=True)
        self.holding, self.release = threading.Event(), threading.Event()

    def run(self):
        try:
            with transaction.atomic():
                Customer.objects.exists()
                self.holding.set()
                self.release.wait(30)
        finally:
            connection.close()


def test_requests_and_transactions_go_through_pgbouncer(through_bouncer, client):
    served = _transactions_served(through_bouncer)
    assert connection.settings_dict["PORT"] == str(through_bouncer)
    full, prefix, key_hash = ApiKey.generate()
    ApiKey.objects.create(name="pooled", prefix=prefix, key_hash=key_hash, scopes=["entitlements:read"])
    Customer.objects.create(external_id="pooled-1", handle="pooled-1")
    for _ in range(3):
        response = client.get("/api/v1/customers/pooled-1/entitlements", headers={"authorization": f"Bearer {full}"})
        assert response.status_code == 200, response.content
    # Row locks and writes in transactions while another client holds a server connection of the two.
    holder = _Holder()
    holder.start()
    assert holder.holding.wait(10)
    try:
        for i in range(10):
            with transaction.atomic():
                customer = Customer.objects.select_for_update().get(external_id="pooled-1")
                customer.handle = f"pooled-{i}"
                customer.save(update_fields=["handle"])
    finally:
        holder.release.set()
        holder.join()
    assert Customer.objects.get(external_id="pooled-1").handle == "pooled-9"
    # No server-side prepared statement to outlive a transaction, and PgBouncer did carry the transactions.
    assert connection.connection.prepare_threshold is None
    assert _transactions_served(through_bouncer) >= served + 10


def test_the_app_reaches_pgbouncer_by_its_unix_socket(transactional_db, bouncer_process):
    """As beside a web process (make prod-local, production): libpq's host is the socket's directory."""
    url = bouncer_process.url("x")
    assert url.startswith("postgres://postgres@%2F") and database_settings(url)["HOST"] == str(
        bouncer_process.directory
    )
    served = _transactions_served(bouncer_process.port)
    with databases_at(default=_pooled(bouncer_process.port, HOST=str(bouncer_process.directory))):
        Customer.objects.create(external_id="by-socket", handle="by-socket")
        assert connection.connection.info.host == str(bouncer_process.directory)
        assert Customer.objects.filter(external_id="by-socket").exists()
    assert _transactions_served(bouncer_process.port) >= served + 2


def _queries_for_reads(port: int, pk: int, requests: int) -> int:
    """Statements PgBouncer passed to the server for ``requests`` one-row reads, each between the
    request signals that manage a kept connection (as the WSGI handler sends them), over those for none
    (PgBouncer counts a statement with a lag: the one that opened the connection shows in both)."""

    def served(n: int) -> int:
        Customer.objects.filter(pk=pk).first()  # the connection open before counting
        before = _stats(port, "total_query_count")
        for _ in range(n):
            request_started.send(sender=None)
            assert Customer.objects.filter(pk=pk).values_list("external_id", flat=True).first() == "kept"
            request_finished.send(sender=None)
        return _stats(port, "total_query_count") - before

    return served(requests) - served(0)


def test_a_kept_connection_costs_no_health_check_round_trip_through_pgbouncer(transactional_db, bouncer):
    """Behind the pooler Django's per-request ``SELECT 1`` would be a server round trip of its own."""
    pk = Customer.objects.create(external_id="kept", handle="kept").pk
    with databases_at(default=_pooled(bouncer, CONN_MAX_AGE=60)):
        assert _queries_for_reads(bouncer, pk, 5) == 5
    # The same with Django's health check on: a SELECT 1 before each request's read.
    with databases_at(default=_pooled(bouncer, CONN_MAX_AGE=60, CONN_HEALTH_CHECKS=True)):
        assert _queries_for_reads(bouncer, pk, 5) == 10


def _statements_for_deliveries(port: int, client, events: list[dict]) -> int:
    """Statements PgBouncer passed to the server for Stripe deliveries of ``events`` over a kept connection (the
    whole request: middleware, signature check, inbox), over those for none (see _queries_for_reads)."""

    def served(batch: list[dict]) -> int:
        Customer.objects.exists()  # the connection open before counting
        before = _stats(port, "total_query_count")
        for event in batch:
            response = post_stripe(client, event)
            assert response.status_code == 200, response.content
        return _stats(port, "total_query_count") - before

    return served(events) - served([])


def test_a_webhook_delivery_is_one_statement_through_pgbouncer(
    transactional_db, bouncer, client, settings, monkeypatch
):
    """Each round trip through the pooler is a hop of its own: a delivery is stored by one autocommitted
    ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` (no BEGIN or COMMIT, savepoint, health check, session or
    user lookup); a redelivery by that INSERT, which stores nothing, and the read of the stored row's id."""
    settings.STRIPE_WEBHOOK_SECRET = STRIPE_SECRET
    settings.PAYMENT_PROVIDERS_ENABLED = ["stripe"]
    # Only the accept is counted: the worker's apply (eager in some test runs) would be counted with it.
    scheduled = []
    monkeypatch.setattr(webhook_queue, "webhook_apply_schedule", lambda: scheduled.append(True))
    events = [stripe_subscription_event(event_id=f"evt_pooled_{i}", created=1767225600 + i) for i in range(5)]
    with databases_at(default=_pooled(bouncer, CONN_MAX_AGE=60)):
        assert _statements_for_deliveries(bouncer, client, events) == 5
        assert len(scheduled) == 5  # each new one queued for a worker, on its own commit
        assert _statements_for_deliveries(bouncer, client, events) == 10
        assert len(scheduled) == 5  # the redeliveries were not
    assert WebhookEvent.objects.filter(event_id__startswith="evt_pooled_").count() == 5


def _iterate_while_another_client_holds_a_server_connection() -> list[str]:
    seen, holder = [], _Holder()
    try:
        for n, external_id in enumerate(
            Customer.objects.filter(external_id__startswith="many-")
            .order_by("pk")
            .values_list("external_id", flat=True)
            .iterator(chunk_size=200)
        ):
            if n == 0:
                # The next fetch runs in a later transaction: PgBouncer hands it the other server connection.
                holder.start()
                assert holder.holding.wait(10)
            seen.append(external_id)
    finally:
        holder.release.set()
        if holder.is_alive():
            holder.join()
    return seen


def test_a_large_queryset_iterates_through_pgbouncer(through_bouncer):
    Customer.objects.bulk_create([Customer(external_id=f"many-{i:05d}", handle=f"many-{i}") for i in range(ROWS)])
    assert _iterate_while_another_client_holds_a_server_connection() == [f"many-{i:05d}" for i in range(ROWS)]


def test_server_side_cursors_would_break_behind_transaction_pooling(transactional_db, bouncer):
    """Why the setting: with server-side cursors on, ``.iterator()`` fetches from a cursor its server
    connection no longer has."""
    Customer.objects.bulk_create([Customer(external_id=f"many-{i:05d}", handle=f"many-{i}") for i in range(ROWS)])
    with (
        databases_at(default=_pooled(bouncer, DISABLE_SERVER_SIDE_CURSORS=False)),
        # Django's error from the fetch, or psycopg's own from closing the cursor that is not there either.
        pytest.raises((DatabaseError, psycopg.Error), match=r"cursor .* does not exist"),
    ):
        _iterate_while_another_client_holds_a_server_connection()


def test_the_pooler_setting_shapes_the_connection_and_refuses_unknown_poolers():
    direct = database_settings("postgres://postgres@127.0.0.1:5432/x")
    assert not direct["DISABLE_SERVER_SIDE_CURSORS"] and "prepare_threshold" not in direct.get("OPTIONS", {})
    pooled = database_settings("postgres://postgres@127.0.0.1:6432/x", pooler="pgbouncer")
    assert pooled["DISABLE_SERVER_SIDE_CURSORS"] is True and pooled["OPTIONS"]["prepare_threshold"] is None
    assert direct["CONN_HEALTH_CHECKS"] is True and pooled["CONN_HEALTH_CHECKS"] is False
    with pytest.raises(ImproperlyConfigured, match="DATABASE_POOLER"):
        database_settings("postgres://postgres@127.0.0.1:6432/x", pooler="pgpool")
