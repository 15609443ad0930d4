"""Where deliveries go: one small interface, so the same outbox feeds HTTP receivers and a message broker.

A sink sends one event's body to one endpoint and says whether it was accepted. The endpoint's URL
chooses the sink (:func:`sink_for`): ``https://...`` posts to a receiver (:class:`HttpSink`);
``amqp://user:password@host:port/vhost?exchange=name`` publishes to a RabbitMQ exchange
(:class:`AmqpSink`), the broker Celery already speaks.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qs, urlsplit, urlunsplit

import urllib3
from kombu import Connection, Exchange, Producer

from monetization import clock
from monetization.models import EventEndpoint
from monetization.outbox.signing import HEADER, signature_header


@dataclass(frozen=True)
class SendResult:
    ok: bool
    status_code: int | None = None
    error: str = ""


class Sink(Protocol):
    def send(self, endpoint: EventEndpoint, event_id: str, event_type: str, body: bytes) -> SendResult: ...

    def close(self) -> None: ...


class HttpSink:
    """POST the JSON body, signed; any 2xx is accepted, anything else (or no answer) is retried.

    urllib3 directly (requests' per-call overhead is most of a local delivery's CPU); one pool of
    kept-alive connections per sink, no redirects followed, no retries of its own (the outbox retries).
    """

    def __init__(self, *, connect_timeout: float = 3.0, read_timeout: float = 10.0):
        self.http = urllib3.PoolManager(
            num_pools=4,
            maxsize=1,
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            retries=False,
        )

    def send(self, endpoint: EventEndpoint, event_id: str, event_type: str, body: bytes) -> SendResult:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "backoffice-events/1",
            **_signed_headers(endpoint, event_id, event_type, body),
        }
        try:
            response = self.http.request("POST", endpoint.url, body=body, headers=headers, redirect=False)
        except urllib3.exceptions.HTTPError as exc:
            return SendResult(ok=False, error=f"{type(exc).__name__}: {exc}"[:500])
        ok = 200 <= response.status < 300
        return SendResult(
            ok=ok, status_code=response.status, error="" if ok else response.data[:500].decode(errors="replace")
        )

    def close(self) -> None:
        self.http.clear()


AMQP_SCHEMES = ("amqp", "amqps")
DEFAULT_EXCHANGE = "backoffice.events"


class AmqpSink:
    """Publish the JSON body to a durable topic exchange, routed by event type, as a persistent message with
    the event id as its message id and the same signature headers as HTTP. With publisher confirms: a
    publish returns once RabbitMQ has taken the message, so "accepted" means the broker has it (a refused
    or unconfirmed publish is retried by the outbox like a failed POST).

    One connection per sink (a delivery lane), opened on first use and again after an error; the
    exchange is declared once per connection (declaring an existing one is a no-op).
    """

    def __init__(self, *, connect_timeout: float = 3.0):
        self.connect_timeout = connect_timeout
        self.connection: Connection | None = None
        self.producer: Producer | None = None
        self.url = ""

    def _producer(self, endpoint: EventEndpoint) -> tuple[Producer, Exchange]:
        broker_url, exchange_name = amqp_target(endpoint.url)
        exchange = Exchange(exchange_name, type="topic", durable=True)
        if self.producer is None or self.url != endpoint.url:
            self.close()
            self.connection = Connection(
                broker_url, connect_timeout=self.connect_timeout, transport_options={"confirm_publish": True}
            )
            self.connection.ensure_connection(max_retries=1)
            self.producer = Producer(self.connection.channel(), exchange=exchange)
            exchange(self.producer.channel).declare()
            self.url = endpoint.url
        return self.producer, exchange

    def send(self, endpoint: EventEndpoint, event_id: str, event_type: str, body: bytes) -> SendResult:
        try:
            producer, exchange = self._producer(endpoint)
            producer.publish(
                body,
                exchange=exchange,
                routing_key=event_type,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,  # persistent
                message_id=event_id,
                type=event_type,
                headers=_signed_headers(endpoint, event_id, event_type, body),
                retry=False,
            )
        except Exception as exc:  # any broker or network failure: the outbox retries it
            self.close()
            return SendResult(ok=False, error=f"{type(exc).__name__}: {exc}"[:500])
        return SendResult(ok=True)

    def close(self) -> None:
        connection, self.connection, self.producer = self.connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):  # a broken connection has nothing left to release
                connection.release()


def amqp_target(url: str) -> tuple[str, str]:
    """The broker URL and the exchange an ``amqp://...?exchange=name`` endpoint URL names."""
    parts = urlsplit(url)
    exchange = parse_qs(parts.query).get("exchange", [DEFAULT_EXCHANGE])[0]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), exchange


def sink_for(endpoint: EventEndpoint) -> Sink:
    """The sink the endpoint's URL scheme names."""
    if urlsplit(endpoint.url).scheme in AMQP_SCHEMES:
        return AmqpSink()
    return HttpSink()


def _signed_headers(endpoint: EventEndpoint, event_id: str, event_type: str, body: bytes) -> dict[str, str]:
    """The event's id and type and the body's signature under each live secret (two during a rotation)."""
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and (expires is None or expires > clock.now()):
        secrets.append(endpoint.previous_secret)
    return {
        "Backoffice-Event-Id": event_id,
        "Backoffice-Event-Type": event_type,
        HEADER: signature_header(body, secrets),
    }
