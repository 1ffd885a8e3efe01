"""Redis stopped while leads are posted. The intake answers 202 all the same (the committed lead row is the
source of truth; a publish that fails is logged and left to the sweeper), and once Redis is back the sweeper
`requeue_stuck_leads` publishes again whatever never reached the broker or was lost with it: every lead
answered 202 is routed, none twice.

The sweeper runs as a beat tick does: `requeue_stuck_leads` published to the broker and run by the worker
(with a 1 s grace instead of 120 s). It is published by the test once Redis is back rather than by a beat
process on a timer, because a sweep that happened to be running at the instant Redis stops would kill the
worker (a Celery 5.7.0 bug, see the second test), making the first scenario a coin toss."""

import re

import pytest

from config.celery import app
from routing.models import Lead, LeadStatus
from routing.tasks import requeue_stuck_leads
from tests.conftest import wait_until
from tests.factories import LeadPayloadFactory
from tests.faults.helpers import (
    assert_nothing_lost,
    backends_waiting_for_a_lock,
    broker_idle,
    post_lead,
    row_locked,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]

SWEEPER = {"HANDOFF_REQUEUE_GRACE_SECONDS": "1"}  # a lead still `received` 1 s after intake is published again


@pytest.fixture
def stack(processes, source, ae_rule):
    """A private redis-server, and gunicorn and a Celery worker that use it as their broker."""
    redis_server = processes.redis()
    worker = processes.worker(broker_url=redis_server.url, **SWEEPER)
    web = processes.web(broker_url=redis_server.url)
    return redis_server, worker, web


class Intake:
    """Posts leads as the capture system does and remembers every id answered 202."""

    def __init__(self, web, source):
        self.web, self.token, self.accepted = web, source.token, []

    def post(self, n: int) -> list[int]:
        ids = []
        for payload in LeadPayloadFactory.build_batch(n):
            response = post_lead(self.web, self.token, payload)
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        self.accepted += ids
        return ids


def sweep(broker_url: str) -> None:
    """One tick of the beat's `requeue-stuck-leads` entry: the task published to the broker the worker reads."""
    with app.connection_for_write(broker_url) as connection:
        requeue_stuck_leads.apply_async(connection=connection)


def connections(worker, redis_server) -> int:
    return sum(
        "Connected to redis://" in line and f"@127.0.0.1:{redis_server.port}/0" in line
        for line in worker.output().splitlines()
    )


def received(ids) -> int:
    return Lead.objects.filter(pk__in=ids, status=LeadStatus.RECEIVED).count()


def leads_given_up_on(processes) -> int:
    """How many leads the web server's publisher has logged as not queued (it leaves them to the sweeper)."""
    (web_server,) = [service for service in processes.started if getattr(service, "name", None) == "gunicorn"]
    return sum(int(n) for n in re.findall(r"Could not queue routing for (\d+) leads", web_server.output()))


def test_every_lead_answered_202_while_redis_is_stopped_is_routed_once_after_it_returns(stack, source, processes):
    redis_server, worker, web = stack
    intake = Intake(web, source)
    before = intake.post(5)
    wait_until(lambda: received(before) == 0 and broker_idle(redis_server.client), what="the first leads to route")

    redis_server.stop()  # no persistence: it comes back empty
    during = intake.post(5)
    assert received(during) == 5  # committed and answered, but nothing can carry them to a worker
    # The intake publishes from a background thread: keep Redis down until it has given up on all five.
    wait_until(lambda: leads_given_up_on(processes) == 5, what="the web server to give up publishing")

    redis_server.start()  # same port
    wait_until(
        lambda: connections(worker, redis_server) >= 2,
        timeout=20,
        what="the worker to reconnect to the restarted Redis",
    )
    after = intake.post(3)  # the web server publishes again, and the worker routes what it is sent
    wait_until(lambda: received(after) == 0, what="the leads posted after the outage to route")

    sweep(redis_server.url)

    wait_until(lambda: received(intake.accepted) == 0, what="the sweeper's re-published leads to route")
    # The intake's publishes failed while Redis was down: only the sweeper can have published these.
    assert Lead.objects.filter(pk__in=during, requeue_count__gt=0).count() == 5
    assert_nothing_lost(intake.accepted, broker_client=redis_server.client)


def test_a_lead_being_routed_when_redis_stops_is_routed_once_with_every_lead_posted_in_the_outage(
    stack, source, ae_rule, processes
):
    """Redis stops while the worker is in the middle of a task. With Celery/kombu 5.7.0 and a prefork pool of
    two or more processes (the default here) the worker node then exits: "Unrecoverable error: AttributeError:
    'NoneType' object has no attribute 'hostname'", raised while it closes the broken connection and tries to
    hand back its unacknowledged message. So a second worker is started, as a process supervisor would. The
    lead mid-task is finished and committed by the first worker; the leads posted during the outage are left
    to the sweeper; each is routed once."""
    redis_server, _, web = stack
    intake = Intake(web, source)
    with row_locked("routing_queue", ae_rule.queue_id) as holder:  # the worker blocks choosing an assignee
        (in_flight,) = intake.post(1)
        wait_until(lambda: backends_waiting_for_a_lock(holder), what="the worker to block mid-routing")
        redis_server.stop()
        during = intake.post(4)
    # The lock is released: the interrupted task finishes its lead, though it cannot acknowledge the message.
    wait_until(lambda: received([in_flight]) == 0, what="the lead that was mid-routing to be committed")
    assert received(during) == 4

    redis_server.start()
    processes.worker("second-worker", broker_url=redis_server.url, **SWEEPER)
    sweep(redis_server.url)

    wait_until(lambda: received(intake.accepted) == 0, what="the sweeper's re-published leads to route")
    assert_nothing_lost(intake.accepted, broker_client=redis_server.client)
