"""An escalation with nobody to receive it (a queue without an active owner or escalation contact) is not a
silent "sent": the item carries the error and an UNREACHED event, no notification pretends to go out, the
checklist counts it, and the next escalation that lands clears it."""

import datetime as dt

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from exceptions.models import ExceptionIncident, ExceptionItem, Notification, SlaEvent, SlaEventKind
from exceptions.notifications import notifications_send_due
from exceptions.sweep import sla_sweep
from routing.reports.checklist import monday_checklist
from routing.reports.mail import checklist_text
from routing.services import leads_route
from tests.factories import LeadFactory, QueueFactory, RuleFactory, SourceFactory, UserFactory, open_exception

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 11, 18, 9, 0, tzinfo=dt.UTC)  # a Wednesday


def at(minutes):
    return T0 + dt.timedelta(minutes=minutes)


def opened(queue, minutes=0, **lead_fields):
    with time_machine.travel(at(minutes), tick=False):
        return open_exception(queue=queue, **lead_fields)


def sweep(minutes):
    with time_machine.travel(at(minutes), tick=False):
        return sla_sweep()


@pytest.fixture
def ownerless():
    return QueueFactory(name="Triage", ack_sla_minutes=30, escalation_interval_minutes=30)


@pytest.fixture
def ops_client(ops_person):
    client = Client()
    client.force_login(ops_person)
    return client


def test_a_level_one_escalation_to_a_queue_without_owner_is_an_error_on_the_item_not_a_notification(ownerless):
    item = opened(ownerless, intent_score=10)
    report = sweep(31)
    assert (report.escalated, report.unreached) == ({1: 1, 2: 0}, 1)
    item.refresh_from_db()
    assert item.escalation_level == 1
    assert item.escalation_problem == "Level 1 escalation reached nobody: queue Triage has no active owner."
    events = list(SlaEvent.objects.filter(item=item, at=at(31)).order_by("id").values_list("kind", "data"))
    assert events == [
        ("breached", {"by": "sweep"}),
        ("escalated", {"by": "sweep", "level": 1}),
        ("unreached", {"by": "sweep", "level": 1, "why": item.escalation_problem}),
    ]
    assert not Notification.objects.exists()  # nothing marked sent that reached nobody
    with time_machine.travel(at(32), tick=False):
        assert notifications_send_due() == 0
    assert mail.outbox == []


def test_a_deactivated_owner_and_contact_count_as_nobody(ownerless):
    ownerless.owner = UserFactory(username="gone", is_active=False)
    ownerless.escalation_contact = UserFactory(username="gone-too", is_active=False)
    ownerless.save()
    item = opened(ownerless, intent_score=95)  # high intent: straight to level 2
    assert sweep(31).unreached == 1
    item.refresh_from_db()
    assert item.escalation_problem == (
        "Level 2 escalation reached nobody: queue Triage has no active escalation contact or owner."
    )
    assert not Notification.objects.exists()


def test_level_two_without_a_contact_still_reaches_an_active_owner(ownerless):
    ownerless.owner = UserFactory(username="owner", email="owner@example.com")
    ownerless.escalation_contact = UserFactory(username="gone", is_active=False)
    ownerless.save()
    item = opened(ownerless, intent_score=95)
    assert sweep(31).unreached == 0
    item.refresh_from_db()
    assert item.escalation_problem == ""
    assert list(Notification.objects.values_list("kind", "recipient__username")) == [("escalation_2", "owner")]


def test_the_next_escalation_that_lands_clears_the_problem(ownerless):
    item = opened(ownerless, intent_score=10)
    sweep(31)  # level 1: nobody
    ownerless.owner = UserFactory(username="owner", email="owner@example.com")
    ownerless.escalation_contact = UserFactory(username="boss", email="boss@example.com")
    ownerless.save()
    assert sweep(61).escalated == {1: 0, 2: 1}
    item.refresh_from_db()
    assert (item.escalation_level, item.escalation_problem) == (2, "")
    assert list(Notification.objects.values_list("kind", "recipient__username")) == [("escalation_2", "boss")]
    assert SlaEvent.objects.filter(item=item, kind=SlaEventKind.UNREACHED).count() == 1  # the history keeps it


