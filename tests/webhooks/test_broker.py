"""monetization.broker: kombu's Redis transport with one publishing client per channel."""

import os
import uuid

from kombu import Connection

from monetization.broker import Transport

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")


def test_messages_round_trip_and_the_publishing_client_is_reused():
    queue_name = f"test-broker-{uuid.uuid4().hex}"
    with Connection(REDIS_URL, transport="monetization.broker:Transport") as conn:
        assert isinstance(conn.transport, Transport)
        queue = conn.SimpleQueue(queue_name)
        try:
            channel = queue.channel
            for i in range(3):
                queue.put({"n": i})
            client = channel._create_client()
            assert channel._create_client() is client  # one client object, kept
            assert client.connection_pool is channel.pool
            received = []
            for _ in range(3):
                message = queue.get(timeout=5)
                received.append(message.payload["n"])
                message.ack()
            assert received == [0, 1, 2]
        finally:
            queue.queue.delete()
            queue.close()
