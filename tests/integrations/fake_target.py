"""A real HTTP server on loopback standing in for a CRM or engagement tool (outside the product, so faked
as a server, never as a mock of our code). Each request takes the next scripted behaviour, or the default
one, and is recorded with its headers, raw body and arrival time."""

import json
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    at: float  # time.monotonic() at arrival
    headers: dict
    body: bytes
    answered: int | None  # the status sent, or None when the connection was dropped or left hanging

    @property
    def message_id(self) -> str:
        """The delivery's stable id: `webhook-id` (Standard Webhooks), or `Idempotency-Key` (legacy headers)."""
        return self.headers.get("webhook-id") or self.headers["Idempotency-Key"]


@dataclass
class Behaviour:
    """What to do with a request: answer `status` (with `headers`), hang for `delay` seconds first, or close
    the connection without answering (`drop`)."""

    status: int = 200
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    body: bytes | None = None


OK = Behaviour(200)


def status(code: int, **headers) -> Behaviour:
    return Behaviour(code, {k.replace("_", "-"): v for k, v in headers.items()})


def answer(data) -> Behaviour:
    """200 with this JSON body (an enrichment provider's answer)."""
    return Behaviour(200, body=json.dumps(data).encode())


def hang(seconds: float) -> Behaviour:
    return Behaviour(200, delay=seconds)


DROP = Behaviour(drop=True)


class FakeTarget:
    def __init__(self):
        self.script: list[Behaviour] = []
        self.default: Behaviour = OK
        self.failure_rate = 0.0  # share of requests answered 500 at random (after the script runs out)
        self.received: list[Received] = []
        # When set, a request is answered only once this many are in flight together (after 10 s: 503),
        # which tells calls made together from calls made one after another.
        self.together: threading.Barrier | None = None
        self._lock = threading.Lock()
        self._random = random.Random(7)
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                behaviour = target._next()
                record = Received(time.monotonic(), dict(self.headers.items()), body, None)
                with target._lock:
                    target.received.append(record)
                if target.together is not None:
                    try:
                        target.together.wait(timeout=10)
                    except threading.BrokenBarrierError:
                        behaviour = status(503)
                if behaviour.delay:
                    time.sleep(behaviour.delay)
                if behaviour.drop:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                payload = behaviour.body or (b"{}" if behaviour.status < 400 else b'{"error": "scripted"}')
                self.send_response(behaviour.status)
                for name, value in behaviour.headers.items():
                    self.send_header(name, str(value))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                record.answered = behaviour.status

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/handoff"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _next(self) -> Behaviour:
        with self._lock:
            if self.script:
                return self.script.pop(0)
            if self.failure_rate and self._random.random() < self.failure_rate:
                return status(500)
            return self.default

    def start(self) -> "FakeTarget":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def delivered_keys(self) -> list[str]:
        """Message ids of the requests answered 2xx, repeats included."""
        with self._lock:
            return [r.message_id for r in self.received if r.answered and r.answered < 300]
