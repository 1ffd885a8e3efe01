"""What the fault scenarios share: the real processes they start and kill (redis-server, Celery workers,
gunicorn), HTTP calls made the way a capture system or a logged-in person makes them, and the reconciliation
every scenario ends with (`assert_nothing_lost`)."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import psycopg
import redis
from django.db import connection

from audit.models import AuditAction, AuditEvent
from exceptions.models import ExceptionItem
from routing.models import Lead, LeadStatus, QueueMembership
from routing.reports.parity import parity_reconcile
from tests.conftest import ROOT, broker, project_queues, service_env, wait_until

PRIVATE_REDIS_PORTS = range(6391, 6400)  # set aside for this package's own redis-server processes


class Service:
    """A process started in its own session, so that it and its children (pool processes, gunicorn workers,
    an embedded beat) are signalled together, and nothing it forked outlives the test."""

    def __init__(self, name: str, command: list[str], *, env: dict, log: Path):
        self.name, self.command, self.env, self.log = name, command, env, log
        self.process: subprocess.Popen | None = None

    def start(self) -> "Service":
        with open(self.log, "a") as out:
            self.process = subprocess.Popen(
                self.command, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return f"--- last lines of {self.name} ({self.log}) ---\n" + "\n".join(self.output().splitlines()[-lines:])

    def signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole group at once: no shutdown handler runs, nothing is acked or handed back."""
        self.signal_group(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 20) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.signal_group(signal.SIGKILL)  # whatever of the group is still there (a hung child)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class PrivateRedis:
    """A redis-server of our own, with no persistence, that a test may stop and start again on the same port
    (the shared Redis on 6379 is never touched). Stopped, it forgets everything: queued and unacked messages."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = next((p for p in PRIVATE_REDIS_PORTS if port_is_free(p)), None)
        if self.port is None:
            raise RuntimeError(f"no free port for a private redis-server in {PRIVATE_REDIS_PORTS}")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis(port=self.port, socket_timeout=2)
        self.service: Service | None = None
        self.starts = 0

    def start(self) -> "PrivateRedis":
        self.starts += 1
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--daemonize", "no", "--dir", str(self.directory)]
        log = self.directory / "redis.log"
        self.service = Service(f"redis-server:{self.port}", command, env=dict(os.environ), log=log).start()
        wait_until(self._answers, timeout=10, what=f"redis-server to answer on port {self.port}")
        return self

    def _answers(self) -> bool:
        if not self.service.running():
            raise AssertionError(self.service.tail())
        try:
            return self.client.ping()
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        """SIGTERM: with no save points configured redis-server exits without writing anything."""
        if self.service is not None and self.service.running():
            self.service.stop(timeout=10)
        self.client.connection_pool.disconnect()


class Processes:
    """Starts a scenario's services and stops every one of them at teardown, whatever happened in between."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.started: list[Service | PrivateRedis] = []

    def _log(self, name: str) -> Path:
        return self.directory / f"{name}-{len(self.started)}.log"

    def redis(self) -> PrivateRedis:
        server = PrivateRedis(self.directory)
        self.started.append(server)
        return server.start()

    def worker(
        self,
        name: str = "worker",
        *,
        broker_url: str | None = None,
        beat: bool = False,
        queues: list[str] | None = None,
        concurrency: int = 2,
        **env,
    ) -> Service:
        """`celery -A config worker` (two pool processes, like production here) on every queue or on `queues`
        (README: Workers and lanes), optionally with the beat embedded (`-B`, with a schedule file of its own,
        never the shared var/celerybeat-schedule)."""
        command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel=INFO"]
        command += [f"--concurrency={concurrency}", "-n", f"{name}@%h"]
        if queues:
            command += ["-Q", ",".join(queues)]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        if beat:
            command += ["--beat", "--schedule", str(self.directory / f"{name}-beat-schedule")]
        if broker_url:
            env["CELERY_BROKER_URL"] = broker_url
        service = Service(name, command, env=service_env(**env), log=self._log(name))
        self.started.append(service.start())
        wait_until(
            lambda: "ready." in service.output() or not service.running(),
            timeout=60,
            what=f"the Celery worker {name} to start",
        )
        assert service.running(), service.tail()
        return service

    def web(self, *, broker_url: str | None = None, workers: int = 2, threads: int = 10, **env) -> str:
        """gunicorn serving the product; returns its base URL. Threaded workers, so concurrent requests are
        served concurrently, each thread with its own database connection."""
        if broker_url:
            env["CELERY_BROKER_URL"] = broker_url
        arguments = ["config.wsgi", "-w", str(workers), "-k", "gthread", "--threads", str(threads)]
        base, _ = self.gunicorn([*arguments, "--log-level", "warning"], **env)
        return base

    def gunicorn(self, arguments: list[str], **env) -> tuple[str, Service]:
        """`gunicorn <arguments>` bound to a free loopback port, waited for until /healthz answers; its base URL
        and service."""
        port = free_port()
        command = [sys.executable, "-m", "gunicorn", *arguments, "-b", f"127.0.0.1:{port}"]
        service = Service("gunicorn", command, env=service_env(**env), log=self._log("gunicorn"))
        self.started.append(service.start())
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert service.running(), service.tail()
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, timeout=30, what=f"gunicorn {' '.join(arguments)} to start")
        return base, service

    def tails(self) -> str:
        return "\n".join(s.tail() if isinstance(s, Service) else s.service.tail() for s in self.started)

    def stop_all(self) -> None:
        for service in reversed(self.started):
            service.stop()


