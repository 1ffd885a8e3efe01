"""Starting and stopping the servers a benchmark runs against: gunicorn and Celery worker nodes.

Each child gets its own session (process group), so stopping it also stops what it forked (gunicorn's
workers, Celery's pool child), and `Processes` stops everything it started however the benchmark ends.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from _setup import ROOT

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Processes:
    """The children a benchmark started; `stop_all` (or leaving the `with` block) ends every one of them."""

    def __init__(self, env: dict[str, str]):
        self.env = {**os.environ, **env}
        self.children: list[subprocess.Popen] = []
        self.roles: dict[int, str] = {}  # pid (= process group) → "gunicorn" or "celery"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop_all()

    def spawn(self, role: str, args: list[str], env: dict[str, str] | None = None, quiet: bool = False, nice: int = 0):
        """Start `python <args>` in its own session (at CPU priority `nice`); `quiet` drops its stdout (Celery's
        banner), never stderr."""
        child = subprocess.Popen(
            [*(["nice", "-n", str(nice)] if nice else []), sys.executable, *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdout=subprocess.DEVNULL if quiet else None,
            start_new_session=True,
        )
        self.children.append(child)
        self.roles[child.pid] = role
        return child

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by each role's processes, children included while alive."""
        used = dict.fromkeys(self.roles.values(), 0.0)
        for pgrp, seconds in _cpu_by_process_group().items():
            if pgrp in self.roles:
                used[self.roles[pgrp]] += seconds
        return used

    def gunicorn(
        self, port: int, workers: int = 2, app: str = "config.wsgi", env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        """gunicorn with sync workers on 127.0.0.1:`port`, serving `app`, once /healthz answers."""
        server = self.spawn(
            "gunicorn",
            ["-m", "gunicorn", app, "-b", f"127.0.0.1:{port}", "-w", str(workers), "--log-level", "warning"],
            env=env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {server.returncode}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
                return server
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not answer /healthz within 30 s")

    def celery_workers(self, app, count: int, queue: str, include: str, tag: str, env=None, nice: int = 0) -> list[str]:
        """`count` worker nodes, one pool process each (`--concurrency=1`), consuming `queue`; returns their
        node names once every one answers a ping. `env`: extra environment for the workers only; `nice`: their
        CPU priority."""
        names = [f"{tag}{i}@{socket.gethostname()}" for i in range(1, count + 1)]
        for name in names:
            self.spawn(
                "celery",
                ["-m", "celery", "-A", "config", "worker", "--concurrency=1", "-Q", queue, "-n", name]
                + ["-I", include, "--loglevel=WARNING"],
                env=env,
                quiet=True,
                nice=nice,
            )
        deadline = time.monotonic() + 60
        waiting = set(names)
        while waiting and time.monotonic() < deadline:
            if any(child.poll() is not None for child in self.children):
                raise RuntimeError("a Celery worker exited during start-up")
            for reply in app.control.ping(destination=list(waiting), timeout=0.5):
                waiting -= set(reply)
        if waiting:
            raise RuntimeError(f"Celery workers did not answer a ping within 60 s: {sorted(waiting)}")
        return names

    def stop_all(self, timeout: float = 15) -> None:
        """SIGTERM every child's process group (a warm shutdown for Celery), SIGKILL what is left after `timeout`."""
        for child in self.children:
            _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(child, signal.SIGKILL)  # also reaps a pool child its parent left behind
            child.wait()
        self.children.clear()
        self.roles.clear()


def _signal_group(child: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(child.pid, sig)  # start_new_session: the group id is the child's pid
    except ProcessLookupError:
        pass


def _cpu_by_process_group() -> dict[int, float]:
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pgrp = int(fields[2])
        used[pgrp] = used.get(pgrp, 0.0) + (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return used


class CpuMeter:
    """CPU time used by the benchmark's servers (gunicorn, Celery) over a `with` block, and the PostgreSQL
    sessions opened meanwhile (`sessions_opened`, from pg_stat_database: a backend that lives for one task is
    too short-lived to sample its CPU, but each one is a fork and a handshake)."""

    def __init__(self, processes: Processes, pg_sessions):
        self.processes, self.pg_sessions = processes, pg_sessions
        self.used: dict[str, float] = {}

    def __enter__(self):
        self.servers, self.sessions = self.processes.cpu_seconds(), self.pg_sessions()
        return self

    def __exit__(self, *exc):
        servers = self.processes.cpu_seconds()
        self.used = {role: servers[role] - self.servers.get(role, 0.0) for role in servers}
        self.sessions_opened = self.pg_sessions() - self.sessions
