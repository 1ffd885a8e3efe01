"""Fixtures for driving the API in-process through its WSGI application, as schemathesis does."""

from dataclasses import dataclass, field

import pytest
from django.contrib.auth.models import Group
from django.core import signals
from django.db import close_old_connections
from django.utils import timezone

from exceptions.incidents import Cause
from exceptions.models import ExceptionIncident, ExceptionReason, Resolution
from exceptions.services import exception_acknowledge, exception_open, exception_resolve
from routing.experiments.models import ExperimentStatus
from routing.governance.models import ReplayRun
from routing.governance.replay import replay_execute, replay_request
from routing.models import LeadStatus, RuleStage
from tests.factories import (
    DeliveryTargetFactory,
    ExperimentFactory,
    LeadFactory,
    MembershipFactory,
    OutboxEventFactory,
    QueueFactory,
    RuleFactory,
    SourceFactory,
    UserFactory,
    open_exception,
    personal_token,
)


@pytest.fixture
def in_process_requests(db):
    """Requests through the WSGI handler share the test's connection and transaction. The handler closes
    "old" connections when a request starts and ends, which would end that transaction mid-test; Django's
    own test client unhooks the same signal for the same reason."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@dataclass
class ApiWorld:
    """Credentials and objects a fuzzed request can reach: generated ids are mapped onto these."""

    source_token: str
    person_token: str
    ids: dict[str, list[int]] = field(default_factory=dict)


@pytest.fixture
def api_world(in_process_requests) -> ApiWorld:
    source = SourceFactory(name="fuzz-form")
    person = UserFactory(username="fuzz-owner", is_staff=True)
    person.groups.add(Group.objects.get_or_create(name="rule_owners")[0], Group.objects.get_or_create(name="ops")[0])
    sales = QueueFactory(name="Sales")
    MembershipFactory(queue=sales, user=person)
    rules = [
        RuleFactory(owner=person, queue=sales, stage=RuleStage.PRODUCTION),
        RuleFactory(owner=person, queue=sales, stage=RuleStage.STAGING),
        RuleFactory(owner=person, queue=sales, stage=RuleStage.DRAFT),
    ]
    leads = [
        LeadFactory(origin=source),
        LeadFactory(origin=source, status=LeadStatus.ASSIGNED, queue=sales, assignee=person),
    ]
    items = [
        open_exception(lead=LeadFactory(origin=source, status=LeadStatus.EXCEPTION)),
        open_exception(lead=LeadFactory(origin=source, status=LeadStatus.EXCEPTION, email=None, phone=None)),
        open_exception(lead=LeadFactory(origin=source, status=LeadStatus.EXCEPTION)),
        open_exception(lead=LeadFactory(origin=source, status=LeadStatus.EXCEPTION)),
    ]
    # Items in every state, so actions meet their conflicts too: open, open, acknowledged, resolved.
    exception_acknowledge(item=items[2], by=person)
    exception_resolve(item=exception_acknowledge(item=items[3], by=person), by=person, resolution=Resolution.SPAM)
    # An incident (three delivery failures of one cause), so incident operations act on a real one.
    crm_down = Cause("delivery_failed:0:HTTP 5xx", "Deliveries to CRM fail: HTTP 5xx")
    for _ in range(3):
        lead = LeadFactory(origin=source, status=LeadStatus.EXCEPTION)
        exception_open(lead=lead, reason=ExceptionReason.DELIVERY_FAILED, cause=crm_down)
    # Experiments on the staging rule: one decided, one running (so a start meets its 409, a stop its 200).
    experiments = [
        ExperimentFactory(rule=rules[1], status=ExperimentStatus.KEPT),
        ExperimentFactory(rule=rules[1]),
    ]
    queued = ReplayRun.objects.create(requested_by=person, requested_at=timezone.now(), limit=10)
    finished = replay_execute(run_id=replay_request(by=person).pk)  # so a `result` is rendered too
    replays = [queued, finished]
    # Deliveries of the assigned lead: one to a target that confirms by callback (its ack is signed), one not.
    deliveries = [
        OutboxEventFactory(lead=leads[1], target=DeliveryTargetFactory(name="Async CRM", confirms_by_callback=True)),
        OutboxEventFactory(lead=leads[1], target=DeliveryTargetFactory(name="Sync CRM")),
    ]
    return ApiWorld(
        source_token=source.token,
        person_token=personal_token(person),
        ids={
            "leads": [lead.pk for lead in leads + [item.lead for item in items]],
            "rules": [rule.pk for rule in rules],
            "exceptions": [item.pk for item in items],
            "replays": [run.pk for run in replays],
            "experiments": [experiment.pk for experiment in experiments],
            "incidents": list(ExceptionIncident.objects.values_list("pk", flat=True)),
            "queues": [sales.pk],
            "deliveries": [event.pk for event in deliveries],
        },
    )
