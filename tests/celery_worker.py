"""A real Celery worker for tests: ``celery -A backoffice worker --pool solo -B`` on Redis.

Eager mode runs a task inline in the caller's transaction, which hides exactly
what we want to test (on_commit enqueueing, a separate process and database
connection, retries with backoff). Tests using this fixture must be
``@pytest.mark.django_db(transaction=True)`` so the worker sees committed rows.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import dj_database_url
import pytest
from kombu import pools as kombu_pools

from tests.processes import database_url

BROKER_URL = os.environ.get("CELERY_TEST_BROKER_URL", "redis://127.0.0.1:6379/11")
REPO = Path(__file__).resolve().parent.parent


# What every test worker runs with, unless a test says otherwise: a short retry budget and a sweep every
# second, so retries and recovery finish in seconds (the mechanism is the one production runs).
WORKER_DEFAULTS = {
    "DEBUG": "1",
    "DB_CONN_MAX_AGE": "0",
    "WEBHOOK_APPLY_MAX_RETRIES": "2",
    "WEBHOOK_RETRY_BASE_SECONDS": "1",
    "WEBHOOK_SWEEP_INTERVAL": "1",
    "WEBHOOK_RECEIVED_GRACE_SECONDS": "2",
    "WEBHOOK_SWEEP_LEASE_SECONDS": "5",
}


class Worker:
    """A Celery worker process (``--pool solo``) with beat embedded (``-B``): what production runs as two
    supervised programs, in one process the tests can kill and start again."""

    def __init__(self, *, env: dict[str, str], log_path: Path, node: str, beat: bool = True, quiet: bool = True):
        self.env, self.log_path, self.node, self.beat, self.quiet = env, log_path, node, beat, quiet
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, *, wait: bool = True) -> Worker:
        from backoffice.celery import app as celery_app

        self.starts += 1
        beat = (
            ["-B", "--scheduler", "celery.beat:PersistentScheduler", "-s", str(self.log_path.with_suffix(".beat"))]
            if self.beat
            else []
        )
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "backoffice",
                "worker",
                *(["--pool", "solo"] if self.quiet else ["--pool", "prefork", "--concurrency", "2"]),
                "-l",
                "info",
                "-n",
                self.node,
                # quiet=False: as production runs it (prefork), talking to its peers over the broker.
                *(["--without-gossip", "--without-mingle", "--without-heartbeat"] if self.quiet else []),
                *beat,
            ],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group: a kill takes the embedded beat (a child process) down with it.
            start_new_session=True,
        )
        log.close()
        if wait:
            deadline = time.monotonic() + 60
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"celery worker exited: {self.log_path.read_text()[-3000:]}")
                if celery_app.control.ping(destination=[self.node], timeout=0.5):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("celery worker did not become ready in 60 s")
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no acknowledgement, the open transaction dropped by the database."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.alive():
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=15)
        self.kill()  # and whatever of its group is left (the beat child)


def worker_env(db_url: str, broker_url: str, **overrides: str) -> dict[str, str]:
    return {
        **os.environ,
        **WORKER_DEFAULTS,
        "DATABASE_URL": db_url,
        "CELERY_BROKER_URL": broker_url,
        "REDIS_URL": os.environ.get("REDIS_URL", ""),
        "PYTHONPATH": str(REPO),
        **overrides,
    }


@contextmanager
def broker(celery_app, settings, broker_url: str):
    """Point this process's publishing at ``broker_url`` (from an empty queue) for the duration."""
    previous = {k: celery_app.conf.get(k) for k in ("broker_url", "task_always_eager")}
    celery_app.conf.update(broker_url=broker_url, task_always_eager=False)
    settings.CELERY_BROKER_URL = broker_url
    settings.CELERY_TASK_ALWAYS_EAGER = False
    _reset_connections(celery_app, broker_url)
    # Leftover messages of an earlier run would reach this worker: start from an empty queue.
    # The URL named explicitly: the app's own write connection can still be the one configured at start.
    with celery_app.connection_for_write(url=broker_url) as conn:
        for name in settings.WORK_QUEUES:  # one queue per kind of work (backoffice/settings.py)
            if not broker_url.startswith("redis"):  # RabbitMQ: a new vhost has no queue yet
                celery_app.amqp.queues[name].bind(conn.default_channel).declare()
            conn.default_channel.queue_purge(name)
        if broker_url.startswith("redis"):
            # And the messages a killed worker left unacknowledged: Redis hands them out again once the
            # visibility timeout has passed, to whichever worker runs then (a later test's).
            conn.default_channel.client.delete("unacked", "unacked_index")
    try:
        yield
    finally:
        # The pooled connection stays on the test broker (eager tests never use it).
        celery_app.conf.update(**previous)


@pytest.fixture
def celery_worker_factory(transactional_db, settings, tmp_path, request):
    """Start workers (on ``broker_url``, default the test broker) the test may kill and start again."""
    from django.db import connection

    from backoffice.celery import app as celery_app

    db_url = database_url(connection.settings_dict)
    assert dj_database_url.parse(db_url)["NAME"].startswith("test_"), "the worker must use the test database"
    # @pytest.mark.worker_env(NAME="value"): what a test needs the worker to run with.
    marked = marker.kwargs if (marker := request.node.get_closest_marker("worker_env")) else {}
    workers: list[Worker] = []
    with ExitStack() as stack:

        def make(*, broker_url: str = BROKER_URL, beat: bool = True, quiet: bool = True, **env: str) -> Worker:
            stack.enter_context(broker(celery_app, settings, broker_url))
            worker = Worker(
                env=worker_env(db_url, broker_url, **{**marked, **env}),
                log_path=tmp_path / f"celery-worker-{len(workers)}.log",
                node=f"pytest-{os.getpid()}-{len(workers)}@localhost",
                beat=beat,
                quiet=quiet,
            )
            workers.append(worker)
            return worker

        try:
            yield make
        finally:
            for worker in workers:
                worker.stop()


@pytest.fixture
def celery_worker_process(celery_worker_factory):
    worker = celery_worker_factory().start()
    yield worker.proc


def _reset_connections(celery_app, broker_url: str = BROKER_URL) -> None:
    """Forget pooled broker connections so the next publish uses the current broker_url."""
    pool = celery_app._pool
    if pool is not None and pool.connection.as_uri(include_password=True) != broker_url:
        pool.force_close_all()
        celery_app._pool = None
        celery_app.amqp._producer_pool = None
        # kombu's process-wide producer pools, built over the pool just closed.
        kombu_pools.reset()


def wait_for(predicate, *, timeout: float = 30.0, interval: float = 0.1):
    """Poll until ``predicate()`` is truthy (the worker runs in another process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture
def rabbitmq_vhost():
    """A vhost of the test's own on the machine's RabbitMQ (created and deleted here), or a skip."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("RabbitMQ is not installed")
    vhost = f"bo_test_{os.getpid()}"

    def ctl(*args: str) -> bool:
        return subprocess.run(["rabbitmqctl", *args], capture_output=True, timeout=60).returncode == 0

    if not ctl("add_vhost", vhost):
        pytest.skip("RabbitMQ is not running")
    try:
        ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        ctl("delete_vhost", vhost)
