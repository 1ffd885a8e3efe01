"""Faults in the middle of routing, with a real worker: a pool process killed, a rule corrupted in the
database. Every lead still ends assigned exactly once, or in front of a person. (The issue-7 scenarios,
each ending with a reconciliation check, are in tests/faults.)"""

import os
import signal
import subprocess

import pytest
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from exceptions.models import ExceptionReason
from routing.models import Lead, LeadStatus, Rule, RuleStage, RuleVersion
from routing.tasks import requeue_stuck_leads, route_leads
from tests.conftest import wait_until
from tests.factories import LeadFactory, MembershipFactory, QueueFactory, RuleFactory, UserFactory
from tests.faults.helpers import backends_waiting_for_a_lock, row_locked

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]


@pytest.fixture
def routable_lead(rule_owner):
    queue = QueueFactory(name="AE")
    MembershipFactory(queue=queue, user=UserFactory(username="alan"))
    RuleFactory(condition={"field": "email", "op": "exists"}, queue=queue, owner=rule_owner)
    return LeadFactory()


def decisions(lead_id):
    return AuditEvent.objects.filter(lead_id=lead_id, action=AuditAction.ROUTING_DECISION).count()


def test_a_worker_process_killed_mid_routing_is_redelivered_and_assigns_once(celery_worker, routable_lead):
    with row_locked("routing_lead", routable_lead.id) as holder:
        route_leads.delay([routable_lead.id])
        wait_until(lambda: backends_waiting_for_a_lock(holder), what="the worker to block on the lead")
        children = subprocess.run(["pgrep", "-P", str(celery_worker.pid)], capture_output=True, text=True)
        for pid in map(int, children.stdout.split()):
            os.kill(pid, signal.SIGKILL)  # the pool process dies mid-task, its transaction never commits
        # acks_late + reject_on_worker_lost: the message goes back to the queue and a new process takes it
        wait_until(lambda: len(backends_waiting_for_a_lock(holder)) >= 2, what="the task to be delivered again")
    wait_until(
        lambda: Lead.objects.filter(pk=routable_lead.id, status=LeadStatus.ASSIGNED).exists(),
        what="the redelivered task to assign the lead",
    )
    assert decisions(routable_lead.id) == 1


def test_a_corrupted_production_rule_sends_leads_to_a_person_not_limbo(celery_worker, rule_owner):
    queue = QueueFactory(name="AE")
    rule = RuleFactory(name="broken", owner=rule_owner, priority=1, stage=RuleStage.DRAFT, queue=queue)
    # written around the validation and the gates, as a bad migration or a hand-edit in the database would
    (version,) = RuleVersion.objects.bulk_create(
        [
            RuleVersion(
                rule=rule,
                number=1,
                **{f: getattr(rule, f) for f in Rule.CONTRACT_FIELDS if f != "condition"},
                condition={"field": "email", "op": "matches", "value": "("},
                created_at=timezone.now(),
            )
        ]
    )
    Rule.objects.filter(pk=rule.pk).update(
        production_version=version, stage=RuleStage.PRODUCTION, updated_at=timezone.now()
    )
    lead = LeadFactory()
    route_leads.delay([lead.id])
    wait_until(
        lambda: Lead.objects.filter(pk=lead.id, status=LeadStatus.EXCEPTION).exists(),
        what="the lead to land in an exception queue",
    )
    item = Lead.objects.get(pk=lead.id).exceptions.get()
    assert item.reason == ExceptionReason.ROUTING_FAILED
    assert "missing )" in item.detail


def test_the_sweeper_holds_back_while_the_routing_queue_is_long(celery_worker, settings):
    settings.HANDOFF = {**settings.HANDOFF, "REQUEUE_GRACE_SECONDS": 0, "REQUEUE_MAX_BACKLOG": -1}
    LeadFactory()
    assert requeue_stuck_leads() == 0
    settings.HANDOFF = {**settings.HANDOFF, "REQUEUE_MAX_BACKLOG": 10_000}
    assert requeue_stuck_leads() == 1
