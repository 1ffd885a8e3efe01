"""A real Celery worker process logs through settings.LOGGING: JSON lines with the task id and the lead id."""

import json
import subprocess
import sys

import pytest

from routing.dispatch import routing_enqueue
from routing.models import Lead, LeadStatus
from tests.conftest import ROOT, broker, queue_drained, service_env, wait_until
from tests.factories import LeadFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]


@pytest.fixture
def worker_log(transactional_db, tmp_path):
    """A worker of its own, so the test can read everything it wrote."""
    broker().flushdb()
    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--concurrency=1", "--without-gossip"]
            + ["--without-mingle", "--without-heartbeat"],
            cwd=ROOT,
            env=service_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "ready." in log.read_text() or process.poll() is not None, timeout=60, what="the worker")
        assert process.poll() is None, log.read_text()
        yield log
        wait_until(queue_drained, what="the worker to finish")
    finally:
        process.terminate()
        process.wait(timeout=20)


def json_lines(log):
    """Complete JSON lines only: the worker may be half-way through writing the last one."""
    text = log.read_text()
    complete = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.startswith("{")]


def test_the_worker_writes_json_lines_with_the_task_and_lead_ids(worker_log):
    lead = LeadFactory()

    routing_enqueue([lead.id])
    wait_until(lambda: Lead.objects.get(pk=lead.pk).status != LeadStatus.RECEIVED, what="the lead to be routed")

    def routed_line():
        return next(
            (line for line in json_lines(worker_log) if line["message"].startswith(f"Lead {lead.id} routed")), None
        )

    routed = wait_until(routed_line, what="the routing log line")
    assert (routed["lead_pk"], routed["lead_id"]) == (lead.id, lead.lead_id)
    assert routed["logger"] == "routing.tasks"
    assert routed["task_id"]

    # Celery's own lines about that task come through the same formatter, with the same task id. Celery writes its
    # "succeeded" line after the task body returns, so it may still be on its way when the routing line is in.
    def celery_line_for_the_task():
        return any(
            line["logger"].startswith("celery") and line.get("task_id") == routed["task_id"]
            for line in json_lines(worker_log)
        )

    wait_until(celery_line_for_the_task, what="Celery's own line about the task")
    assert any(line["message"].endswith("ready.") for line in json_lines(worker_log))
