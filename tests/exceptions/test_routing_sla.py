"""The live routing SLA: a lead unassigned past its SLA opens a routing_sla_breached item saying where it is
stuck, a high-intent one escalates at once, and the item closes itself once the lead is assigned."""

import datetime as dt
import threading

import pytest
import time_machine
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from audit.models import AuditAction, AuditEvent
from exceptions.models import (
    AlertMessage,
    ExceptionItem,
    ExceptionReason,
    ExceptionStatus,
    Notification,
    NotificationKind,
    Resolution,
    SlaEvent,
)
from exceptions.routing_sla import ROUTING_SLA_CHUNK, routing_sla_sweep
from exceptions.services import exception_resolve
from routing.models import LeadStatus
from tests.conftest import broker
from tests.factories import (
    AlertChannelFactory,
    EnrichmentProviderFactory,
    LeadFactory,
    MembershipFactory,
    QueueFactory,
    RuleFactory,
    UserFactory,
    open_exception,
)

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 11, 18, 9, 0, tzinfo=dt.UTC)  # a Wednesday
REASON = ExceptionReason.ROUTING_SLA_BREACHED


def at(minutes):
    return T0 + dt.timedelta(minutes=minutes)


def received(minutes=0, **fields):
    return LeadFactory(received_at=at(minutes), occurred_at=at(minutes), **fields)


def sweep(minutes):
    with time_machine.travel(at(minutes), tick=False):
        return routing_sla_sweep()


def sla_items(**filters):
    return ExceptionItem.objects.filter(reason=REASON, **filters)


@pytest.fixture
def triage():
    return QueueFactory(
        name="Triage",
        owner=UserFactory(username="triage-owner", email="owner@example.com"),
        escalation_contact=UserFactory(username="boss", email="boss@example.com"),
    )


def test_a_lead_received_six_minutes_ago_with_no_decision_opens_one_item(triage):
    lead = received(0, intent_score=10)
    report = sweep(6)
    assert (report.opened, report.escalated) == (1, 0)
    (item,) = sla_items()
    assert (item.lead, item.queue, item.status, item.opened_at) == (lead, triage, ExceptionStatus.OPEN, at(6))
    assert item.detail.startswith(
        "Not assigned 6 min after it was received (2026-11-18 09:00 UTC), past the 5-minute routing SLO"
    )
    assert "Stuck received: no routing worker has it." in item.detail
    assert list(SlaEvent.objects.filter(item=item).values_list("clock", "kind")) == [
        ("ack", "started"),
        ("resolve", "started"),
    ]
    event = AuditEvent.objects.get(action=AuditAction.EXCEPTION_OPENED, exception=item)
    assert (event.outcome, event.data["stuck"], event.data["sla_from"], event.data["sla_minutes"]) == (
        REASON,
        "received",
        "routing SLO",
        5,
    )
    assert Notification.objects.count() == 0


def test_a_lead_within_the_slo_opens_nothing(triage):
    received(0)
    assert sweep(4).opened == 0
    assert not sla_items().exists()


@pytest.mark.parametrize("minutes, opened", [(5, 0), (10, 1)])
def test_the_global_slo_comes_from_the_setting(settings, triage, minutes, opened):
    settings.HANDOFF = {**settings.HANDOFF, "ROUTING_SLO_MINUTES": 10}
    received(0)
    assert sweep(minutes).opened == opened


def test_a_lead_waiting_on_enrichment_says_so(triage):
    EnrichmentProviderFactory()
    received(0, enrichment_status=None, enrichment_attempts=2, enrich_after=at(7))
    sweep(6)
    (item,) = sla_items()
    assert "Stuck enriching: 2 attempt(s) so far, next at 2026-11-18 09:07 UTC." in item.detail


def test_a_lead_behind_a_broker_backlog_says_so(triage, settings):
    """Routing tasks queued in the live lane (the broker's real depth, as /metrics reads it) and no decision."""
    lane = settings.HANDOFF_QUEUES["live"]
    client = broker()
    client.rpush(lane, "queued-1", "queued-2", "queued-3")
    try:
        received(0)
        sweep(6)
    finally:
        client.delete(lane)
    (item,) = sla_items()
    assert "Stuck in the broker backlog: 3 routing task(s) queued in the lanes." in item.detail
    assert AuditEvent.objects.get(exception=item).data["stuck"] == "broker_backlog"


