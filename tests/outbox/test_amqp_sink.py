"""The RabbitMQ sink against the machine's real RabbitMQ: what the outbox delivers to an ``amqp://`` endpoint
arrives on the exchange, signed, once per event id, in order per customer; a broker that is not there
leaves the deliveries pending for their retry."""

import uuid

import pytest
from kombu import Connection, Exchange, Queue

from monetization.models import EventDelivery, EventEndpoint
from monetization.outbox.delivery import outbox_deliver
from monetization.outbox.signing import signature_verify
from tests.monetization.factories import CustomerFactory
from tests.outbox.test_delivery import write

pytestmark = pytest.mark.django_db


@pytest.fixture
def exchange_queue(rabbitmq_vhost):
    """A topic exchange of the test's own on its own vhost, with a queue bound to every routing key."""
    name = f"events-{uuid.uuid4().hex[:8]}"
    exchange = Exchange(name, type="topic", durable=True)
    queue = Queue(f"{name}-all", exchange=exchange, routing_key="#", durable=False, auto_delete=False)
    with Connection(rabbitmq_vhost) as conn:
        queue(conn.default_channel).declare()  # declares the exchange too, so nothing published is lost
    return rabbitmq_vhost, name, queue


def drain(url: str, queue: Queue) -> list:
    messages = []
    with Connection(url) as conn:
        bound = queue(conn.default_channel)
        while (message := bound.get(no_ack=True)) is not None:
            messages.append(message)
    return messages


def test_events_reach_the_exchange_signed_in_order_per_customer(exchange_queue):
    url, exchange, queue = exchange_queue
    endpoint = EventEndpoint.objects.create(url=f"{url}?exchange={exchange}", secret="whsec_amqp")
    first, second = CustomerFactory(), CustomerFactory()
    written = write(first, 5) + write(second, 4, type="CANCELLATION")

    run = outbox_deliver(budget_seconds=10)

    assert run.delivered == 9
    messages = drain(url, queue)
    assert sorted(m.properties["message_id"] for m in messages) == sorted(str(e.event_id) for e in written)
    for message in messages:
        body = message.body if isinstance(message.body, bytes) else message.body.encode()
        assert signature_verify(body, message.headers["Backoffice-Signature"], "whsec_amqp")
        assert message.headers["Backoffice-Event-Id"] == message.properties["message_id"]
        assert message.delivery_info["routing_key"] == message.headers["Backoffice-Event-Type"]
        assert message.properties["delivery_mode"] == 2
    for customer in (first, second):
        sequences = [
            m.payload["sequence"] for m in messages if m.payload["customer"]["external_id"] == customer.external_id
        ]
        assert sequences == sorted(sequences) and len(sequences) in (4, 5)
    assert not EventDelivery.objects.filter(endpoint=endpoint).exclude(status="delivered").exists()
    assert "guest:**@" in str(endpoint) or "guest@" in str(endpoint)  # the password is not shown


def test_a_broker_that_is_not_there_leaves_the_events_pending_then_they_go(exchange_queue):
    url, exchange, queue = exchange_queue
    endpoint = EventEndpoint.objects.create(url=f"amqp://guest:guest@127.0.0.1:1//?exchange={exchange}", secret="s")
    events = write(CustomerFactory(), 3)

    run = outbox_deliver(budget_seconds=5)

    assert run.delivered == 0 and run.failed >= 1
    pending = EventDelivery.objects.filter(endpoint=endpoint, status="pending")
    assert pending.count() == 3 and pending.exclude(last_error="").exists()

    # The broker is back (the endpoint now names the real one) and the retry is due.
    EventEndpoint.objects.filter(pk=endpoint.pk).update(url=f"{url}?exchange={exchange}")
    EventDelivery.objects.filter(endpoint=endpoint).update(next_attempt_at="2000-01-01T00:00:00Z")
    outbox_deliver(budget_seconds=10)

    assert [m.properties["message_id"] for m in drain(url, queue)] == [str(e.event_id) for e in events]
    assert EventDelivery.objects.filter(endpoint=endpoint, status="delivered").count() == 3


def test_an_endpoint_url_names_http_or_a_broker_only():
    from django.core.exceptions import ValidationError

    for url in ("https://example.com/hooks", "amqp://u:p@127.0.0.1:5672/vhost?exchange=events"):
        EventEndpoint(url=url, secret="s").full_clean()
    with pytest.raises(ValidationError):
        EventEndpoint(url="ftp://example.com/x", secret="s").full_clean()
