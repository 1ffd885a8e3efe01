"""The production processes as README runs them: gunicorn with the shipped config/gunicorn.py, Celery workers
and beat, started through tests.faults.helpers.Processes (stopped at teardown, output kept in a log file)."""

import sys

from tests.conftest import service_env, wait_until
from tests.faults.helpers import Processes, Service


def shipped_gunicorn(processes: Processes, **env) -> tuple[str, Service]:
    """`gunicorn -c config/gunicorn.py config.wsgi`, bound to a free loopback port; its base URL and service."""
    return processes.gunicorn(["-c", "config/gunicorn.py", "config.wsgi"], **env)


def celery(processes: Processes, name: str, *arguments: str, ready: str, **env) -> Service:
    """`celery -A config <arguments>` (e.g. `beat`, `worker -Q …`), waited for until `ready` is in its output."""
    command = [sys.executable, "-m", "celery", "-A", "config", *arguments]
    service = Service(name, command, env=service_env(**env), log=processes.directory / f"{name}.log")
    processes.started.append(service.start())
    wait_until(lambda: ready in service.output() or not service.running(), timeout=60, what=f"{name} to start")
    assert service.running(), service.tail()
    return service