def test_a_rule_that_decided_applies_its_own_sla_and_queue(triage):
    """A lead its rule decided but which waits on the same person's open item (held): the rule's 15 minutes,
    not the 5-minute SLO, and the rule's queue."""
    sales = QueueFactory(name="Sales", escalation_contact=UserFactory(username="sales-boss"))
    rule = RuleFactory(queue=sales, sla_minutes=15)
    first = open_exception(queue=triage)
    lead = received(0, status=LeadStatus.EXCEPTION, rule=rule, rule_version=1, queue=sales, routed_at=at(0))
    first.held_leads.add(lead)
    assert sweep(14).opened == 0
    assert sweep(15).opened == 1
    (item,) = sla_items()
    assert item.queue == sales
    assert f"past the 15-minute SLA of rule {rule.name} (v1)" in item.detail
    assert f"Held since 2026-11-18 09:00 UTC: it waits on item #{first.pk} of the same person." in item.detail
    event = AuditEvent.objects.get(action=AuditAction.EXCEPTION_OPENED, exception=item)
    assert (event.rule_id, event.rule_version, event.data["stuck"], event.data["sla_from"]) == (
        rule.pk,
        1,
        "held",
        "rule",
    )


def test_a_lead_with_its_own_open_item_is_left_to_that_item(triage):
    open_exception(queue=triage, lead=received(0, status=LeadStatus.EXCEPTION))
    assert sweep(30).opened == 0


def test_a_high_intent_lead_escalates_at_once_to_the_escalation_contact(triage):
    received(0, intent_score=95)
    received(1, intent_score=99)
    report = sweep(7)
    assert (report.opened, report.escalated, report.unreached) == (2, 2, 0)
    assert set(sla_items().values_list("escalation_level", "escalated_at", "escalation_problem")) == {(2, at(7), "")}
    assert SlaEvent.objects.filter(kind="escalated", data__level=2).count() == 2
    # one notification to the contact for the queue and the sweep, listing both items
    (note,) = Notification.objects.all()
    assert (note.kind, note.recipient.username, note.item_count) == (NotificationKind.ESCALATION_2, "boss", 2)
    assert sorted(note.item_ids) == sorted(sla_items().values_list("pk", flat=True))


def test_a_high_intent_lead_with_nobody_to_escalate_to_says_so_on_the_item():
    QueueFactory(name="Triage")  # as auto-created: no owner, no escalation contact
    received(0, intent_score=99)
    report = sweep(6)
    assert (report.opened, report.escalated, report.unreached) == (1, 0, 1)
    (item,) = sla_items()
    assert item.escalation_problem == (
        "Level 2 escalation reached nobody: queue Triage has no active escalation contact or owner."
    )
    assert SlaEvent.objects.filter(item=item, kind="unreached").exists()
    assert not Notification.objects.exists()


def test_a_deactivated_escalation_contact_falls_back_to_the_active_owner(triage):
    triage.escalation_contact.is_active = False
    triage.escalation_contact.save()
    received(0, intent_score=99)
    assert sweep(6).escalated == 1
    assert list(Notification.objects.values_list("recipient__username", flat=True)) == ["triage-owner"]


def test_the_queues_alert_channel_is_told_of_the_item_and_of_its_closing(triage):
    channel = AlertChannelFactory(queue=triage)
    lead = received(0)
    sweep(6)
    item = sla_items().get()
    assert list(AlertMessage.objects.filter(channel=channel).values_list("item", "action")) == [(item.pk, "trigger")]
    lead.status, lead.assignee, lead.assigned_at = LeadStatus.ASSIGNED, UserFactory(), at(7)
    lead.save()
    sweep(8)
    assert list(AlertMessage.objects.filter(channel=channel).order_by("id").values_list("action", flat=True)) == [
        "trigger",
        "resolve",
    ]


def test_assignment_closes_the_item_at_the_assignment_time(triage):
    lead = received(0)
    sweep(6)
    (item,) = sla_items()
    owner = UserFactory(username="rep")
    lead.status, lead.assignee, lead.queue, lead.assigned_at = LeadStatus.ASSIGNED, owner, triage, at(8)
    lead.save()
    report = sweep(9)
    assert report.closed == 1
    item.refresh_from_db()
    assert (item.status, item.resolution, item.resolved_at, item.resolved_by) == (
        ExceptionStatus.RESOLVED,
        Resolution.REROUTED,
        at(8),
        None,
    )
    assert list(SlaEvent.objects.filter(item=item, at=at(8)).values_list("clock", "kind", "data")) == [
        ("ack", "fulfilled", {"within_sla": True}),
        ("resolve", "fulfilled", {"within_sla": True}),
    ]
    assert AuditEvent.objects.filter(action=AuditAction.EXCEPTION_RESOLVED, exception=item).count() == 1
    assert sweep(10).closed == 0  # once
    assert sla_items(status=ExceptionStatus.OPEN).count() == 0


