"""Incidents: items one cause produced gather into one incident (a CRM outage, a source no rule matches), swept,
escalated and notified once; acknowledging, assigning or resolving it does so for its items; a replay that
delivers everything resolves it by itself.

Delivery failures are made the way production makes them: outbox rows attempted against a real local HTTP
server that refuses them (tests/integrations/fake_target.py)."""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from exceptions.incident_actions import IncidentConflict, incident_acknowledge, incident_assign, incident_resolve
from exceptions.incidents import error_class
from exceptions.models import (
    ExceptionIncident,
    ExceptionItem,
    ExceptionReason,
    ExceptionStatus,
    Notification,
    NotificationKind,
    Resolution,
    SlaEvent,
)
from exceptions.services import InvalidAction, exception_reopen, exception_resolve
from exceptions.sweep import sla_sweep
from routing.integrations.deadletter import dead_letters_replay
from routing.integrations.delivery import event_deliver
from routing.integrations.models import OutboxEvent, OutboxStatus
from routing.models import Queue
from routing.services import leads_route
from tests.factories import (
    DeliveryTargetFactory,
    LeadFactory,
    MembershipFactory,
    OutboxEventFactory,
    QueueFactory,
    RuleFactory,
    SourceFactory,
    UserFactory,
)
from tests.integrations.conftest import fake_target  # noqa: F401  (the real local HTTP server)
from tests.integrations.fake_target import status

pytestmark = pytest.mark.django_db


@pytest.fixture
def triage():
    return QueueFactory(
        name="Triage",
        ack_sla_minutes=30,
        resolve_sla_minutes=240,
        escalation_interval_minutes=30,
        owner=UserFactory(username="owner", email="owner@example.com"),
        escalation_contact=UserFactory(username="boss", email="boss@example.com"),
    )


@pytest.fixture
def crm(fake_target):  # noqa: F811
    return DeliveryTargetFactory(name="CRM", url=fake_target.url, max_attempts=1)


def dead_letter(fake_target, target, answer=None):  # noqa: F811
    """One lead's event to `target`, refused by the server (422 unless told): dead-lettered, an item opened."""
    fake_target.script.append(answer or status(422))
    event = OutboxEventFactory(target=target, lead=LeadFactory())
    event = event_deliver(event_id=event.pk)
    assert event.status == OutboxStatus.DEAD, event
    return event


def outage(fake_target, target, count, answer=None):  # noqa: F811
    return [dead_letter(fake_target, target, answer) for _ in range(count)]


def delivery_items(target=None):
    return ExceptionItem.objects.filter(reason=ExceptionReason.DELIVERY_FAILED).order_by("id")


# --- gathering --------------------------------------------------------------------------------------------


def test_a_crm_outage_is_one_incident_holding_every_item_it_produced(fake_target, crm, triage):  # noqa: F811
    outage(fake_target, crm, 5)

    (incident,) = ExceptionIncident.objects.all()
    assert incident.title == "Deliveries to CRM fail: HTTP 4xx"
    assert incident.cause == f"delivery_failed:{crm.pk}:HTTP 4xx"
    assert incident.queue == triage and incident.status == ExceptionStatus.OPEN
    assert set(delivery_items().values_list("incident", flat=True)) == {incident.pk}
    first = delivery_items().first()
    assert incident.opened_at == first.opened_at  # one clock, from the first failure
    assert incident.ack_due_at == first.ack_due_at
    opened = AuditEvent.objects.get(action=AuditAction.ITEM_INCIDENT_OPENED)
    assert opened.incident == incident and opened.data["cause"] == incident.cause
    (note,) = Notification.objects.filter(incident=incident)
    assert note.kind == NotificationKind.INCIDENT and note.recipient is None  # the queue's members
    assert note.item_count == 3 and len(note.item_ids) == 3  # the items it opened with


def test_two_failures_are_two_items_and_no_incident(fake_target, crm, triage):  # noqa: F811
    outage(fake_target, crm, 2)
    assert delivery_items().count() == 2
    assert not ExceptionIncident.objects.exists()
    assert not delivery_items().filter(incident__isnull=False).exists()


def test_failures_spread_wider_than_the_window_do_not_gather(fake_target, crm, triage):  # noqa: F811
    start = timezone.now()
    for minutes in (0, 40, 80):
        with time_machine.travel(start + dt.timedelta(minutes=minutes), tick=False):
            dead_letter(fake_target, crm)
    assert not ExceptionIncident.objects.exists()


