"""A real Celery worker (beat embedded) relays audited changes into the outbox and delivers them to a real HTTP
receiver, and is SIGKILLed at random points on the way: every event arrives at least once, none is missing,
each customer's events arrive in order (first arrivals), and a duplicate carries the same id and the same body."""

import os
import random
from collections import defaultdict

import pytest
from django.db import connection

from monetization.models import EventDelivery, EventEndpoint, OutboxEvent
from monetization.models.outbox import event_id_for_audit
from tests.celery_worker import wait_for
from tests.outbox.receiver import Receiver
from tests.outbox.test_delivery import readme_verify

# Longer than the suite's 300 s: events come from the relay without entitlements, so each delivery batch
# resolves its customers' (about 190 of 200 deliveries here): seconds on a quiet machine, minutes at load 20.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.timeout(900)]

EVENTS = int(os.environ.get("TEST_OUTBOX_KILL_EVENTS", "10000"))
CUSTOMERS = 300
KILLS = 4


def _audit_write(n: int, customers: int) -> list[int]:
    """n audited changes (each row is an event) over ``customers`` customers, set-based in ten transactions as
    a bulk job leaves them; the worker's relay publishes them and its delivery sends them. Their audit ids."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO monetization_customer (external_id, handle, email, country, created_at)
            SELECT 'kill-' || g, 'kill' || g, '', 'US', now() FROM generate_series(1, %s) g
            """,
            [customers],
        )
        ids: list[int] = []
        step = max(1, n // 10)
        for start in range(1, n + 1, step):
            cursor.execute(
                """
                INSERT INTO monetization_auditevent
                    (occurred_at, actor_kind, actor_label, action, object_type, object_id, customer_id, after,
                     reason, request_id)
                SELECT now(), 'system', 'test', 'subscription.payment_recovered', 'subscriptions.subscription',
                       g::text, c.id, jsonb_build_object('n', g), '', ''
                FROM generate_series(%s, %s) g
                JOIN monetization_customer c ON c.external_id = 'kill-' || (1 + g %% %s)
                ORDER BY g
                RETURNING id
                """,
                [start, min(start + step - 1, n), customers],
            )
            ids += [row[0] for row in cursor.fetchall()]
    return ids


@pytest.mark.worker_env(
    OUTBOX_DELIVER_INTERVAL="0.5",
    OUTBOX_DELIVER_BUDGET_SECONDS="20",
    OUTBOX_DELIVER_BATCH="200",
    OUTBOX_RELAY_BATCH="700",
)
def test_a_worker_killed_at_random_points_delivers_every_event_in_order_per_customer(celery_worker_factory):
    receiver = Receiver().start()
    try:
        EventEndpoint.objects.create(url=receiver.url, secret="whsec_kill")
        audit_ids = _audit_write(EVENTS, CUSTOMERS)
        # Nothing is published yet: the worker's relay makes each event, with the id its audit row gives it.
        assert not OutboxEvent.objects.exists()
        events = {str(event_id_for_audit(a)) for a in audit_ids}
        assert len(events) == EVENTS

        rng = random.Random(int(os.environ.get("TEST_OUTBOX_KILL_SEED", "15")))
        worker = celery_worker_factory()
        worker.start(wait=False)
        marks = sorted(rng.uniform(0.05, 0.9) for _ in range(KILLS))
        for share in marks:
            wait_for(lambda share=share: len(receiver.accepted) >= EVENTS * share, timeout=300, interval=0.01)
            worker.kill()
            worker.start(wait=False)

        wait_for(lambda: len({r.event["id"] for r in receiver.accepted}) >= EVENTS, timeout=600, interval=0.2)
        wait_for(lambda: not EventDelivery.objects.exclude(status="delivered").exists(), timeout=60)
        worker.stop()

        received = list(receiver.accepted)
        ids = [r.event["id"] for r in received]
        assert set(ids) == events, "an event never reached the receiver"
        # Duplicates (sent, then the worker died before marking them) carry the same id and the same body.
        bodies = defaultdict(set)
        for r in received:
            bodies[r.event["id"]].add(r.body)
        assert all(len(b) == 1 for b in bodies.values())
        # Per customer, the first arrival of each event follows the outbox order, which is the audit order.
        assert OutboxEvent.objects.count() == EVENTS  # a relay killed half-way made no copies
        first_seen: dict[str, list[int]] = defaultdict(list)
        first_audit: dict[str, list[int]] = defaultdict(list)
        seen: set[str] = set()
        for r in received:
            event = r.event
            if event["id"] in seen:
                continue
            seen.add(event["id"])
            first_seen[event["customer"]["external_id"]].append(event["sequence"])
            first_audit[event["customer"]["external_id"]].append(event["audit_event_id"])
        assert len(first_seen) == CUSTOMERS
        for sequences in first_seen.values():
            assert sequences == sorted(sequences)
        for audits in first_audit.values():
            assert audits == sorted(audits)
        # Signed, and the README's snippet verifies what came over the wire.
        verify = readme_verify()
        sample = rng.sample(received, 50)
        assert all(verify(r.body, r.headers["Backoffice-Signature"], "whsec_kill", tolerance=3600) for r in sample)
        print(f"{len(received)} requests for {EVENTS} events ({len(received) - EVENTS} duplicates), {KILLS} kills")
    finally:
        receiver.stop()