def test_routing_the_lead_closes_its_item(triage):
    """Through the real routing path: the lead routes once a rule matches, the next sweep closes the item."""
    from routing.services import lead_route

    sales = QueueFactory(name="Sales")
    MembershipFactory(queue=sales, user=UserFactory(username="rep"))
    lead = received(0, lifecycle_stage="mql")
    sweep(6)
    RuleFactory(queue=sales)
    with time_machine.travel(at(7), tick=False):
        assert lead_route(lead_id=lead.pk).status == LeadStatus.ASSIGNED
    assert sweep(8).closed == 1
    assert sla_items().get().resolved_at == at(7)


def test_a_lead_that_gets_its_own_item_hands_the_routing_sla_item_over_to_it(triage):
    """Routed at last but matching no rule: its no_matching_rule item's clocks take over from the SLA item's."""
    from routing.services import lead_route

    lead = received(0, lifecycle_stage="customer")
    sweep(6)
    with time_machine.travel(at(7), tick=False):
        assert lead_route(lead_id=lead.pk).status == LeadStatus.EXCEPTION
    own = ExceptionItem.objects.get(lead=lead, reason=ExceptionReason.NO_MATCHING_RULE)

    assert sweep(8).closed == 1
    item = sla_items().get()
    assert (item.status, item.resolution, item.resolved_at) == (ExceptionStatus.RESOLVED, Resolution.DUPLICATE, at(7))
    assert f"#{own.pk}" in item.resolution_note
    event = AuditEvent.objects.get(action=AuditAction.EXCEPTION_RESOLVED, exception=item)
    assert event.data["resolution"] == Resolution.DUPLICATE
    assert ExceptionItem.objects.filter(lead=lead).exclude(status=ExceptionStatus.RESOLVED).get() == own
    assert sweep(9).opened == 0  # its own item's clocks run: no new SLA item


def test_a_held_lead_keeps_its_routing_sla_item(triage):
    """Held behind the same person's item, with none of its own: it still waits, so its SLA item stays."""
    lead = received(0, status=LeadStatus.EXCEPTION)
    holder = open_exception(lead=received(-1), queue=triage)
    holder.held_leads.add(lead)
    sweep(6)
    assert sla_items(lead=lead).count() == 1
    assert sweep(7).closed == 0


def test_a_second_sweep_opens_no_duplicate(triage):
    received(0, intent_score=99)
    sweep(6)
    again = sweep(7)
    assert (again.opened, again.escalated) == (0, 0)
    assert sla_items().count() == 1 and Notification.objects.count() == 1


def test_a_lead_still_waiting_after_a_person_resolved_its_item_gets_a_new_one(triage):
    lead = received(0)
    sweep(6)
    exception_resolve(item=sla_items().get(), by=UserFactory(), resolution=Resolution.FIXED_UPSTREAM)
    assert sweep(7).opened == 1
    assert sla_items(lead=lead).count() == 2


def test_the_sweep_runs_a_constant_number_of_queries(triage):
    def queries(leads: int, minutes: int) -> int:
        for n in range(leads):
            received(minutes - 6, intent_score=99 if n % 2 else 10)
        with time_machine.travel(at(minutes), tick=False), CaptureQueriesContext(connection) as captured:
            assert routing_sla_sweep().opened == leads
        return len(captured.captured_queries)

    assert queries(10, 10) == queries(100, 20)


def test_more_than_a_chunk_is_opened_over_several_statements(triage, monkeypatch):
    monkeypatch.setattr("exceptions.routing_sla.ROUTING_SLA_CHUNK", 2)
    for _ in range(5):
        received(0)
    report = sweep(6)
    assert (report.opened, sla_items().count()) == (5, 5)
    assert ROUTING_SLA_CHUNK == 10_000  # the module's own value is untouched outside the test


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_open_each_item_once():
    """A duplicate beat tick: two sweeps on two connections, started together, write one item per lead."""
    QueueFactory(name="Triage", escalation_contact=UserFactory(username="boss"))
    for n in range(50):
        received(0, intent_score=99 if n % 2 else 10)
    barrier = threading.Barrier(2)
    reports, errors = [], []

    def run():
        try:
            barrier.wait()
            with time_machine.travel(at(6), tick=False):
                reports.append(routing_sla_sweep())
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(r.opened for r in reports) == 50
    assert sla_items().count() == 50
    assert SlaEvent.objects.filter(kind="started").count() == 100
    assert AuditEvent.objects.filter(action=AuditAction.EXCEPTION_OPENED, outcome=REASON).count() == 50
    assert sum(n.item_count for n in Notification.objects.all()) == 25
