"""Reports, charts and exports read from a real streaming replica; writes and read-after-write paths from the primary.

A private primary (deploy/local_postgres.py, initdb on a port of its own: the machine's server refuses
replication connections) loaded with the test database, and a hot standby streaming from it
(pg_basebackup). The test's ``default`` and ``replica`` connections point at them for the test.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import io
import shutil
import tempfile
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.db import connections, transaction
from django.db.utils import OperationalError
from djmoney.money import Money

from deploy.local_postgres import PG_BIN, free_port, start_primary, start_replica, wait_replayed
from monetization import clock
from monetization.db_routing import primary_only, read_alias, reads_from_replica
from monetization.exports import csv_rows
from monetization.models import AuditEvent, Payment
from monetization.roles import sync_roles
from monetization.selectors_finance import revenue_by_provider_currency
from monetization.services.payments import payment_record
from subscriptions.selectors_finance import mrr_series
from subscriptions.services.finance_snapshots import finance_snapshots_refresh
from tests.backoffice.private_postgres import databases_at, load_test_database
from tests.monetization.factories import CustomerFactory

pytestmark = [
    pytest.mark.skipif(
        not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_basebackup").exists(),
        reason=f"PostgreSQL's server binaries (initdb, pg_basebackup) are not in {PG_BIN}: no private replica",
    ),
    # The test database is set up (the private primary starts as its copy) and no test transaction wraps
    # these tests: their rows are written to the private primary, and go with it.
    pytest.mark.django_db(transaction=True),
]

NAME = "backoffice"


@pytest.fixture(scope="module")
def streaming(django_db_setup, django_db_blocker):
    directory = Path(tempfile.mkdtemp(prefix="bo-replica-test-"))
    primary_port, replica_port = free_port(), free_port()
    primary = start_primary(directory, primary_port)
    replica = None
    try:
        with django_db_blocker.unblock():
            load_test_database(primary_port, NAME)
        replica = start_replica(directory, replica_port, primary_port=primary_port)
        yield {
            "primary": {"HOST": "127.0.0.1", "PORT": str(primary_port), "NAME": NAME, "USER": "postgres"},
            "replica": {"HOST": "127.0.0.1", "PORT": str(replica_port), "NAME": NAME, "USER": "postgres"},
            "primary_dsn": f"host=127.0.0.1 port={primary_port} user=postgres dbname={NAME}",
            "replica_dsn": f"host=127.0.0.1 port={replica_port} user=postgres dbname={NAME}",
        }
    finally:
        if replica:
            replica.stop()
        primary.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def on_the_pair(streaming, django_db_blocker):
    """``default`` at the private primary, ``replica`` at its standby; rows written here stay there."""
    with django_db_blocker.unblock(), databases_at(default=streaming["primary"], replica=streaming["replica"]):
        yield streaming


def _refused_port() -> int:
    return free_port()  # bound a moment ago and let go: nothing listens there


def _payments(n: int, tag: str) -> None:
    customer = CustomerFactory(country="US")
    for i in range(n):
        payment_record(
            customer=customer,
            provider="stripe",
            provider_reference=f"{tag}-{i}",
            amount=Money("10.00", "USD"),
        )


def test_reports_and_exports_are_served_by_the_replica_with_the_primary_refused(on_the_pair):
    tag = "replica-refused"
    _payments(3, tag)
    today = clock.now().date()
    # Finance reads the daily snapshots: made on the primary (as beat does), then replayed with the payments.
    finance_snapshots_refresh(start=today, end=today)
    wait_replayed(on_the_pair["primary_dsn"], on_the_pair["replica_dsn"])

    with databases_at(default={"PORT": str(_refused_port())}):
        # The primary really is out of reach: a plain read, or one that must be the primary's, fails.
        with pytest.raises(OperationalError):
            Payment.objects.filter(provider_reference__startswith=tag).count()
        with reads_from_replica(), primary_only(), pytest.raises(OperationalError):
            Payment.objects.filter(provider_reference__startswith=tag).count()

        with reads_from_replica():
            assert read_alias() == "replica"
            rows = list(
                csv_rows(
                    Payment.objects.using(read_alias()).filter(provider_reference__startswith=tag),
                    ["provider_reference", "amount"],
                    chunk=2,
                )
            )
            revenue = revenue_by_provider_currency(start=today, end=today, to="USD")  # the ORM, routed
            series = mrr_series(start=today - datetime.timedelta(days=1), end=today, currency="USD")

    assert [r[0] for r in rows[1:]] == [f"{tag}-{i}" for i in range(3)]
    assert {(r.provider, r.currency) for r in revenue} >= {("stripe", "USD")}
    assert sum(r.payments for r in revenue if r.provider == "stripe") >= 3
    assert [p.day for p in series] == [today - datetime.timedelta(days=1), today]


def test_writes_and_transactions_stay_on_the_primary_inside_replica_reads(on_the_pair):
    with reads_from_replica():
        customer = CustomerFactory(country="US")  # a write: the primary's
        with transaction.atomic():
            # Inside a transaction on the primary, a read sees what the transaction wrote: the primary's.
            assert read_alias() == "default"
            payment_record(customer=customer, provider="stripe", provider_reference="in-tx", amount=Money("1", "USD"))
            assert Payment.objects.filter(provider_reference="in-tx").exists()
        with primary_only():
            assert read_alias() == "default"
            assert Payment.objects.get(provider_reference="in-tx").customer_id == customer.pk
    assert read_alias() == "default"


def _staff(role: str) -> User:
    sync_roles()
    user = User.objects.create_user(username=f"replica-{role.lower()}", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return User.objects.get(pk=user.pk)


@contextlib.contextmanager
def _served_by():
    """Which alias ran each statement: (alias, sql) in order."""
    served: list[tuple[str, str]] = []

    def recorder(alias):
        def wrapper(execute, sql, params, many, context):
            served.append((alias, sql))
            return execute(sql, params, many, context)

        return wrapper

    with contextlib.ExitStack() as stack:
        for alias in ("default", "replica"):
            stack.enter_context(connections[alias].execute_wrapper(recorder(alias)))
        yield served


def test_the_export_and_the_finance_page_read_from_the_replica_over_http(on_the_pair, client):
    tag = "replica-http"
    _payments(4, tag)
    client.force_login(_staff("Finance"))
    wait_replayed(on_the_pair["primary_dsn"], on_the_pair["replica_dsn"])

    with _served_by() as served:
        response = client.get("/admin/monetization/payment/export.csv")
        body = b"".join(response.streaming_content).decode()
    assert response.status_code == 200
    refs = [r["provider_reference"] for r in csv.DictReader(io.StringIO(body))]
    assert {f"{tag}-{i}" for i in range(4)} <= set(refs)
    payment_reads = [
        alias for alias, sql in served if sql.lstrip().startswith("SELECT") and "monetization_payment" in sql
    ]
    assert payment_reads and set(payment_reads) == {"replica"}
    # The audit record of the export is a write: the primary's.
    assert {alias for alias, sql in served if sql.lstrip().startswith("INSERT")} == {"default"}
    assert AuditEvent.objects.filter(action="export.csv").exists()

    with _served_by() as served:
        page = client.get("/admin/subscriptions/subscription/finance/")
    assert page.status_code == 200
    report_reads = [alias for alias, sql in served if "monetization_payment" in sql or "subscriptions_" in sql]
    assert report_reads and set(report_reads) == {"replica"}
