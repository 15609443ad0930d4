"""The routing rules on their own (monetization/db_routing.py, backoffice/db_router.py); the real replica
is tests/backoffice/test_read_replica.py's."""

from __future__ import annotations

import threading

import pytest
from django.conf import settings
from django.db import router, transaction

from monetization.db_routing import primary_only, read_alias, reads_from_replica, session_alias
from monetization.models import Payment


@pytest.fixture
def with_replica(monkeypatch):
    # An alias is enough: nothing here connects to it.
    monkeypatch.setitem(settings.DATABASES, "replica", {**settings.DATABASES["default"]})


def test_without_a_replica_every_read_is_the_primarys():
    with reads_from_replica():
        assert read_alias() == "default"
        assert router.db_for_read(Payment) == "default"
    assert session_alias() == "default"


def test_replica_reads_nest_under_primary_only_and_end_with_their_block(with_replica):
    assert read_alias() == "default"
    with reads_from_replica():
        assert router.db_for_read(Payment) == "replica"
        assert router.db_for_write(Payment) == "default"
        with primary_only():
            assert read_alias() == "default"
            with reads_from_replica():
                assert read_alias() == "default"  # primary-only holds inside
        assert read_alias() == "replica"
    assert read_alias() == "default"


@pytest.mark.django_db(transaction=True)  # not inside the test case's own transaction
def test_a_transaction_on_the_primary_reads_the_primary(with_replica):
    with reads_from_replica():
        with transaction.atomic():
            assert read_alias() == "default"
        assert read_alias() == "replica"


def test_the_decorator_is_per_call_and_per_thread(with_replica):
    seen: dict[str, str] = {}
    entered, leave = threading.Event(), threading.Event()

    @reads_from_replica()
    def report(name: str) -> None:
        seen[name] = read_alias()
        entered.set()
        leave.wait(5)

    worker = threading.Thread(target=report, args=("thread",))
    worker.start()
    assert entered.wait(5)
    seen["caller"] = read_alias()  # the other thread's report does not route this thread's reads
    leave.set()
    worker.join()
    report("again")
    assert seen == {"thread": "replica", "caller": "default", "again": "replica"}
    assert read_alias() == "default"