def test_another_target_or_another_error_class_is_another_incident(fake_target, crm, triage):  # noqa: F811
    mailer = DeliveryTargetFactory(name="Mailer", url=fake_target.url, max_attempts=1)
    outage(fake_target, crm, 3)
    outage(fake_target, mailer, 3)
    outage(fake_target, crm, 3, status(503))

    titles = sorted(ExceptionIncident.objects.values_list("title", flat=True))
    assert titles == [
        "Deliveries to CRM fail: HTTP 4xx",
        "Deliveries to CRM fail: HTTP 5xx",
        "Deliveries to Mailer fail: HTTP 4xx",
    ]
    for incident in ExceptionIncident.objects.all():
        assert incident.items.count() == 3


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ("HTTP 502 Bad Gateway (answer of 12 bytes not shown)", "HTTP 5xx"),
        ("HTTP 503 Service Unavailable (answer of 0 bytes not shown)", "HTTP 5xx"),
        ("timeout after 5 s (ReadTimeout)", "timeout"),
        ("ConnectError: [Errno 111] Connection refused", "ConnectError"),
        ("refused: 10.0.0.1 is a private address", "refused"),
        ("crm.example does not resolve", "unreachable"),
    ],
)
def test_one_outage_is_one_error_class_whatever_status_it_answers(error, kind):
    assert error_class(error) == kind


def test_later_failures_join_the_open_incident(fake_target, crm, triage):  # noqa: F811
    outage(fake_target, crm, 3)
    incident = ExceptionIncident.objects.get()
    outage(fake_target, crm, 2)
    assert incident.items.count() == 5
    assert ExceptionIncident.objects.count() == 1
    assert Notification.objects.filter(incident=incident).count() == 1  # one "opened", not one per item


def test_leads_from_one_source_that_no_rule_matches_are_one_incident(triage):
    RuleFactory(condition={"field": "country", "op": "eq", "value": "FR"})
    form = SourceFactory(name="pricing-form")
    leads = [LeadFactory(origin=form, country="GB") for _ in range(4)]
    other = LeadFactory(country="GB")  # another source: not this incident

    leads_route(lead_ids=[lead.pk for lead in [*leads, other]])

    incident = ExceptionIncident.objects.get()
    assert incident.title == "No production rule matches leads from pricing-form"
    assert set(incident.items.values_list("lead", flat=True)) == {lead.pk for lead in leads}
    assert ExceptionItem.objects.get(lead=other).incident is None


# --- one clock, one escalation, one notification stream ------------------------------------------------


def test_the_sweep_escalates_the_incident_once_and_leaves_its_items_alone(fake_target, crm, triage):  # noqa: F811
    outage(fake_target, crm, 4)
    incident = ExceptionIncident.objects.get()
    lone = LeadFactory()
    from exceptions.services import exception_open

    single = exception_open(lead=lone, reason=ExceptionReason.MISSING_CONTACT, queue=triage)

    later = incident.ack_due_at + dt.timedelta(minutes=1)
    with time_machine.travel(later, tick=False):
        sla_sweep()
        sla_sweep()  # nothing new the second time

    incident.refresh_from_db()
    assert incident.ack_breached_at is not None and incident.escalation_level == 1
    items = delivery_items()
    assert not items.filter(ack_breached_at__isnull=False).exists()
    assert not items.filter(escalation_level__gt=0).exists()
    assert not SlaEvent.objects.filter(item__in=items, kind__in=["breached", "escalated"]).exists()
    single.refresh_from_db()
    assert single.escalation_level == 1  # an item outside incidents is swept as before
    (escalation,) = Notification.objects.filter(incident=incident, kind=NotificationKind.ESCALATION_1)
    assert escalation.recipient.username == "owner" and escalation.item_count == 4
    assert AuditEvent.objects.filter(incident=incident, action=AuditAction.ITEM_INCIDENT_ESCALATED).count() == 1

    with time_machine.travel(later + dt.timedelta(minutes=31), tick=False):
        sla_sweep()
    incident.refresh_from_db()
    assert incident.escalation_level == 2
    (level2,) = Notification.objects.filter(incident=incident, kind=NotificationKind.ESCALATION_2)
    assert level2.recipient.username == "boss"


def test_an_acknowledged_incident_does_not_breach_its_acknowledge_clock(fake_target, crm, triage, ops_person):  # noqa: F811
    outage(fake_target, crm, 3)
    incident = ExceptionIncident.objects.get()
    incident_acknowledge(incident=incident, by=ops_person)
    with time_machine.travel(incident.ack_due_at + dt.timedelta(minutes=5), tick=False):
        sla_sweep()
    incident.refresh_from_db()
    assert incident.ack_breached_at is None and incident.escalation_level == 0


# --- actions fanned out to the items -----------------------------------------------------------------------


