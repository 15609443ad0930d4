"""kombu's Redis transport, keeping one Redis client per channel for publishing.

kombu's Redis channel builds a new ``redis.Redis`` object for every message it
publishes (``_put`` -> ``conn_or_acquire()`` -> ``_create_client()``). The
connection itself comes from the channel's pool either way; what is rebuilt
each time is the client object, whose constructor copies redis-py's ~170
response callbacks: about as much CPU as the LPUSH round trip itself, on the
webhook accept path (one enqueue per event). A ``redis.Redis`` object is safe
to share (each command checks a connection out of the pool), so the channel
keeps one. Nothing else changes: same pool, same commands, same messages.
Enabled with ``CELERY_BROKER_TRANSPORT = "monetization.broker:Transport"``.
"""

from __future__ import annotations

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _sync_client = None

    def _create_client(self, asynchronous=False):
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._sync_client
        if client is None or client.connection_pool is not self.pool:
            client = self._sync_client = super()._create_client()
        return client

    def close(self):
        self._sync_client = None
        super().close()


class Transport(kombu_redis.Transport):
    Channel = Channel
