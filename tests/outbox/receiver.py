"""A real HTTP receiver on 127.0.0.1 for delivery tests: records every request it accepts."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]

    @property
    def event(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """``answer(received) -> status``: what the receiver replies (default 200)."""

    answer: Callable[[Received], int] = lambda received: 200
    accepted: list[Received] = field(default_factory=list)
    refused: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/events"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if len(body) != length:  # the sender died mid-request: nothing was received
                    self.close_connection = True
                    return
                received = Received(body=body, headers=dict(self.headers.items()))
                status = receiver.answer(received)
                with receiver.lock:
                    (receiver.accepted if 200 <= status < 300 else receiver.refused).append(received)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def events(self) -> list[dict]:
        with self.lock:
            return [r.event for r in self.accepted]
