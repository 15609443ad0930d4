"""Where deliveries go: one small interface, so the same outbox can later feed a message broker.

A sink sends one event's body to one endpoint and says whether it was accepted. HTTP is the
first sink; a broker sink would publish to an exchange named by the endpoint instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import urllib3

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
        secrets = [endpoint.secret]
        expires = endpoint.previous_secret_expires_at
        if endpoint.previous_secret and (expires is None or expires > clock.now()):
            secrets.append(endpoint.previous_secret)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "backoffice-events/1",
            "Backoffice-Event-Id": event_id,
            "Backoffice-Event-Type": event_type,
            HEADER: signature_header(body, secrets),
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
