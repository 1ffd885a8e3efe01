"""Every line every production process writes is one JSON object: gunicorn with the shipped config (its
banner, access lines, a request that ends in a traceback), a Celery worker as README starts it (its start-up
banner and shutdown notice) and beat (without `--quiet`: its start-up prints), with DJANGO_DEBUG=0 and
LOG_FORMAT=json, through intake, routing and a delivery, and a stop. So README's `jq 'select(.lead_id == …)'`
reads the whole stream."""

import json

import httpx
import pytest

from routing.integrations.models import DeliveryAttempt
from routing.models import Lead, LeadStatus
from tests.conftest import broker, queue_drained, wait_until
from tests.factories import DeliveryTargetFactory, LeadPayloadFactory
from tests.faults.conftest import ae_rule, processes  # noqa: F401  (an assigning rule; services stopped after)
from tests.faults.helpers import post_lead
from tests.integrations.conftest import fake_target  # noqa: F401  (the CRM, a real local HTTP server)
from tests.observability.production import celery, shipped_gunicorn

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]

PRODUCTION = {"DJANGO_DEBUG": "0", "LOG_FORMAT": "json"}


def records(service) -> list[dict]:
    """Every line of the service's stdout and stderr, each parsed as a JSON object (a line that is not fails
    the test, naming the process and the line)."""
    parsed = []
    for number, line in enumerate(service.output().splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"{service.name} line {number} is not JSON: {line!r}")
        assert isinstance(record, dict), f"{service.name} line {number} is not an object: {line!r}"
        parsed.append(record)
    return parsed


def test_web_worker_and_beat_write_nothing_but_json_lines(processes, source, ae_rule, fake_target):  # noqa: F811
    broker().flushdb()
    DeliveryTargetFactory(name="CRM", url=fake_target.url, events=["lead.assigned"])
    base, web = shipped_gunicorn(processes, **PRODUCTION)
    worker = celery(processes, "worker", "worker", "--concurrency=2", "-n", "all@%h", ready="ready.", **PRODUCTION)
    schedule = str(processes.directory / "beat-schedule")
    beat = celery(processes, "beat", "beat", "--schedule", schedule, ready="beat: Starting", **PRODUCTION)

    answers = [post_lead(base, source.token, LeadPayloadFactory(lifecycle_stage="mql")) for _ in range(3)]
    assert [a.status_code for a in answers] == [202] * 3
    refused = httpx.get(f"{base}/console/", headers={"Host": "not-ours.example"}, timeout=10)  # Django: a traceback
    assert refused.status_code == 400
    wait_until(lambda: DeliveryAttempt.objects.count() >= 3, what="the three leads' deliveries")
    assert set(Lead.objects.values_list("status", flat=True)) == {LeadStatus.ASSIGNED}
    wait_until(queue_drained, what="the worker to finish")
    for service in (web, worker, beat):
        service.stop()  # SIGTERM, as a supervisor stops it: its shutdown lines are read too

    web_lines, worker_lines, beat_lines = records(web), records(worker), records(beat)

    assert any(line["message"].startswith("Starting gunicorn") for line in web_lines)
    posted = [line for line in web_lines if line["logger"] == "gunicorn.access" and line["method"] == "POST"]
    assert [(line["path"], line["status"]) for line in posted] == [("/api/v1/leads/", 202)] * 3
    assert all(isinstance(line["duration_ms"], float) and line["remote_addr"] == "127.0.0.1" for line in posted)
    (traceback,) = [line for line in web_lines if line["logger"] == "django.security.DisallowedHost"]
    assert traceback["exc_info"].startswith("Traceback (most recent call last):")
    first = Lead.objects.order_by("pk").first()
    intake = [line for line in web_lines if line["logger"] == "routing.api.views" and line["lead_pk"] == first.pk]
    assert [line["lead_id"] for line in intake] == [first.lead_id]  # the capture system's id, as the API has it

    (banner,) = [line for line in worker_lines if "banner" in line]
    assert banner["message"].startswith("Worker all@") and "[queues]" in banner["banner"]
    routed = [line for line in worker_lines if line["logger"] == "routing.tasks" and line.get("lead_pk") == first.pk]
    assert routed and routed[0]["lead_id"] == first.lead_id and routed[0]["task_id"]
    delivered = [line for line in worker_lines if line.get("event_id") and line.get("lead_pk") == first.pk]
    assert delivered and delivered[0]["lead_id"] == first.lead_id
    assert any(line["message"].endswith("Warm shutdown on SIGTERM.") for line in worker_lines)

    assert any(line["message"] == "beat: Starting..." for line in beat_lines)
