"""Celery task events are on without `-E`: a worker started as README's "Workers and lanes" starts it sends
task-received, task-started and task-succeeded, and the publisher task-sent, which Flower and
`celery -A config events` read. Captured here as `celery events` does, with app.events.Receiver."""

import threading

import pytest
from django.conf import settings

from config.celery import app
from routing.dispatch import Lane, TaskName
from routing.models import Lead, LeadStatus
from tests.conftest import broker, queue_drained, wait_until
from tests.factories import LeadFactory
from tests.faults.conftest import processes  # noqa: F401  (services started and stopped by the test)
from tests.observability.production import celery

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]


class Events(threading.Thread):
    """Every event on the broker's event exchange while it runs, as dicts (`type`, `hostname`, `uuid`, …)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.seen: list[dict] = []
        self.receiver = None

    def run(self):
        with app.connection_for_read() as connection:
            self.receiver = app.events.Receiver(connection, handlers={"*": self.seen.append})
            self.receiver.capture(limit=None, timeout=None, wakeup=False)

    def of(self, kind: str, **fields) -> list[dict]:
        return [e for e in list(self.seen) if e["type"] == kind and all(e.get(k) == v for k, v in fields.items())]

    def stop(self):
        if self.receiver is not None:
            self.receiver.should_stop = True
        self.join(timeout=10)


def test_a_worker_started_as_the_readme_says_sends_task_events(processes):  # noqa: F811
    broker().flushdb()
    assert app.conf.worker_send_task_events and app.conf.task_send_sent_event
    events = Events()
    events.start()
    try:
        live = settings.HANDOFF_QUEUES["live"]
        # README: `.venv/bin/celery -A config worker -Q handoff-live --concurrency=1 -n live@%h` (no -E).
        worker = celery(
            processes, "live", "worker", "-Q", live, "--concurrency=1", "-n", "live-events@%h", ready="ready."
        )
        # The worker's heartbeat reaching us means the receiver is listening: from here nothing is missed.
        wait_until(
            lambda: [e for e in events.of("worker-heartbeat") if e["hostname"].startswith("live-events@")],
            timeout=30,
            what="a heartbeat event from the worker",
        )
        lead = LeadFactory()

        sent = app.send_task(TaskName.ROUTE_LEADS, args=([lead.pk],), kwargs={"lane": Lane.LIVE.value}, queue=live)

        wait_until(lambda: events.of("task-succeeded", uuid=sent.id), what="the task-succeeded event")
        assert Lead.objects.get(pk=lead.pk).status != LeadStatus.RECEIVED
        for kind in ("task-sent", "task-received", "task-started"):
            assert events.of(kind, uuid=sent.id), (
                f"no {kind} event for the task; saw {[e['type'] for e in events.seen]}"
            )
        (received,) = events.of("task-received", uuid=sent.id)
        assert received["name"] == TaskName.ROUTE_LEADS and received["hostname"].startswith("live-events@")
        wait_until(queue_drained, what="the worker to finish")
        assert worker.running()
    finally:
        events.stop()
