"""Everyone in the queue away: the queue holds the lead until the first member's hours start (the beat releases
it then), overflows, or opens no_eligible_assignee, as Queue.when_everyone_away says. Fixed instants."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from exceptions.models import ExceptionItem, ExceptionReason
from exceptions.routing_sla import routing_sla_sweep
from routing.availability import waiting
from routing.availability.waiting import waiting_leads_release
from routing.dispatch import Lane
from routing.models import EveryoneAway, Lead, LeadStatus
from routing.services import lead_route, leads_claim_stuck, leads_route
from tests.factories import (
    LeadFactory,
    MembershipFactory,
    QueueFactory,
    RuleFactory,
    TimeOffFactory,
    UserFactory,
    WorkingHoursFactory,
    open_exception,
)

pytestmark = pytest.mark.django_db

SATURDAY = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
# Monday 09:00 in Berlin (UTC+1 in December) is 08:00 UTC: ann's hours start first; bob's at 09:00 UTC.
ANN_STARTS = dt.datetime(2026, 12, 7, 8, 0, tzinfo=dt.UTC)
BOB_STARTS = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)


def travel(instant):
    return time_machine.travel(instant, tick=False)


def decisions(lead):
    return list(AuditEvent.objects.filter(lead=lead, action=AuditAction.ROUTING_DECISION).order_by("id"))


@pytest.fixture
def published(monkeypatch):
    """What the release hands to the broker (the edge): [(lead ids, lane)]."""
    sent = []
    monkeypatch.setattr(waiting, "routing_enqueue", lambda lead_ids, *, lane: sent.append((list(lead_ids), lane)))
    return sent


@pytest.fixture
def weekday_queue():
    """A queue of two people who work weekdays only: ann in Berlin, bob in UTC."""
    queue = QueueFactory(name="Weekday AEs", when_everyone_away=EveryoneAway.HOLD)
    for username, zone in (("ann", "Europe/Berlin"), ("bob", "UTC")):
        member = MembershipFactory(queue=queue, user=UserFactory(username=username)).user
        WorkingHoursFactory(user=member, timezone=zone)
    return queue


@pytest.fixture
def rule(weekday_queue):
    return RuleFactory(name="MQL to AE", queue=weekday_queue, sla_minutes=15)


def received_at(instant, **fields):
    return LeadFactory(received_at=instant, occurred_at=instant, **fields)


def held_lead(rule, *, until, received):
    """A lead routing held (as `lead_route` leaves one when everyone is away), written directly."""
    return received_at(received, queue=rule.queue, rule=rule, rule_version=1, waiting_until=until)


# The hold: decided by routing, released by the beat.


def test_everyone_out_of_hours_holds_the_lead_until_the_first_members_start(rule, weekday_queue):
    lead = received_at(SATURDAY)
    with travel(SATURDAY):
        lead_route(lead_id=lead.pk)

    lead.refresh_from_db()
    assert (lead.status, lead.assignee, lead.routed_at) == (LeadStatus.RECEIVED, None, None)
    assert (lead.queue, lead.rule, lead.rule_version, lead.waiting_until) == (weekday_queue, rule, 1, ANN_STARTS)
    (decision,) = decisions(lead)
    assert (decision.outcome, decision.rule, decision.occurred_at) == ("held", rule, SATURDAY)
    assert decision.data["queue"] == "Weekday AEs"
    assert decision.data["waiting_until"] == ANN_STARTS.isoformat()
    assert "ann out of hours until 09:00 Europe/Berlin" in decision.data["why"]
    assert "bob out of hours until 09:00 UTC" in decision.data["why"]
    assert not ExceptionItem.objects.filter(lead=lead).exists()
    assert lead.history.first().waiting_until == ANN_STARTS  # the row's history records the hold


def test_the_release_routes_the_held_lead_once_the_first_member_is_in(rule, published):
    lead = received_at(SATURDAY)
    with travel(SATURDAY):
        lead_route(lead_id=lead.pk)
        assert waiting_leads_release(now=SATURDAY) == []  # not yet

    with travel(ANN_STARTS):
        released = waiting_leads_release(now=ANN_STARTS)
        assert published == [([lead.pk], Lane.LIVE)]
        leads_route(lead_ids=released)  # what the live lane's worker does with them

    lead.refresh_from_db()
    assert released == [lead.pk]
    assert (lead.status, lead.assignee.username, lead.routed_at) == (LeadStatus.ASSIGNED, "ann", ANN_STARTS)
    assert lead.waiting_until is None
    assert [d.outcome for d in decisions(lead)] == ["held", "assigned"]


def test_a_released_lead_that_still_finds_nobody_is_held_again_until_the_next_start(rule, published):
    ann = rule.queue.memberships.get(user__username="ann").user
    lead = received_at(SATURDAY)
    with travel(SATURDAY):
        lead_route(lead_id=lead.pk)
        TimeOffFactory(user=ann, start=ANN_STARTS, end=ANN_STARTS + dt.timedelta(days=1))  # ann falls ill

    with travel(ANN_STARTS):
        leads_route(lead_ids=waiting_leads_release(now=ANN_STARTS))

    lead.refresh_from_db()
    assert (lead.status, lead.waiting_until) == (LeadStatus.RECEIVED, BOB_STARTS)
    assert [(d.outcome, d.data["waiting_until"]) for d in decisions(lead)] == [
        ("held", ANN_STARTS.isoformat()),
        ("held", BOB_STARTS.isoformat()),
    ]


def test_a_member_with_no_hours_but_time_off_holds_the_lead_until_the_time_off_ends():
    queue = QueueFactory(name="Around the clock", when_everyone_away=EveryoneAway.HOLD)
    dana = MembershipFactory(queue=queue, user=UserFactory(username="dana")).user  # no hours row: always in
    back = SATURDAY + dt.timedelta(days=2, hours=3)
    TimeOffFactory(user=dana, start=SATURDAY - dt.timedelta(days=1), end=back)
    RuleFactory(queue=queue)
    lead = received_at(SATURDAY)
    with travel(SATURDAY):
        lead_route(lead_id=lead.pk)

    lead.refresh_from_db()
    assert (lead.status, lead.waiting_until) == (LeadStatus.RECEIVED, back)
    assert "dana away" in decisions(lead)[0].data["why"]


def test_exception_policy_opens_no_eligible_assignee_saying_who_is_away(rule, weekday_queue):
    weekday_queue.when_everyone_away = EveryoneAway.EXCEPTION
    weekday_queue.overflow_queue = QueueFactory(name="Never tried")
    MembershipFactory(queue=weekday_queue.overflow_queue, user__username="carl")
    weekday_queue.save()
    lead = received_at(SATURDAY)
    with travel(SATURDAY):
        lead_route(lead_id=lead.pk)

    lead.refresh_from_db()
    assert (lead.status, lead.waiting_until, lead.routed_at) == (LeadStatus.EXCEPTION, None, SATURDAY)
    (item,) = ExceptionItem.objects.filter(lead=lead)
    assert item.reason == ExceptionReason.NO_ELIGIBLE_ASSIGNEE
    assert "ann out of hours" in item.detail and "bob out of hours" in item.detail  # the why, not "under the cap"
    assert "under the cap" not in item.detail
    (decision,) = decisions(lead)
    assert decision.outcome == ExceptionReason.NO_ELIGIBLE_ASSIGNEE and decision.data["detail"] == item.detail


def test_overflow_policy_follows_the_overflow_queue(rule, weekday_queue):
    weekday_queue.when_everyone_away = EveryoneAway.OVERFLOW
    weekday_queue.overflow_queue = QueueFactory(name="Around the clock")
    MembershipFactory(queue=weekday_queue.overflow_queue, user__username="carl")  # no hours: always in
    weekday_queue.save()
    lead = received_at(SATURDAY)
    with travel(SATURDAY):
        lead_route(lead_id=lead.pk)

    lead.refresh_from_db()
    assert (lead.status, lead.queue.name, lead.assignee.username) == (LeadStatus.ASSIGNED, "Around the clock", "carl")
    assert lead.waiting_until is None
    (decision,) = decisions(lead)
    assert decision.data["overflowed_from"] == ["Weekday AEs"]


# What else meets a held lead: duplicate deliveries, the stuck-lead sweeper, the routing SLA.


def test_routing_leaves_a_lead_held_until_later_alone(rule):
    lead = held_lead(rule, until=ANN_STARTS, received=SATURDAY)
    with travel(SATURDAY + dt.timedelta(hours=1)):
        assert leads_route(lead_ids=[lead.pk]) == []  # a duplicate task, or the sweeper, delivers it

    lead.refresh_from_db()
    assert (lead.status, lead.waiting_until, lead.assignee) == (LeadStatus.RECEIVED, ANN_STARTS, None)
    assert decisions(lead) == []


def test_the_release_claims_each_due_lead_once_and_clears_its_hold(rule, published):
    due = held_lead(rule, until=ANN_STARTS, received=SATURDAY)
    later = held_lead(rule, until=BOB_STARTS, received=SATURDAY)
    never_held = received_at(SATURDAY)

    assert waiting_leads_release(now=ANN_STARTS) == [due.pk]
    assert waiting_leads_release(now=ANN_STARTS) == []  # a second tick finds nothing left to release

    due.refresh_from_db(), later.refresh_from_db(), never_held.refresh_from_db()
    assert (due.waiting_until, due.status) == (None, LeadStatus.RECEIVED)
    assert later.waiting_until == BOB_STARTS
    assert published == [([due.pk], Lane.LIVE)]


def test_the_stuck_lead_sweeper_skips_held_leads_until_their_time(rule, settings):
    grace = dt.timedelta(seconds=settings.HANDOFF["REQUEUE_GRACE_SECONDS"])
    held = held_lead(rule, until=ANN_STARTS, received=SATURDAY)
    lost = received_at(SATURDAY)  # never routed: a lost publish

    with travel(SATURDAY + grace + dt.timedelta(seconds=1)):
        assert leads_claim_stuck() == [lost.pk]
    with travel(ANN_STARTS + dt.timedelta(seconds=1)):
        # Due and not yet released (the beat missed a tick): not lost either way, so the sweeper takes it.
        assert held.pk in leads_claim_stuck()


def test_a_held_lead_past_its_rules_sla_opens_a_routing_sla_item_stuck_waiting(rule, weekday_queue):
    lead = held_lead(rule, until=ANN_STARTS, received=SATURDAY)
    with travel(SATURDAY + dt.timedelta(minutes=14)):
        assert routing_sla_sweep().opened == 0  # within the rule's 15 minutes
    with travel(SATURDAY + dt.timedelta(minutes=16)):
        report = routing_sla_sweep()

    assert report.opened == 1
    (item,) = ExceptionItem.objects.filter(lead=lead, reason=ExceptionReason.ROUTING_SLA_BREACHED)
    assert item.queue == weekday_queue
    assert "the 15-minute SLA of rule MQL to AE (v1)" in item.detail
    assert "Waiting for working hours until 2026-12-07 08:00 UTC" in item.detail
    event = AuditEvent.objects.get(exception=item, action=AuditAction.EXCEPTION_OPENED)
    assert event.data["stuck"] == "waiting"
    assert event.data["waiting_until"].startswith("2026-12-07T08:00:00")


# Showing it.


def test_the_lead_api_shows_waiting_until_only_while_held(rule, source_client, source):
    lead = held_lead(rule, until=ANN_STARTS, received=SATURDAY)
    Lead.objects.filter(pk=lead.pk).update(origin=source)
    other = received_at(SATURDAY, origin=source)

    body = source_client.get(f"/api/v1/leads/{lead.pk}/").json()
    assert body["waiting_until"].startswith("2026-12-07T08:00:00")
    assert source_client.get(f"/api/v1/leads/{other.pk}/").json()["waiting_until"] is None


def test_the_console_shows_the_held_lead_waiting_with_its_time_and_why(rule, client, ops_person, published):
    lead = received_at(SATURDAY)
    with travel(SATURDAY):
        lead_route(lead_id=lead.pk)
        client.force_login(ops_person)
        page = client.get(reverse("console:lead", args=[lead.pk])).content.decode()
        dashboard = client.get("/console/dashboard/").content.decode()

    assert "Waiting for working hours: routed at 2026-12-07 08:00 UTC" in page
    why = decisions(lead)[0].data["why"]
    assert why and why.replace("'", "&#x27;") in page
    assert 'data-figure="held"><span class="label">Held for working hours</span><span class="value">1<' in dashboard


def test_an_item_whose_edited_lead_is_held_is_resolved_rerouted_with_the_time_it_waits_for(rule):
    from exceptions.models import ExceptionStatus, Resolution
    from exceptions.triage import lead_edit_and_reroute

    ops = UserFactory(username="olga")
    with travel(SATURDAY):
        item = open_exception(reason=ExceptionReason.MISSING_CONTACT, email=None, phone=None)
        lead, item = lead_edit_and_reroute(item=item, by=ops, changes={"email": "fixed@example.com"})

    assert (lead.status, lead.waiting_until) == (LeadStatus.RECEIVED, ANN_STARTS)
    assert (item.status, item.resolution) == (ExceptionStatus.RESOLVED, Resolution.REROUTED)
    assert "held for working hours until 2026-12-07 08:00 UTC" in item.resolution_note
