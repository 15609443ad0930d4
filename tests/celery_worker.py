"""A real Celery worker for tests: ``celery -A backoffice worker --pool solo`` on Redis.

Eager mode runs a task inline in the caller's transaction, which hides exactly
what we want to test (on_commit enqueueing, a separate process and database
connection, retries with backoff). Tests using this fixture must be
``@pytest.mark.django_db(transaction=True)`` so the worker sees committed rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import dj_database_url
import pytest

from tests.processes import database_url

BROKER_URL = os.environ.get("CELERY_TEST_BROKER_URL", "redis://127.0.0.1:6379/11")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def celery_worker_process(transactional_db, settings, tmp_path, request):
    from django.db import connection

    from backoffice.celery import app as celery_app

    db_url = database_url(connection.settings_dict)
    assert dj_database_url.parse(db_url)["NAME"].startswith("test_"), "the worker must use the test database"
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "CELERY_BROKER_URL": BROKER_URL,
        "REDIS_URL": os.environ.get("REDIS_URL", ""),
        "DEBUG": "1",
        "DB_CONN_MAX_AGE": "0",
        # Short retry budget so backoff tests finish in seconds.
        "WEBHOOK_APPLY_MAX_RETRIES": "2",
        "PYTHONPATH": str(REPO),
        # @pytest.mark.worker_env(NAME="value"): what a test needs the worker to run with.
        **(marker.kwargs if (marker := request.node.get_closest_marker("worker_env")) else {}),
    }
    previous = {k: celery_app.conf.get(k) for k in ("broker_url", "task_always_eager")}
    celery_app.conf.update(broker_url=BROKER_URL, task_always_eager=False)
    settings.CELERY_BROKER_URL = BROKER_URL
    settings.CELERY_TASK_ALWAYS_EAGER = False
    _reset_connections(celery_app)
    # Leftover messages of an earlier run would reach this worker: start from an empty queue.
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge("celery")
    log = (tmp_path / "celery-worker.log").open("wb")
    node = f"pytest-{os.getpid()}@localhost"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "backoffice",
            "worker",
            "--pool",
            "solo",
            "-l",
            "info",
            "-n",
            node,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"celery worker exited: {(tmp_path / 'celery-worker.log').read_text()[-3000:]}")
            if celery_app.control.ping(destination=[node], timeout=0.5):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("celery worker did not become ready in 60 s")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        # The pooled connection stays on the test broker (eager tests never use it).
        celery_app.conf.update(**previous)


def _reset_connections(celery_app) -> None:
    """Forget pooled broker connections so the next publish uses the current broker_url."""
    pool = celery_app._pool
    if pool is not None and pool.connection.as_uri(include_password=True) != BROKER_URL:
        pool.force_close_all()
        celery_app._pool = None
        celery_app.amqp._producer_pool = None


def wait_for(predicate, *, timeout: float = 30.0, interval: float = 0.1):
    """Poll until ``predicate()`` is truthy (the worker runs in another process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
