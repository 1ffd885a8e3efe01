"""A person's later lead that joins their open exception item waits on it and follows its resolution: it is
never left `exception` with nothing pointing at it."""

import importlib

import pytest
from django.apps import apps
from django.utils.html import escape
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from exceptions.models import ExceptionItem, Resolution
from exceptions.services import exception_resolve
from exceptions.triage import lead_assign_manually, lead_edit_and_reroute
from routing.integrations.models import OutboxEvent
from routing.models import LeadStatus
from routing.services import lead_route, leads_route
from tests.factories import DeliveryTargetFactory, LeadFactory, MembershipFactory, QueueFactory, RuleFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def france(rule_owner):
    """Only French leads match a rule: a British lead opens a no_matching_rule item."""
    QueueFactory(name="Triage")
    sales = QueueFactory(name="Sales")
    MembershipFactory(queue=sales, user__username="alan")
    return RuleFactory(owner=rule_owner, condition={"field": "country", "op": "eq", "value": "FR"}, queue=sales)


def routed(**fields):
    lead = LeadFactory(**fields)
    lead_route(lead_id=lead.id)
    lead.refresh_from_db()
    return lead


@pytest.fixture
def held(france):
    """(the person's first lead, its item, their second lead, held by that item)."""
    first = routed(email="jo@acme.com", country="GB")
    second = routed(email="jo@acme.com", country="GB")
    return first, ExceptionItem.objects.get(lead=first), second


def trail(lead, action):
    return AuditEvent.objects.filter(lead=lead, action=action).order_by("id")


def test_the_joining_lead_is_held_by_the_persons_item(held):
    first, item, second = held
    assert list(item.held_leads.all()) == [second]
    assert second.status == LeadStatus.EXCEPTION
    assert "follows that item's resolution" in trail(second, AuditAction.ROUTING_DECISION).get().data["detail"]


def test_assigning_the_item_by_hand_gives_the_held_lead_to_the_same_person(held, france, ops_person):
    first, item, second = held
    DeliveryTargetFactory()
    alan = france.queue.memberships.get().user
    lead_assign_manually(lead=first, queue=france.queue, assignee=alan, reason="French", by=ops_person, item=item)
    second.refresh_from_db()
    assert (second.status, second.queue, second.assignee) == (LeadStatus.ASSIGNED, france.queue, alan)
    event = trail(second, AuditAction.LEAD_REROUTED).get()
    assert event.outcome == "assigned" and event.actor == ops_person and event.exception_id == item.pk
    assert event.data["with_lead"] == first.lead_id and event.data["assignee"] == "alan"
    assert OutboxEvent.objects.filter(lead=second, event_type="lead.assigned").count() == 1
    assert [h.history_type for h in second.history.order_by("history_id")][-1] == "~"


def test_rerouting_the_item_after_an_edit_takes_the_held_lead_along(held, ops_person):
    first, item, second = held
    lead, fresh = lead_edit_and_reroute(item=item, by=ops_person, changes={"country": "FR"})
    assert fresh.resolution == Resolution.REROUTED
    second.refresh_from_db()
    assert second.status == LeadStatus.ASSIGNED and second.assignee == lead.assignee is not None
    # The lead's API says who assigned it and why, like any decision.
    api = APIClient()
    api.force_authenticate(ops_person)
    last = api.get(f"/api/v1/leads/{second.pk}/").json()["decisions"][-1]
    assert (last["queue"], last["assignee"], last["assigned_by"]) == ("Sales", "alan", "held_item")
    assert last["note"] == f"followed item #{item.pk}: the same person's lead {first.lead_id} went to alan in Sales"
    assert last["decided_by"] == ops_person.get_username()


def test_fixed_data_without_an_owner_sends_the_held_lead_back_to_routing(held, ops_person):
    first, item, second = held
    exception_resolve(item=item, by=ops_person, resolution=Resolution.FIXED_DATA)
    second.refresh_from_db()
    assert second.status == LeadStatus.RECEIVED
    assert trail(second, AuditAction.LEAD_REROUTED).get().outcome == "released"
    leads_route(lead_ids=[second.pk])  # what the live-lane task does
    second.refresh_from_db()
    # Still British, so still no rule: now it opens an item of its own instead of waiting on a resolved one.
    assert second.status == LeadStatus.EXCEPTION
    assert ExceptionItem.objects.filter(lead=second, status="open").count() == 1


def test_resolving_the_item_as_spam_closes_the_held_lead_with_it(held, ops_person):
    first, item, second = held
    exception_resolve(item=item, by=ops_person, resolution=Resolution.SPAM, note="bot")
    second.refresh_from_db()
    assert second.status == LeadStatus.EXCEPTION
    event = trail(second, AuditAction.EXCEPTION_RESOLVED).get()
    assert event.outcome == "spam" and event.data == {"held_by_item": item.pk, "resolution": "spam", "note": "bot"}
    assert not trail(second, AuditAction.LEAD_REROUTED).exists()


def test_a_held_lead_already_handled_by_hand_is_left_alone(held, france, ops_person):
    first, item, second = held
    lead_assign_manually(lead=second, queue=france.queue, assignee=None, reason="took it", by=ops_person)
    exception_resolve(item=item, by=ops_person, resolution=Resolution.SPAM)
    second.refresh_from_db()
    assert second.status == LeadStatus.ASSIGNED
    assert not trail(second, AuditAction.EXCEPTION_RESOLVED).exists()


def test_the_lead_api_and_page_name_the_item_holding_a_lead(held, ops_person, client):
    first, item, second = held
    api = APIClient()
    api.force_authenticate(ops_person)
    body = api.get(f"/api/v1/leads/{second.pk}/").json()
    assert body["held_by"] == [{"id": item.pk, "reason": "no_matching_rule", "status": "open", "lead": first.pk}]
    client.force_login(ops_person)
    page = client.get(f"/console/leads/{second.pk}/").content.decode()
    assert f'Waits on item <a href="/console/items/{item.pk}/">#{item.pk}</a>' in page
    item_page = client.get(f"/console/items/{item.pk}/").content.decode()
    assert f'href="/console/leads/{second.pk}/"' in item_page and "Also holds" in item_page
    exception_resolve(item=item, by=ops_person, resolution=Resolution.SPAM, note="bot")
    page = client.get(f"/console/leads/{second.pk}/").content.decode()
    assert f'Waited on item <a href="/console/items/{item.pk}/">#{item.pk}</a>' in page
    assert "resolved as Spam: it followed that resolution." in page


def test_a_decision_says_who_chose_the_assignee_and_why_in_the_api_and_on_the_page(france, ops_person, client):
    routed(email="jo@acme.com", country="FR")
    second = routed(email="jo@acme.com", country="FR")
    api = APIClient()
    api.force_authenticate(ops_person)
    [decision] = api.get(f"/api/v1/leads/{second.pk}/").json()["decisions"]
    assert (decision["queue"], decision["assignee"], decision["assigned_by"]) == ("Sales", "alan", "sticky")
    assert "alan" in decision["note"] and decision["note"]
    client.force_login(ops_person)
    page = client.get(f"/console/leads/{second.pk}/").content.decode()
    assert 'Sales → alan <span class="status">sticky</span><br>' + escape(decision["note"]) in page


def test_the_migration_holds_the_leads_that_joined_an_item_before_holds_existed(held):
    first, item, second = held
    item.held_leads.clear()  # as a database migrated before 0006 left it
    importlib.import_module("exceptions.migrations.0006_item_held_leads").hold_the_leads_already_waiting(apps, None)
    assert list(item.held_leads.all()) == [second]
