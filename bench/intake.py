"""Intake throughput over HTTP: gunicorn (2 sync workers) on PostgreSQL and Redis, load from separate processes.

Measures single-lead POSTs (requests/s, P50/P95/P99 latency) and 500-lead batch POSTs (leads/s).
Goal on this 2-core machine: batch intake >= 5,000 leads/s. The load generator shares the two cores
with the server, so these figures are a floor, not a ceiling.

    python bench/intake.py [--seconds 10] [--single-clients 8] [--batch-clients 4]
"""

import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request

from _setup import BENCH_ENV, ROOT, machine, median, percentile, recreate_database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_database() -> str:
    """A fresh bench database, migrated, with one capture source; returns its token."""
    recreate_database()
    from routing.sources import source_create

    _, token = source_create(name="bench")
    return token


def start_server(port: int) -> subprocess.Popen:
    env = {**os.environ, **BENCH_ENV}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "2",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("gunicorn did not start")


def client(port, token, path, make_bodies, index, seconds, barrier, out):
    """One load process: builds its bodies, waits for the others, then posts on a keep-alive connection."""
    bodies = make_bodies(index)
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    latencies, statuses = [], {}
    barrier.wait()
    end = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < end and i < len(bodies):
        began = time.perf_counter()
        conn.request("POST", path, body=bodies[i], headers=headers)
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - began)
        statuses[response.status] = statuses.get(response.status, 0) + 1
        i += 1
    out.put((latencies, statuses, time.time()))


def load(port, token, path, make_bodies, clients, seconds):
    out = mp.Queue()
    barrier = mp.Barrier(clients + 1)
    procs = [
        mp.Process(target=client, args=(port, token, path, make_bodies, c, seconds, barrier, out))
        for c in range(clients)
    ]
    for proc in procs:
        proc.start()
    barrier.wait()
    started = time.time()
    results = [out.get() for _ in procs]
    for proc in procs:
        proc.join()
    elapsed = max(finished for _, _, finished in results) - started
    latencies = [lat for lats, _, _ in results for lat in lats]
    statuses = {}
    for _, s, _ in results:
        for code, n in s.items():
            statuses[code] = statuses.get(code, 0) + n
    return latencies, statuses, elapsed


def lead_bodies(seed: int, n: int, per_request: int) -> list[bytes]:
    sys.path.insert(0, str(ROOT))
    from routing.demo.leads import synthetic_lead

    rng = random.Random(seed)
    if per_request == 1:
        return [json.dumps(synthetic_lead(rng)).encode() for _ in range(n)]
    return [json.dumps([synthetic_lead(rng) for _ in range(per_request)]).encode() for _ in range(n)]


def single_bodies(index: int) -> list[bytes]:
    return lead_bodies(1000 + index, 4000, 1)


def batch_bodies(index: int) -> list[bytes]:
    return lead_bodies(2000 + index, 60, 500)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--single-clients", type=int, default=8)
    parser.add_argument("--batch-clients", type=int, default=4)
    args = parser.parse_args()

    token = prepare_database()
    port = free_port()
    server = start_server(port)
    try:
        print(f"Intake benchmark on {machine()}; gunicorn 2 sync workers; PostgreSQL + Redis on loopback")
        lat, statuses, elapsed = load(port, token, "/api/v1/leads/", single_bodies, args.single_clients, args.seconds)
        print(
            f"single lead: {len(lat) / elapsed:,.0f} req/s with {args.single_clients} clients; "
            f"P50 {median(lat) * 1000:.1f} ms, P95 {percentile(lat, 95) * 1000:.1f} ms, "
            f"P99 {percentile(lat, 99) * 1000:.1f} ms; statuses {statuses}"
        )
        lat, statuses, elapsed = load(
            port, token, "/api/v1/leads/batch/", batch_bodies, args.batch_clients, args.seconds
        )
        print(
            f"batch of 500: {len(lat) * 500 / elapsed:,.0f} leads/s ({len(lat) / elapsed:.1f} req/s) "
            f"with {args.batch_clients} clients; P50 {median(lat) * 1000:.0f} ms, "
            f"P95 {percentile(lat, 95) * 1000:.0f} ms; statuses {statuses}"
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
        import redis

        redis.Redis.from_url(BENCH_ENV["CELERY_BROKER_URL"]).flushdb()


if __name__ == "__main__":
    main()
