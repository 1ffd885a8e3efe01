"""lead_route: rules in priority order, assignment, exceptions for what cannot be routed, and the audit trail."""

import datetime as dt

import pytest
import time_machine
from django.conf import settings
from django.test import override_settings

from audit.models import AuditAction, AuditEvent
from exceptions.models import ExceptionItem, ExceptionReason, ExceptionStatus
from routing.models import LeadStatus, Queue, RuleStage
from routing.services import lead_fail_routing, lead_route, leads_claim_stuck
from tests.factories import LeadFactory, MembershipFactory, QueueFactory, RuleFactory, case, promote_live

pytestmark = pytest.mark.django_db

SEED = {
    "all": [
        {"field": "lifecycle_stage", "op": "eq", "value": "mql"},
        {"field": "engagement_score", "op": "gt", "value": 50},
        {"field": "company_size", "op": "gt", "value": 50},
    ]
}


def decisions(lead):
    return list(AuditEvent.objects.filter(lead=lead, action=AuditAction.ROUTING_DECISION))


@pytest.fixture
def ae_queue():
    queue = QueueFactory(name="Account Executives")
    MembershipFactory(queue=queue, user__username="alan")
    return queue


def test_seed_rule_assigns_mql_to_ae_with_audit(ae_queue, rule_owner):
    rule = RuleFactory(name="MQL to AE", condition=SEED, queue=ae_queue, owner=rule_owner, priority=10)
    lead = LeadFactory(lifecycle_stage="mql", engagement_score=60, company_size=51)

    lead_route(lead_id=lead.id)

    lead.refresh_from_db()
    assert lead.status == LeadStatus.ASSIGNED
    assert (lead.queue, lead.assignee.username, lead.rule, lead.rule_version) == (ae_queue, "alan", rule, 1)
    assert lead.assigned_at is not None
    (event,) = decisions(lead)
    assert (event.rule, event.rule_version, event.rule_owner, event.outcome) == (rule, 1, rule_owner, "assigned")
    assert event.actor is None and event.actor_label == "engine"
    match = event.inputs.pop("account_match")  # no accounts here: the match says so (tests/accounts)
    assert match["account_id"] is None and match["method"] == "none"
    assert event.inputs.pop("identity")["same_person"] == []
    assert event.inputs == {"lifecycle_stage": "mql", "engagement_score": 60.0, "company_size": 51}
    assert event.data["queue"] == "Account Executives" and event.data["assignee"] == "alan"


def test_rules_are_evaluated_by_ascending_priority_and_first_match_wins(ae_queue):
    late = RuleFactory(priority=20, condition={"field": "email", "op": "exists"}, queue=ae_queue)
    early = RuleFactory(priority=10, condition={"field": "email", "op": "exists"}, queue=ae_queue)
    lead = LeadFactory()
    lead_route(lead_id=lead.id)
    lead.refresh_from_db()
    assert lead.rule == early and lead.rule != late


@pytest.mark.parametrize("stage", [RuleStage.DRAFT, RuleStage.STAGING])
def test_only_production_rules_route(ae_queue, stage):
    RuleFactory(stage=stage, condition={"field": "email", "op": "exists"}, queue=ae_queue)
    lead = LeadFactory()
    lead_route(lead_id=lead.id)
    lead.refresh_from_db()
    assert lead.status == LeadStatus.EXCEPTION
    assert lead.exceptions.get().reason == ExceptionReason.NO_MATCHING_RULE


def test_a_change_to_the_rules_is_picked_up_by_the_next_lead(ae_queue):
    rule = RuleFactory(condition={"field": "country", "op": "eq", "value": "FR"}, queue=ae_queue)
    first = LeadFactory(country="GB")
    lead_route(lead_id=first.id)
    promote_live(
        rule,
        condition={"field": "country", "op": "eq", "value": "GB"},
        test_cases=[case("GB", ae_queue.name, country="GB")],
    )
    second = LeadFactory(country="GB")
    lead_route(lead_id=second.id)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == LeadStatus.EXCEPTION
    assert (second.status, second.rule_version) == (LeadStatus.ASSIGNED, 2)


def test_no_contact_info_opens_missing_contact_before_any_rule(ae_queue):
    RuleFactory(condition={"field": "lead_id", "op": "exists"}, queue=ae_queue)
    lead = LeadFactory(email=None, phone=None)
    lead_route(lead_id=lead.id)
    lead.refresh_from_db()
    assert lead.status == LeadStatus.EXCEPTION
    item = lead.exceptions.get()
    assert (item.reason, item.status, item.queue.name) == (
        ExceptionReason.MISSING_CONTACT,
        ExceptionStatus.OPEN,
        "Triage",
    )
    (event,) = decisions(lead)
    event.inputs.pop("account_match"), event.inputs.pop("identity")
    assert (event.rule, event.outcome, event.inputs) == (None, "missing_contact", {"email": None, "phone": None})


