"""Shared fixtures: personas, an API client per capture source, and a real Celery worker process."""

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from audit.db_roles import as_owner
from tests.factories import SourceFactory, UserFactory

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def django_db_setup(
    request,
    django_test_environment,
    django_db_blocker,
    django_db_keepdb,
    django_db_createdb,
    django_db_modify_db_settings,
):
    """pytest-django's, with two roles when DATABASE_MIGRATE_URL is set (docs/security.md, 4): the owner creates
    and migrates the test database (migrate's post_migrate handler grants the application its share), then
    every test, and every worker and server a test starts, connects as the application role. Flushes between
    transactional tests go through the owner (audit/management/commands/flush.py)."""
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    keepdb = django_db_keepdb and not django_db_createdb
    verbosity = request.config.option.verbose
    with django_db_blocker.unblock(), as_owner(connection):
        config = setup_databases(verbosity=verbosity, interactive=False, keepdb=keepdb)
    yield
    if not keepdb:
        with django_db_blocker.unblock(), as_owner(connection):
            teardown_databases(config, verbosity=verbosity)


@pytest.fixture(autouse=True)
def no_token_failures_seen(monkeypatch):
    """Token authentication reads the addresses with failed token sign-ins at most once a second per process
    (config/signin.py); start each test with that read done and empty, so query counts do not depend on the
    clock. A failed token in the test reads them again, as in production."""
    monkeypatch.setattr("config.signin._token_suspects", (float("inf"), frozenset()))


@pytest.fixture
def source(db):
    return SourceFactory(name="web-form")


@pytest.fixture
def source_client(source):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {source.token}")
    client.source = source
    return client


@pytest.fixture
def ops_person(db):
    user = UserFactory(username="olga", first_name="Olga", last_name="Ops", is_staff=True)
    user.groups.add(Group.objects.get_or_create(name="ops")[0])
    return user


@pytest.fixture
def rule_owner(db):
    user = UserFactory(username="rowan", first_name="Rowan", last_name="Owner")
    user.groups.add(Group.objects.get_or_create(name="rule_owners")[0])
    return user


@pytest.fixture
def outsider(db):
    return UserFactory(username="otto", first_name="Otto", last_name="Outsider")


def broker() -> redis.Redis:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def wait_until(predicate, *, timeout=30.0, interval=0.05, what="condition"):
    """Poll until predicate() is truthy; fail naming what never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def project_queues() -> list[str]:
    """The default queue and every lane (settings.HANDOFF_QUEUES): what a worker started without -Q consumes."""
    return [settings.CELERY_TASK_DEFAULT_QUEUE, *settings.HANDOFF_QUEUES.values()]


def queue_drained() -> bool:
    """Nothing waiting and nothing in flight (acks_late keeps running tasks in `unacked`)."""
    client = broker()
    return all(client.llen(queue) == 0 for queue in project_queues()) and client.hlen("unacked") == 0


def database_url_for_tests() -> str:
    """The test database, as the tests connect to it: as the application role when there are two roles."""
    from django.db import connection

    db = connection.settings_dict
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    return f"postgres://{quote(db['USER'], safe='')}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def service_env(**overrides) -> dict:
    """Environment for a subprocess (worker, web server) that shares the test database and broker. It connects
    as the application does in production: DATABASE_URL alone, without the owner's DATABASE_MIGRATE_URL."""
    env = {
        **{key: value for key, value in os.environ.items() if key != "DATABASE_MIGRATE_URL"},
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": database_url_for_tests(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_TASK_DEFAULT_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
        "PYTHONUNBUFFERED": "1",
    }
    env.update(overrides)
    return env


@pytest.fixture(scope="module")
def celery_worker_process(django_db_setup, tmp_path_factory):
    """A real `celery -A config worker` process on the real Redis broker and the test database.

    Module-scoped: it runs only while its module's tests do, so it never routes leads that other
    modules' transactional tests are flushing."""
    client = broker()
    client.flushdb()  # the test broker database holds nothing but this run's tasks
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--loglevel=INFO",
                "--concurrency=2",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=service_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: "ready." in log.read_text() or process.poll() is not None,
            timeout=60,
            what="the Celery worker to start",
        )
        if process.poll() is not None:
            raise RuntimeError(f"Celery worker exited:\n{log.read_text()}")
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def celery_worker(celery_worker_process, transactional_db):
    """The worker, for one transactional test; waits for its tasks to finish before the tables are flushed."""
    yield celery_worker_process
    wait_until(queue_drained, what="the worker to finish this test's tasks")