def test_acknowledging_the_incident_acknowledges_its_open_items(fake_target, crm, triage, ops_person):  # noqa: F811
    outage(fake_target, crm, 3)
    incident = ExceptionIncident.objects.get()

    fresh, outcome = incident_acknowledge(incident=incident, by=ops_person)

    assert fresh.status == ExceptionStatus.ACKNOWLEDGED and fresh.assignee == ops_person
    assert len(outcome.done) == 3
    assert set(delivery_items().values_list("status", flat=True)) == {ExceptionStatus.ACKNOWLEDGED}
    assert AuditEvent.objects.filter(action=AuditAction.EXCEPTION_ACKNOWLEDGED).count() == 3
    with pytest.raises(IncidentConflict, match="already acknowledged by Olga Ops"):
        incident_acknowledge(incident=incident, by=ops_person)


def test_assigning_the_incident_assigns_its_unresolved_items(fake_target, crm, triage, ops_person):  # noqa: F811
    outage(fake_target, crm, 3)
    incident = ExceptionIncident.objects.get()
    exception_resolve(item=delivery_items().first(), by=ops_person, resolution=Resolution.FIXED_UPSTREAM)
    sam = UserFactory(username="sam")
    sam.groups.add(Group.objects.get_or_create(name="ops")[0])

    fresh, outcome = incident_assign(incident=incident, to=sam, by=ops_person)

    assert fresh.assignee == sam and len(outcome.done) == 2
    assert delivery_items().filter(assignee=sam).count() == 2


def test_resolving_the_incident_resolves_every_item_with_its_code_and_note(fake_target, crm, triage, ops_person):  # noqa: F811
    outage(fake_target, crm, 4)
    incident = ExceptionIncident.objects.get()

    fresh, outcome = incident_resolve(
        incident=incident, by=ops_person, resolution=Resolution.FIXED_UPSTREAM, note="CRM API key rotated"
    )

    assert fresh.status == ExceptionStatus.RESOLVED and fresh.resolution_note == "CRM API key rotated"
    assert len(outcome.done) == 4 and outcome.skipped == []
    for item in delivery_items():
        assert (item.status, item.resolution, item.resolved_by) == ("resolved", "fixed_upstream", ops_person)
        assert item.resolution_note == f"CRM API key rotated (incident #{incident.pk})"
    assert AuditEvent.objects.filter(action=AuditAction.EXCEPTION_RESOLVED).count() == 4
    assert AuditEvent.objects.filter(incident=incident, action=AuditAction.ITEM_INCIDENT_RESOLVED).count() == 1
    with pytest.raises(IncidentConflict, match="already resolved"):
        incident_resolve(incident=incident, by=ops_person, resolution=Resolution.FIXED_UPSTREAM, note="again")


def test_resolving_an_incident_needs_a_code_and_a_note_and_changes_nothing_without(
    fake_target,  # noqa: F811
    crm,
    triage,
    ops_person,
):
    outage(fake_target, crm, 3)
    incident = ExceptionIncident.objects.get()
    with pytest.raises(InvalidAction, match="Give a note"):
        incident_resolve(incident=incident, by=ops_person, resolution=Resolution.FIXED_UPSTREAM, note="  ")
    with pytest.raises(InvalidAction, match="Choose a resolution code"):
        incident_resolve(incident=incident, by=ops_person, resolution="", note="fixed")
    incident.refresh_from_db()
    assert incident.status == ExceptionStatus.OPEN
    assert not delivery_items().filter(status=ExceptionStatus.RESOLVED).exists()


def test_a_replay_that_delivers_everything_resolves_the_items_and_the_incident(
    fake_target,  # noqa: F811
    crm,
    triage,
    ops_person,
):
    events = outage(fake_target, crm, 3)
    incident = ExceptionIncident.objects.get()

    dead_letters_replay(event_ids=[e.pk for e in events], by=ops_person)
    for event in events:  # the CRM is back: the script is empty, so it answers 200
        event_deliver(event_id=event.pk)

    replayed = OutboxEvent.objects.filter(pk__in=[e.pk for e in events])
    assert set(replayed.values_list("status", flat=True)) == {OutboxStatus.DELIVERED}
    assert set(delivery_items().values_list("resolution", flat=True)) == {Resolution.FIXED_UPSTREAM}
    incident.refresh_from_db()
    assert (incident.status, incident.resolution, incident.resolved_by) == ("resolved", "fixed_upstream", None)
    settled = AuditEvent.objects.get(incident=incident, action=AuditAction.ITEM_INCIDENT_RESOLVED)
    assert settled.actor is None and settled.data["why"] == "its last item was resolved"


