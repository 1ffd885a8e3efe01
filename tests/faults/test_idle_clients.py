"""Idle and slow clients against gunicorn as shipped (config/gunicorn.py): connections that send nothing, a
kept-alive connection left idle, and clients dribbling their request a byte at a time must not stop /healthz
and /metrics from answering. (With README's old `gunicorn config.wsgi`, one sync worker, a single idle
connection held every other request until the worker was killed 30 s later; twenty clients stopping halfway
through their headers held every thread for as long as they stayed connected.)"""

import socket
import threading
import time

import httpx
import pytest

from tests.observability.production import shipped_gunicorn

pytestmark = pytest.mark.django_db(transaction=True)

IDLE = 12  # connections that never send a byte
SLOW = 3  # clients sending their request one byte every SLOW_BYTE_SECONDS
SLOW_BYTE_SECONDS = 0.15
PROBE_TIMEOUT = 15  # a probe that has not answered in this long counts as failed (Prometheus' default is 10 s)


def connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=60)


def read_answer(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


class SlowClient(threading.Thread):
    """GET /healthz, written one byte at a time; the request's last byte only once `finish` is set, so it is
    mid-request for as long as the test needs. Keeps the status line it got back."""

    def __init__(self, base: str, finish: threading.Event):
        super().__init__(daemon=True)
        self.sock = connect(base)
        self.finish = finish
        self.started_writing = threading.Event()
        self.status_line = b""

    def run(self):
        request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        for byte in request[:-1]:
            self.sock.sendall(bytes([byte]))
            self.started_writing.set()
            time.sleep(SLOW_BYTE_SECONDS)
        self.finish.wait(timeout=120)
        self.sock.sendall(request[-1:])
        self.status_line = read_answer(self.sock).split(b"\r\n", 1)[0]
        self.sock.close()


def test_health_and_metrics_answer_while_idle_and_slow_clients_hold_connections(processes):
    base, server = shipped_gunicorn(processes)
    idle = [connect(base) for _ in range(IDLE)]
    kept_alive = httpx.Client(base_url=base, timeout=PROBE_TIMEOUT)
    assert kept_alive.get("/healthz").status_code == 200  # its connection now stays open, idle
    probes_done = threading.Event()
    slow = [SlowClient(base, probes_done) for _ in range(SLOW)]
    for client in slow:
        client.start()
        client.started_writing.wait(timeout=10)
    try:
        # Every connection above is still open and none has sent a whole request: the probes get through.
        for path in ("/healthz", "/metrics", "/healthz", "/metrics"):
            answer = httpx.get(f"{base}{path}", timeout=PROBE_TIMEOUT)
            assert answer.status_code == 200, (path, answer.status_code, server.tail())
        probes_done.set()
        for client in slow:
            client.join(timeout=60)
        assert [client.status_line for client in slow] == [b"HTTP/1.1 200 OK"] * SLOW  # served too, once complete
        assert server.running()
    finally:
        probes_done.set()
        kept_alive.close()
        for sock in idle:
            sock.close()


HALF = 12  # clients that send half a request (of the 2 workers × 8 threads)


def test_clients_that_stop_halfway_through_their_headers_are_cut_off_and_the_probes_answer(processes):
    base, server = shipped_gunicorn(processes, GUNICORN_READ_TIMEOUT="2")
    half = []
    for _ in range(HALF):
        sock = connect(base)
        # Far beyond the read timeout: gthread accepts about one waiting connection a second while its threads
        # are busy, so the last of them is reached (and cut off) 15-25 s in; one still open at 60 s never was.
        sock.settimeout(60)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and nothing more
        half.append(sock)
    try:
        # Each is disconnected once silent for the read timeout, nothing sent back (before: held for good, and
        # with them every thread, so the probes timed out).
        for sock in half:
            assert read_answer(sock) == b""
        for path in ("/healthz", "/readyz", "/metrics"):
            answer = httpx.get(f"{base}{path}", timeout=PROBE_TIMEOUT)
            assert answer.status_code == 200, (path, answer.status_code, server.tail())
        assert server.running()
    finally:
        for sock in half:
            sock.close()
