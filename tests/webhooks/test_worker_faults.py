"""A worker SIGKILLed in the middle of applying: every event is applied exactly once after it is started
again, with nobody replaying anything (the sweep finds what the dead worker held)."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis
from django.core.cache import cache

from backoffice.celery import app as celery_app
from monetization.models import AuditEvent, Payment, WebhookEvent
from monetization.services.ledger import ledger_report
from monetization.services.webhooks import APPLY_SCHEDULED_KEY
from monetization.webhook_queue import webhook_apply_schedule
from tests.celery_worker import BROKER_URL, wait_for
from tests.webhooks.support import post_stripe, stripe_invoice_event, stripe_subscription_event

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

N = 300  # subscriptions, each a created event and its first invoice


def _deliveries() -> list[dict]:
    events = []
    for i in range(N):
        sub_id = f"sub_kill_{i:04d}"
        events.append(
            stripe_subscription_event(
                event_id=f"evt_kill_sub_{i}",
                created=1767225600 + i,
                sub_id=sub_id,
                event_type="customer.subscription.created",
            )
        )
        events.append(
            stripe_invoice_event(
                event_id=f"evt_kill_inv_{i}",
                created=1767225601 + i,
                invoice_id=f"in_kill_{i:04d}",
                sub_id=sub_id,
                billing_reason="subscription_create",
            )
        )
    return events


def _applied() -> int:
    return WebhookEvent.objects.filter(status=WebhookEvent.Status.APPLIED).count()


# Small batches: the worker commits often, so a kill lands between some applied and some not; one task
# applies them all, so killing it loses the only message for them (unacknowledged on Redis for the
# visibility timeout, minutes).
@pytest.mark.worker_env(WEBHOOK_APPLY_BATCH="4", WEBHOOK_APPLY_BATCHES_PER_TASK="1000")
def test_events_held_by_a_killed_worker_are_applied_once_after_a_restart(
    celery_worker_factory, client, catalog, customers
):
    worker = celery_worker_factory()
    deliveries = _deliveries()
    for event in deliveries:
        assert post_stripe(client, event).status_code == 200
    total = len(deliveries)
    # One task for the whole backlog (as a burst gets in production: up to 2,000 events a task), so the
    # first kill loses the only message for them.
    with celery_app.connection_for_write(url=BROKER_URL) as conn:
        conn.default_channel.queue_purge("webhooks")  # the webhook tasks' queue
    cache.delete(APPLY_SCHEDULED_KEY)
    webhook_apply_schedule()
    worker.start(wait=False)  # killed as soon as it has applied some, ready or not

    for share in (0.1, 0.4):
        wait_for(lambda share=share: _applied() >= total * share, timeout=120, interval=0.01)
        worker.kill()
        assert _applied() < total, "the worker finished before it was killed: nothing to recover"
        worker.start(wait=False)

    # No new delivery arrives and nobody replays: the sweep (every second here) requeues what the dead
    # worker had taken, once its grace or lease has passed.
    restarted = time.monotonic()
    wait_for(lambda: _applied() == total, timeout=60)
    assert time.monotonic() - restarted < 60
    assert not WebhookEvent.objects.exclude(status=WebhookEvent.Status.APPLIED).exists()
    # Exactly once: one subscription and one payment per subscription, one creation in the audit trail.
    assert Payment.objects.count() == N
    assert AuditEvent.objects.filter(action="subscription.create").count() == N
    assert ledger_report().balanced


OUTAGE_SECONDS = float(os.environ.get("TEST_BROKER_OUTAGE_SECONDS", "5"))
PRIVATE_REDIS_PORT = int(os.environ.get("TEST_PRIVATE_REDIS_PORT", "6421"))


class RedisServer:
    """A redis-server of the test's own (never the shared one), to stop and start again."""

    def __init__(self, port: int, workdir: Path):
        self.port, self.workdir, self.proc = port, workdir, None
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        wait_for(lambda: self._answers(client), timeout=10)

    @staticmethod
    def _answers(client) -> bool:
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(PRIVATE_REDIS_PORT, tmp_path)
    server.start()
    yield server
    server.stop()


def test_the_worker_survives_its_broker_restarting_and_applies_what_comes_after(
    celery_worker_factory, private_redis, client, catalog, customers
):
    worker = celery_worker_factory(broker_url=private_redis.url, quiet=False).start()
    first = stripe_subscription_event(
        event_id="evt_before_outage", created=1767225600, event_type="customer.subscription.created"
    )
    post_stripe(client, first)
    wait_for(lambda: WebhookEvent.objects.filter(event_id="evt_before_outage", status="applied").exists())

    private_redis.stop()
    time.sleep(OUTAGE_SECONDS)
    assert worker.alive()
    private_redis.start()
    time.sleep(2)
    assert worker.alive(), worker.log_path.read_text()[-3000:]

    after = stripe_subscription_event(event_id="evt_after_outage", created=1767225700, status="past_due")
    post_stripe(client, after)
    wait_for(lambda: WebhookEvent.objects.filter(event_id="evt_after_outage", status="applied").exists(), timeout=90)
    assert worker.alive()


def test_a_worker_on_rabbitmq_applies_events(celery_worker_factory, rabbitmq_vhost, client, catalog, customers):
    worker = celery_worker_factory(broker_url=rabbitmq_vhost).start()
    created = stripe_subscription_event(
        event_id="evt_on_rabbitmq", created=1767225600, event_type="customer.subscription.created"
    )
    post_stripe(client, created)
    wait_for(lambda: WebhookEvent.objects.filter(event_id="evt_on_rabbitmq", status="applied").exists())
    assert Payment.objects.count() == 0 and worker.alive()
