"""The routing path through a real Celery worker process and a real Redis broker."""

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter

import pytest
from django.conf import settings
from django.test import override_settings

from audit.models import AuditAction, AuditEvent
from routing.models import Lead, LeadStatus
from routing.tasks import requeue_stuck_leads, route_leads
from tests.conftest import ROOT, queue_drained, service_env, wait_until
from tests.factories import LeadFactory, LeadPayloadFactory, MembershipFactory, QueueFactory, RuleFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]

SEED = {
    "all": [
        {"field": "lifecycle_stage", "op": "eq", "value": "mql"},
        {"field": "engagement_score", "op": "gt", "value": 50},
        {"field": "company_size", "op": "gt", "value": 50},
    ]
}


@pytest.fixture
def ae_rule(rule_owner):
    queue = QueueFactory(name="Account Executives")
    for name in ("alan", "katherine"):
        MembershipFactory(queue=queue, user=UserFactory(username=name))
    return RuleFactory(name="MQL to AE", condition=SEED, queue=queue, owner=rule_owner, priority=10)


def post(client, url, payload):
    return client.post(url, data=json.dumps(payload), content_type="application/json")


def assigned(lead_id):
    return Lead.objects.filter(pk=lead_id, status=LeadStatus.ASSIGNED).exists()


def test_a_posted_lead_is_routed_by_the_worker(celery_worker, source_client, ae_rule):
    response = post(
        source_client,
        "/api/v1/leads/",
        LeadPayloadFactory(lifecycle_stage="mql", engagement_score=80, company_size=200),
    )
    assert response.status_code == 202
    lead_id = response.json()["id"]

    wait_until(lambda: assigned(lead_id), what="the worker to assign the lead")

    body = source_client.get(response.json()["url"]).json()
    assert body["status"] == "assigned" and body["queue"] == "Account Executives"
    assert body["assignee"] in {"alan", "katherine"} and body["assigned_at"]
    (decision,) = body["decisions"]
    assert decision | {"decided_at": None} == {
        "rule": "MQL to AE",
        "rule_version": 1,
        "outcome": "assigned",
        "decided_at": None,
        "decided_by": "engine",
        "queue": "Account Executives",
        "assignee": body["assignee"],
        "assigned_by": "queue",
        "note": "no open lead of the same person to follow, so the queue's strategy picked",
    }


def test_an_unroutable_lead_lands_in_an_exception_queue(celery_worker, source_client, ae_rule):
    response = post(source_client, "/api/v1/leads/", LeadPayloadFactory(lifecycle_stage="customer"))
    lead_id = response.json()["id"]
    wait_until(
        lambda: Lead.objects.filter(pk=lead_id, status=LeadStatus.EXCEPTION).exists(),
        what="the lead to land in an exception queue",
    )
    body = source_client.get(response.json()["url"]).json()
    assert [(e["reason"], e["status"]) for e in body["exceptions"]] == [("no_matching_rule", "open")]
    assert body["decisions"][0]["outcome"] == "no_matching_rule"


@override_settings(HANDOFF={**settings.HANDOFF, "ROUTE_CHUNK_SIZE": 4})
def test_two_worker_processes_keep_round_robin_exact(celery_worker, source_client, ae_rule):
    items = LeadPayloadFactory.build_batch(40, lifecycle_stage="mql", engagement_score=90, company_size=500)
    results = post(source_client, "/api/v1/leads/batch/", items).json()["results"]
    assert Counter(r["status"] for r in results) == {"accepted": 40}

    wait_until(lambda: Lead.objects.filter(status=LeadStatus.ASSIGNED).count() == 40, what="40 assignments")

    assert Counter(Lead.objects.values_list("assignee__username", flat=True)) == {"alan": 20, "katherine": 20}
    assert AuditEvent.objects.filter(action=AuditAction.ROUTING_DECISION).count() == 40


def test_a_redelivered_routing_task_assigns_once(celery_worker, ae_rule):
    lead = LeadFactory(lifecycle_stage="mql", engagement_score=90, company_size=500)
    for _ in range(3):  # what a broker redelivery or a sweeper re-queue looks like to the worker
        route_leads.delay([lead.id])

    wait_until(queue_drained, what="the worker to finish all three deliveries")

    lead.refresh_from_db()
    assert lead.status == LeadStatus.ASSIGNED
    assert AuditEvent.objects.filter(lead=lead, action=AuditAction.ROUTING_DECISION).count() == 1
    assert sum(m.rotation_pass for m in ae_rule.queue.memberships.all()) == 1.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def web_with_broker_down():
    """The intake served by gunicorn whose broker address has nothing listening: Redis is down for it."""
    port = free_port()
    env = service_env(CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "1",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def up():
        try:
            return urllib.request.urlopen(f"{base}/healthz", timeout=1).status == 200
        except OSError:
            return process.poll() is not None

    wait_until(up, timeout=30, what="gunicorn to start")
    assert process.poll() is None, process.stdout.read().decode()
    yield base
    process.terminate()
    process.wait(timeout=10)


@override_settings(HANDOFF={**settings.HANDOFF, "REQUEUE_GRACE_SECONDS": 0})
def test_a_lead_accepted_while_the_broker_is_down_is_routed_once_it_is_back(
    celery_worker, web_with_broker_down, source, ae_rule
):
    request = urllib.request.Request(
        f"{web_with_broker_down}/api/v1/leads/",
        method="POST",
        data=json.dumps(LeadPayloadFactory(lifecycle_stage="mql", engagement_score=90, company_size=500)).encode(),
        headers={"Authorization": f"Token {source.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        lead_id = json.loads(response.read())["id"]
    with pytest.raises(urllib.error.HTTPError) as unready:
        urllib.request.urlopen(f"{web_with_broker_down}/readyz", timeout=10)
    assert unready.value.code == 503
    checks = json.loads(unready.value.read())["checks"]
    assert checks == {"database": "ok", "broker": "error"}
    lead = Lead.objects.get(pk=lead_id)
    assert lead.status == LeadStatus.RECEIVED  # committed, though its routing task could not be published

    assert requeue_stuck_leads() == 1  # the beat task, run here against the working broker

    wait_until(lambda: assigned(lead_id), what="the re-queued lead to be assigned")
    assert AuditEvent.objects.filter(lead_id=lead_id, action=AuditAction.ROUTING_DECISION).count() == 1
