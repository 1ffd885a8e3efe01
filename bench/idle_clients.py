"""/healthz while clients hold connections open and send nothing: README's old `gunicorn config.wsgi` (one sync
worker) against the shipped `gunicorn -c config/gunicorn.py config.wsgi` (gthread, 2 workers × 8 threads).

For each server and each number of idle connections (opened first and held), five /healthz requests one after
another, each with a 15 s timeout (a Prometheus scrape gives up after 10 s): answered, median and slowest.
Uses the database and broker of the environment (DATABASE_URL, CELERY_BROKER_URL), production settings.

    DATABASE_URL=postgres://… python bench/idle_clients.py [--idle 0 1 10 40] [--json FILE]
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SERVERS = {
    "gunicorn config.wsgi (old README)": ["config.wsgi"],
    "gunicorn -c config/gunicorn.py config.wsgi": ["-c", "config/gunicorn.py", "config.wsgi"],
}
PROBES, TIMEOUT = 5, 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(arguments: list[str], idle: int) -> dict:
    port = free_port()
    env = {"DJANGO_SETTINGS_MODULE": "config.settings_test", **os.environ}
    command = [sys.executable, "-m", "gunicorn", *arguments, "-b", f"127.0.0.1:{port}"]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        for _ in range(300):
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(idle)]
        times, failed = [], 0
        for _ in range(PROBES):
            start = time.monotonic()
            try:
                ok = httpx.get(url, timeout=TIMEOUT).status_code == 200
            except httpx.TransportError:
                ok = False
            times.append(time.monotonic() - start)
            failed += not ok
        for sock in held:
            sock.close()
        return {
            "idle": idle,
            "answered": PROBES - failed,
            "median_s": round(statistics.median(times), 3),
            "max_s": round(max(times), 3),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # A tiny run (CI's `make bench-tiny`) only checks the script still works: no idle connection, so the old
    # server's 15 s stalls are not waited out.
    tiny = os.environ.get("HANDOFF_BENCH_TINY", "") not in ("", "0")
    parser.add_argument("--idle", type=int, nargs="+", default=[0] if tiny else [0, 1, 10, 40])
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    results = {}
    for name, arguments in SERVERS.items():
        results[name] = [measure(arguments, idle) for idle in options.idle]
        for row in results[name]:
            print(
                f"{name:45} idle={row['idle']:3}  answered {row['answered']}/{PROBES}  "
                f"median {row['median_s']:.3f} s  slowest {row['max_s']:.3f} s",
                flush=True,
            )
    if options.json:
        options.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