def test_phone_alone_is_enough_contact(ae_queue):
    RuleFactory(condition={"field": "lead_id", "op": "exists"}, queue=ae_queue)
    lead = LeadFactory(email=None, phone="+44 20 7946 0000")
    lead_route(lead_id=lead.id)
    lead.refresh_from_db()
    assert lead.status == LeadStatus.ASSIGNED


def test_no_matching_rule_goes_to_triage_with_sla_due_times():
    Queue.objects.create(name="Triage", ack_sla_minutes=30, resolve_sla_minutes=240)
    RuleFactory(condition={"field": "country", "op": "eq", "value": "FR"})
    lead = LeadFactory(country="GB")
    lead_route(lead_id=lead.id)
    item = ExceptionItem.objects.get(lead=lead)
    assert item.reason == ExceptionReason.NO_MATCHING_RULE
    assert item.ack_due_at - item.opened_at == dt.timedelta(minutes=30)
    assert item.resolve_due_at - item.opened_at == dt.timedelta(minutes=240)
    (event,) = decisions(lead)
    assert {k: v for k, v in event.inputs.items() if k not in ("account_match", "identity")} == {"country": "GB"}
    assert AuditEvent.objects.filter(lead=lead, action=AuditAction.EXCEPTION_OPENED).count() == 1


@override_settings(HANDOFF={**__import__("django.conf").conf.settings.HANDOFF, "TRIAGE_QUEUE": "Night desk"})
def test_triage_queue_is_configurable():
    lead = LeadFactory(email=None)
    lead_route(lead_id=lead.id)
    assert ExceptionItem.objects.get(lead=lead).queue.name == "Night desk"


def test_routing_twice_assigns_once(ae_queue):
    RuleFactory(condition={"field": "email", "op": "exists"}, queue=ae_queue)
    MembershipFactory(queue=ae_queue, user__username="bea")
    lead = LeadFactory()
    lead_route(lead_id=lead.id)
    lead.refresh_from_db()
    first_assignee = lead.assignee
    lead_route(lead_id=lead.id)
    lead.refresh_from_db()
    assert lead.assignee == first_assignee
    assert len(decisions(lead)) == 1


def test_routing_an_exception_lead_again_opens_nothing_new():
    lead = LeadFactory(email=None, phone=None)
    lead_route(lead_id=lead.id)
    lead_route(lead_id=lead.id)
    assert ExceptionItem.objects.filter(lead=lead).count() == 1


def test_unknown_lead_id_is_ignored():
    assert lead_route(lead_id=987654) is None


def test_failed_routing_becomes_a_routing_failed_exception():
    lead = LeadFactory()
    lead_fail_routing(lead_id=lead.id, error="ValueError: boom")
    lead.refresh_from_db()
    assert lead.status == LeadStatus.EXCEPTION
    item = lead.exceptions.get()
    assert item.reason == ExceptionReason.ROUTING_FAILED and "boom" in item.detail


class TestClaimStuck:
    def test_claims_only_received_leads_past_the_grace_period(self):
        now = dt.datetime.now(dt.UTC)
        stuck = LeadFactory(received_at=now - dt.timedelta(minutes=10))
        LeadFactory(received_at=now)  # fresh: its task is probably still in the queue
        LeadFactory(received_at=now - dt.timedelta(minutes=10), status=LeadStatus.ASSIGNED)
        assert leads_claim_stuck() == [stuck.id]
        stuck.refresh_from_db()
        assert stuck.requeue_count == 1

    def test_each_requeue_doubles_the_wait_before_the_next(self):
        grace = dt.timedelta(seconds=settings.HANDOFF["REQUEUE_GRACE_SECONDS"])
        start = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
        LeadFactory(received_at=start - grace - dt.timedelta(seconds=1))
        claims, at = [], start
        with time_machine.travel(at, tick=False) as clock:
            for _ in range(40):  # one sweep every 30 s for 20 minutes
                claims.append(len(leads_claim_stuck()))
                clock.shift(30)
        # due at 0, then 2, 4, 8 graces later (grace 120 s: 4, 8, 16 minutes on): 3 claims in 20 minutes
        seconds = [i * 30 for i, n in enumerate(claims) if n]
        assert seconds == [0, 240, 720]