# --- HTTP, as the product's clients make it ---------------------------------------------------------------


def post_lead(base: str, token: str, payload: dict) -> httpx.Response:
    return httpx.post(f"{base}/api/v1/leads/", json=payload, headers={"Authorization": f"Token {token}"}, timeout=15)


def log_in(base: str, username: str, password: str) -> dict[str, str]:
    """Sign in through the login page; returns the headers a browser would send with an API call from the
    console: the session and CSRF cookies, and the CSRF token. Cookies are passed by hand because the test
    settings mark them Secure and this is plain HTTP on loopback."""
    page = httpx.get(f"{base}/accounts/login/", timeout=10)
    csrf = page.cookies["csrftoken"]
    answer = httpx.post(
        f"{base}/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": csrf},
        headers={"Cookie": f"csrftoken={csrf}"},
        timeout=10,
    )
    assert answer.status_code == 302, f"login of {username} failed: {answer.status_code}"
    return {"Cookie": f"sessionid={answer.cookies['sessionid']}; csrftoken={csrf}", "X-CSRFToken": csrf}


# --- The database seen from another session ----------------------------------------------------------------


def raw_connection() -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], password=db["PASSWORD"] or None, dbname=db["NAME"]
    )


@contextlib.contextmanager
def row_locked(table: str, pk: int):
    """Hold a row lock from another session, so a worker that needs the row blocks right there, mid-task."""
    with raw_connection() as holder:
        holder.execute(f"SELECT id FROM {table} WHERE id = %s FOR UPDATE", [pk])
        try:
            yield holder
        finally:
            holder.rollback()


def backends_waiting_for_a_lock(holder: psycopg.Connection) -> list[int]:
    holder.execute("SELECT pg_stat_clear_snapshot()")  # statistics views are otherwise frozen per transaction
    rows = holder.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
        "AND pid <> pg_backend_pid()"
    ).fetchall()
    return [pid for (pid,) in rows]


# --- Reconciliation -------------------------------------------------------------------------------------------


def broker_idle(client: redis.Redis) -> bool:
    """Nothing waiting in the routing queue and nothing delivered but unacknowledged (acks_late keeps a running
    task, and a task held for a retry countdown, in `unacked` until it finishes)."""
    return all(client.llen(queue) == 0 for queue in project_queues()) and client.hlen("unacked") == 0


def assert_nothing_lost(accepted_ids, *, broker_client: redis.Redis | None = None) -> None:
    """The check every fault scenario ends with, from the database: the leads the intake accepted are exactly
    the leads stored, every one of them routed (assigned or in an exception), each decided once, assigned at
    most once; the product's own daily parity agrees; and the broker holds no work left over."""
    accepted = set(accepted_ids)
    client = broker_client or broker()
    wait_until(lambda: broker_idle(client), what="the routing queue and its unacked set to empty")

    stored = Lead.objects.all()  # a transactional test's database holds only this scenario's leads
    assert set(stored.values_list("id", flat=True)) == accepted, "the leads stored are not the leads accepted"
    waiting = list(stored.filter(status=LeadStatus.RECEIVED).values_list("id", flat=True))
    assert waiting == [], f"leads still `received` (lost on the way to routing): {waiting}"
    routed = stored.filter(status__in=[LeadStatus.ASSIGNED, LeadStatus.EXCEPTION]).count()
    assert routed == len(accepted), f"{len(accepted)} accepted, {routed} routed"

    # The product's reconciliation (the daily parity report), for each UTC day the leads arrived on.
    captured = 0
    for day in sorted({at.date() for at in stored.values_list("received_at", flat=True)}):
        report = parity_reconcile(day=day)
        assert not report.flagged and report.data["gaps"] == [], report.data
        assert report.data["stuck_leads"]["count"] == 0, report.data["stuck_leads"]
        for origin in report.data["origins"]:
            assert (origin["routed"], origin["waiting"]) == (origin["accepted"], 0), origin
            captured += origin["accepted"]
    assert captured == len(accepted), f"parity counted {captured} captured leads, the intake accepted {len(accepted)}"

    decisions = Counter(AuditEvent.objects.filter(action=AuditAction.ROUTING_DECISION).values_list("lead", flat=True))
    wrong = {lead_id: decisions[lead_id] for lead_id in accepted | set(decisions) if decisions[lead_id] != 1}
    assert wrong == {}, f"routing decisions per lead that are not exactly one: {wrong}"

    assigned = stored.filter(status=LeadStatus.ASSIGNED)
    assert not assigned.filter(assignee__isnull=True).exists()
    # Round robin hands each assignment one turn (+1 on the member's rotation pass; the scenarios' queues are
    # round robin with members always available), so a lead assigned twice would show as a turn too many.
    turns = sum(QueueMembership.objects.values_list("rotation_pass", flat=True))
    assert turns == assigned.count(), f"{turns:g} round-robin turns handed out for {assigned.count()} assigned leads"

    items = Counter(ExceptionItem.objects.values_list("lead", flat=True))
    in_exception = Counter(stored.filter(status=LeadStatus.EXCEPTION).values_list("id", flat=True))
    assert items == in_exception, "each lead in an exception has exactly one exception item, and no other lead has one"