def test_the_sweep_stays_set_based_however_many_escalations_reach_nobody(ownerless):
    def queries(minutes):
        with CaptureQueriesContext(connection) as captured:
            sweep(minutes)
        return len(captured)

    ownerless.escalation_interval_minutes = 600  # level 1 only, in both sweeps
    ownerless.save()
    for _ in range(3):
        opened(ownerless, intent_score=10)
    few = queries(31)
    for _ in range(30):
        opened(ownerless, minutes=60, intent_score=10)
    many = queries(91)
    assert SlaEvent.objects.filter(kind=SlaEventKind.UNREACHED).count() == 3 + 30
    assert many == few


def test_the_item_page_shows_the_error(ownerless, ops_client):
    item = opened(ownerless, intent_score=10)
    sweep(31)
    body = ops_client.get(reverse("console:item", args=[item.pk])).content.decode()
    assert 'id="item-unreached"' in body
    assert "Level 1 escalation reached nobody: queue Triage has no active owner." in body
    assert reverse("admin:routing_queue_change", args=[ownerless.pk]) in body  # ops_person is staff


def test_an_item_whose_escalation_landed_shows_no_error(ops_client):
    queue = QueueFactory(name="Owned", owner=UserFactory(), escalation_contact=UserFactory())
    item = opened(queue, intent_score=10)
    sweep(31)
    body = ops_client.get(reverse("console:item", args=[item.pk])).content.decode()
    assert 'id="item-unreached"' not in body


def test_the_item_list_filters_items_whose_escalation_reached_nobody(ownerless, ops_client):
    unreached = opened(ownerless, intent_score=10)
    sweep(31)
    fine = opened(ownerless, minutes=40, intent_score=10)
    body = ops_client.get(reverse("console:items") + "?unreached=true").content.decode()
    assert f'data-item="{unreached.pk}"' in body and f'data-item="{fine.pk}"' not in body
    body = ops_client.get(reverse("console:items") + "?unreached=false").content.decode()
    assert f'data-item="{fine.pk}"' in body and f'data-item="{unreached.pk}"' not in body


def test_the_checklist_counts_escalations_that_reached_nobody(ownerless, ops_client):
    opened(ownerless, intent_score=10)
    sweep(31)  # Wednesday of the week the next Monday's checklist reviews
    monday = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
    checklist = monday_checklist(now=monday)
    gaps = checklist.escalations
    assert (gaps.open_items, gaps.in_week, gaps.ownerless_queues) == (1, 1, 1)
    assert gaps.link == reverse("console:items") + "?unreached=true"
    assert not checklist.all_ok
    assert "!! Escalations that reached nobody: 1 item(s) in the week, 1 open now" in checklist_text(checklist)
    with time_machine.travel(monday, tick=False):
        body = ops_client.get(reverse("console:checklist")).content.decode()
    assert 'id="checklist-unreached"' in body
    assert f'<a href="{reverse("console:items")}?unreached=true">1 open item</a>' in body


def test_the_checklist_says_nothing_when_every_escalation_landed(ops_client):
    queue = QueueFactory(name="Owned", owner=UserFactory(), escalation_contact=UserFactory())
    opened(queue, intent_score=10)
    sweep(31)
    monday = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
    assert not monday_checklist(now=monday).escalations.failing
    with time_machine.travel(monday, tick=False):
        body = ops_client.get(reverse("console:checklist")).content.decode()
    assert 'id="checklist-unreached"' not in body


def test_an_incident_escalation_with_nobody_to_receive_it_marks_its_items(ownerless):
    RuleFactory(condition={"field": "country", "op": "eq", "value": "FR"})
    form = SourceFactory(name="pricing-form")
    with time_machine.travel(at(0), tick=False):
        leads = [LeadFactory(origin=form, country="GB") for _ in range(3)]
        leads_route(lead_ids=[lead.pk for lead in leads])
    incident = ExceptionIncident.objects.get()
    assert sweep(31).incidents_escalated == 1
    items = ExceptionItem.objects.filter(incident=incident)
    assert set(items.values_list("escalation_problem", flat=True)) == {
        "Level 1 escalation reached nobody: queue Triage has no active owner."
    }
    assert SlaEvent.objects.filter(item__in=items, kind=SlaEventKind.UNREACHED).count() == 3
    assert not Notification.objects.filter(kind__in=["escalation_1", "escalation_2"]).exists()
