"""Run the console with demo data: web server, a real Celery worker and beat, and a trickle of leads."""

import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from audit.db_roles import as_owner
from routing.demo.leads import synthetic_lead
from routing.management.commands.seed_demo import DEMO_LOGIN, DEMO_OWNER


def demo_workers(celery: list[str]) -> dict[str, list[str]]:
    """The demo's Celery workers (README: Workers and lanes). Routing has its own processes; calls out of the
    product (enrichment, deliveries) have theirs, so a dead CRM never slows a lead's routing; and replays one
    of their own, one at a time, so rule owners' replays never hold up the enrichment new leads wait for."""
    lanes = settings.HANDOFF_QUEUES
    worker = [*celery, "worker", "--loglevel=INFO"]
    routing = ",".join([lanes["live"], lanes["bulk"], settings.CELERY_TASK_DEFAULT_QUEUE])
    edges = ",".join([lanes["enrichment"], lanes["deliveries"]])
    return {
        "routing worker": [*worker, "--concurrency=2", "-n", "routing@%h", "-Q", routing],
        "edges worker": [*worker, "--concurrency=2", "-n", "edges@%h", "-Q", edges],
        "replays worker": [*worker, "--concurrency=1", "-n", "replays@%h", "-Q", lanes["replays"]],
    }


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--every", type=float, default=3.0, help="Seconds between synthetic leads (0: none).")

    def handle(self, *args, port, every, **options):
        _refuse_a_busy_port(port)  # before anything starts: otherwise a buried error, then a long wait
        with as_owner(connection):  # the schema's owner migrates when DATABASE_MIGRATE_URL names one
            call_command("migrate", verbosity=0)
        out = io.StringIO()
        call_command("seed_demo", stdout=out)
        token = out.getvalue().strip().splitlines()[-1]
        base = f"http://127.0.0.1:{port}"
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        celery = [sys.executable, "-m", "celery", "-A", "config"]
        # The web server, worker and beat connect as the application; the owner's URL is not theirs to hold.
        env = {**{k: v for k, v in os.environ.items() if k != "DATABASE_MIGRATE_URL"}, "PYTHONUNBUFFERED": "1"}
        # Targets or providers added to the demo are local fakes; production allows public addresses only.
        env.setdefault("HANDOFF_OUTBOUND_ALLOW", "127.0.0.0/8,::1/128")
        env.setdefault("HANDOFF_CONSOLE_URL", base)  # the links in its notification emails lead to this demo
        commands = {
            **demo_workers(celery),
            "Celery beat": [*celery, "beat", "--loglevel=INFO"],
            "web server": [*manage, "runserver", "--noreload", f"127.0.0.1:{port}"],
        }
        children = {name: subprocess.Popen(command, env=env) for name, command in commands.items()}
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            _wait_for(f"{base}/healthz", server=children["web server"])
            username, password = DEMO_LOGIN
            self.stdout.write(
                self.style.SUCCESS(
                    f"\nHandoff console: {base}/console/\n"
                    f"Logins: {username} / {password} (admin: everything), "
                    f"{DEMO_OWNER} / {password} (a rule owner: My rules, sign-off)\n"
                    f"Admin: {base}/admin/   API docs: {base}/api/docs/   Ctrl-C stops everything.\n"
                    f"Post your own leads as the demo source: curl -X POST {base}/api/v1/leads/ "
                    f'-H "Authorization: Token {token}" -H "Content-Type: application/json" '
                    # An engaged MQL at a 200-person company: the demo's "MQL to AE" rule routes it to an AE.
                    f'-d \'{{"lead_id": "try-1", "email": "jo@acme.example", "lifecycle_stage": "mql", '
                    f'"engagement_score": 80, "company_size": 200}}\'\n'
                )
            )
            if every > 0:
                threading.Thread(target=_trickle, args=(base, token, every, stop), daemon=True).start()
            while not stop.is_set():
                stop.wait(1)
                for name, child in children.items():
                    # As a supervisor would: Celery's worker exits when Redis goes away mid-task (a kombu bug).
                    if child.poll() is not None and not stop.is_set():
                        self.stderr.write(f"The {name} exited ({child.returncode}); starting it again.")
                        children[name] = subprocess.Popen(commands[name], env=env)
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            for child in children.values():
                child.terminate()
            for child in children.values():
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()


def _refuse_a_busy_port(port: int) -> None:
    with socket.socket() as probe:
        # As runserver binds: a port left in TIME_WAIT by a demo just stopped is free, a listening one is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise CommandError(
                f"Port {port} is in use ({exc.strerror}): stop what is listening there, or pick another port, "
                f"e.g. make demo PORT={port + 1}."
            ) from None


def _wait_for(url: str, *, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise CommandError(f"The web server exited ({server.returncode}) before {url} answered; see above.")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def _trickle(base: str, token: str, every: float, stop: threading.Event) -> None:
    """Post synthetic leads through the real intake API, as a capture system would."""
    rng = random.Random()
    while not stop.wait(rng.uniform(0.5, 1.5) * every):
        request = urllib.request.Request(
            f"{base}/api/v1/leads/",
            data=json.dumps(synthetic_lead(rng)).encode(),
            method="POST",
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        )
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except (urllib.error.URLError, OSError) as exc:
            print(f"demo trickle: {exc}", file=sys.stderr)