def test_a_reopened_item_leaves_its_incident_and_runs_its_own_clock(fake_target, crm, triage, ops_person):  # noqa: F811
    outage(fake_target, crm, 3)
    incident = ExceptionIncident.objects.get()
    incident_resolve(incident=incident, by=ops_person, resolution=Resolution.FIXED_UPSTREAM, note="fixed")
    item = delivery_items().first()

    reopened = exception_reopen(item=item, by=ops_person)

    assert reopened.incident is None and reopened.status == ExceptionStatus.OPEN
    with time_machine.travel(reopened.ack_due_at + dt.timedelta(minutes=1), tick=False):
        sla_sweep()
    reopened.refresh_from_db()
    assert reopened.ack_breached_at is not None  # swept as an item again


def test_a_new_outage_after_the_incident_is_resolved_is_a_new_incident(fake_target, crm, triage, ops_person):  # noqa: F811
    outage(fake_target, crm, 3)
    first = ExceptionIncident.objects.get()
    incident_resolve(incident=first, by=ops_person, resolution=Resolution.FIXED_UPSTREAM, note="fixed")
    outage(fake_target, crm, 3)
    second = ExceptionIncident.objects.exclude(pk=first.pk).get()
    assert second.items.count() == 3 and first.items.count() == 3


def test_gathering_costs_a_few_queries_however_many_items_a_batch_opens(triage):
    RuleFactory(condition={"field": "country", "op": "eq", "value": "FR"})
    form = SourceFactory(name="pricing-form")

    def route(count):
        leads = [LeadFactory(origin=form, country="GB") for _ in range(count)]
        with CaptureQueriesContext(connection) as queries:
            leads_route(lead_ids=[lead.pk for lead in leads])
        return len(queries)

    route(3)  # opens the incident
    assert route(3) == route(30)  # joining it costs the same for 3 items or 30
    assert Queue.objects.filter(name="Triage").count() == 1
    assert ExceptionIncident.objects.get().items.count() == 36


def test_membership_of_the_queue_sees_the_incident_notification(fake_target, crm, triage):  # noqa: F811
    member = MembershipFactory(queue=triage, user__username="mia").user
    outage(fake_target, crm, 3)
    from exceptions.selectors import notifications_for

    (note,) = notifications_for(member)
    assert note.incident is not None and note.kind == NotificationKind.INCIDENT


@pytest.mark.django_db(transaction=True)
def test_items_of_one_cause_opened_at_once_by_six_workers_are_one_incident_holding_all():
    import threading

    from django.db import transaction

    from exceptions.incidents import Cause
    from exceptions.services import exception_open

    triage = QueueFactory(name="Triage")
    leads = [LeadFactory() for _ in range(6)]
    cause = Cause("delivery_failed:9:timeout", "Deliveries to CRM fail: timeout")
    barrier = threading.Barrier(len(leads))

    def worker(lead):
        try:
            barrier.wait()
            with transaction.atomic():
                exception_open(lead=lead, reason=ExceptionReason.DELIVERY_FAILED, queue=triage, cause=cause)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(lead,)) for lead in leads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    (incident,) = ExceptionIncident.objects.all()
    assert incident.items.count() == 6
    assert AuditEvent.objects.filter(action=AuditAction.ITEM_INCIDENT_OPENED).count() == 1


def test_items_joining_an_acknowledged_incident_are_acknowledged_and_assigned_like_it(
    fake_target,  # noqa: F811
    crm,
    triage,
    ops_person,
):
    outage(fake_target, crm, 3)
    incident = ExceptionIncident.objects.get()
    incident_acknowledge(incident=incident, by=ops_person)

    outage(fake_target, crm, 2)

    late = delivery_items().order_by("-id")[:2]
    for item in late:
        assert (item.incident_id, item.status, item.assignee, item.acknowledged_by) == (
            incident.pk,
            ExceptionStatus.ACKNOWLEDGED,
            ops_person,
            ops_person,
        )
        assert item.due_at == item.resolve_due_at
        joined = AuditEvent.objects.get(exception=item, action=AuditAction.EXCEPTION_ACKNOWLEDGED)
        assert joined.actor is None and joined.data["why"] == f"joined incident #{incident.pk}, already acknowledged"
        assert SlaEvent.objects.filter(item=item, clock="ack", kind="fulfilled").count() == 1


def test_items_joining_an_assigned_open_incident_go_to_its_assignee(fake_target, crm, triage, ops_person):  # noqa: F811
    outage(fake_target, crm, 3)
    incident = ExceptionIncident.objects.get()
    incident_assign(incident=incident, to=ops_person, by=ops_person)
    outage(fake_target, crm, 1)
    late = delivery_items().order_by("-id").first()
    assert (late.status, late.assignee) == (ExceptionStatus.OPEN, ops_person)
