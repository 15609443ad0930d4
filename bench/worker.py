"""A real Celery worker for benchmarks: ``celery -A backoffice worker --pool solo`` (one process)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def start_worker(env: dict, *, node: str, log=None) -> subprocess.Popen:
    """Start the worker named ``node`` with ``env`` (its broker, database, settings); output to ``log``."""
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "backoffice", "worker", "--pool", "solo", "-l", "warning"),
            *("-n", node, "--without-gossip", "--without-mingle", "--without-heartbeat"),
        ],
        cwd=REPO,
        env={**env, "DJANGO_SETTINGS_MODULE": "backoffice.settings"},
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
    )


def wait_ready(proc: subprocess.Popen, node: str, *, timeout: float = 60, what: str = "") -> None:
    """Until the worker answers a ping (it consumes from then on); raises if it exits or stays silent."""
    from django.conf import settings

    from backoffice.celery import app as celery_app
    from bench.lanes import broker_url

    deadline = time.monotonic() + timeout
    # The run's own broker: the ping is published through the app's producer pool whatever connection
    # it is given, and a benchmark process has no broker configured (Celery then defaults to RabbitMQ's),
    # so the app is pointed at it, through the Django setting its configuration reads, before the pool
    # is first built.
    url = broker_url()
    if celery_app.conf.broker_url != url:
        if celery_app._pool is not None:
            raise RuntimeError("the benchmark published to another broker before starting its worker")
        settings.CELERY_BROKER_URL = url
    # A busy machine's worker can take over half a second to answer: a reply after the timeout is lost.
    while not celery_app.control.ping(destination=[node], timeout=2):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"celery worker not ready{'; see ' + what if what else ''}")
