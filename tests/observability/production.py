"""The production processes as README runs them: gunicorn with the shipped config/gunicorn.py, Celery workers
and beat, started through tests.faults.helpers.Processes (stopped at teardown, output kept in a log file)."""

import sys

import httpx

from tests.conftest import service_env, wait_until
from tests.faults.helpers import Processes, Service, free_port


def shipped_gunicorn(processes: Processes, **env) -> tuple[str, Service]:
    """`gunicorn -c config/gunicorn.py config.wsgi`, bound to a free loopback port; its base URL and service."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi"]
    command += ["-b", f"127.0.0.1:{port}"]
    service = Service("gunicorn", command, env=service_env(**env), log=processes.directory / "gunicorn.log")
    processes.started.append(service.start())
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert service.running(), service.tail()
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(up, timeout=30, what="gunicorn (config/gunicorn.py) to start")
    return base, service


def celery(processes: Processes, name: str, *arguments: str, ready: str, **env) -> Service:
    """`celery -A config <arguments>` (e.g. `beat`, `worker -Q …`), waited for until `ready` is in its output."""
    command = [sys.executable, "-m", "celery", "-A", "config", *arguments]
    service = Service(name, command, env=service_env(**env), log=processes.directory / f"{name}.log")
    processes.started.append(service.start())
    wait_until(lambda: ready in service.output() or not service.running(), timeout=60, what=f"{name} to start")
    assert service.running(), service.tail()
    return service
