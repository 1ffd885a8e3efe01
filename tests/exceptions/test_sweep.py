"""The SLA sweep: breaches, escalation levels (each sent once), reminders, reassignment, business hours."""

import datetime as dt

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from exceptions.models import ExceptionItem, Notification, SlaEvent
from exceptions.notifications import notifications_send_due
from exceptions.services import exception_acknowledge, exception_mark_waiting
from exceptions.sweep import sla_sweep
from tests.factories import MembershipFactory, QueueFactory, UserFactory, open_exception

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 11, 18, 9, 0, tzinfo=dt.UTC)  # a Wednesday


def at(minutes):
    return T0 + dt.timedelta(minutes=minutes)


@pytest.fixture
def queue():
    return QueueFactory(
        name="Triage",
        ack_sla_minutes=30,
        resolve_sla_minutes=240,
        escalation_interval_minutes=30,
        owner=UserFactory(username="owner", email="owner@example.com"),
        escalation_contact=UserFactory(username="boss", email="boss@example.com"),
    )


def opened(queue, minutes=0, **lead_fields):
    with time_machine.travel(at(minutes), tick=False):
        return open_exception(queue=queue, **lead_fields)


def sweep(minutes):
    with time_machine.travel(at(minutes), tick=False):
        return sla_sweep()


def test_nothing_breaches_before_its_due_time(queue):
    opened(queue)
    report = sweep(29)
    assert (report.ack_breached, report.resolve_breached, report.escalated) == (0, 0, {1: 0, 2: 0})


def test_an_unacknowledged_item_breaches_once_and_escalates_to_the_owner(queue):
    item = opened(queue, intent_score=10)
    report = sweep(31)
    assert (report.ack_breached, report.escalated) == (1, {1: 1, 2: 0})
    item.refresh_from_db()
    assert (item.ack_breached_at, item.escalation_level) == (at(31), 1)
    assert [(e.clock, e.kind) for e in SlaEvent.objects.filter(item=item, at=at(31))] == [
        ("ack", "breached"),
        ("ack", "escalated"),
    ]
    assert list(Notification.objects.values_list("kind", "recipient__username")) == [("escalation_1", "owner")]
    # the next sweep (a minute later, or a duplicate beat tick) finds nothing new
    again = sweep(32)
    assert (again.ack_breached, again.escalated) == (0, {1: 0, 2: 0})
    assert Notification.objects.count() == 1 and SlaEvent.objects.filter(kind="breached").count() == 1


def test_still_breached_after_the_interval_escalates_to_level_two_once(queue):
    item = opened(queue, intent_score=10)
    sweep(31)
    assert sweep(60).escalated == {1: 0, 2: 0}
    assert sweep(61).escalated == {1: 0, 2: 1}
    assert sweep(95).escalated == {1: 0, 2: 0}
    item.refresh_from_db()
    assert item.escalation_level == 2
    assert list(Notification.objects.order_by("id").values_list("kind", "recipient__username")) == [
        ("escalation_1", "owner"),
        ("escalation_2", "boss"),
    ]


def test_a_high_intent_lead_escalates_at_level_two_right_away(queue):
    opened(queue, intent_score=95)
    assert sweep(31).escalated == {1: 0, 2: 1}
    assert list(Notification.objects.values_list("kind", "recipient__username")) == [("escalation_2", "boss")]


def test_acknowledged_items_breach_on_the_resolve_clock(queue, ops_person):
    item = opened(queue, intent_score=10)
    with time_machine.travel(at(5), tick=False):
        exception_acknowledge(item=item, by=ops_person)
    assert sweep(200).ack_breached == 0
    report = sweep(241)
    assert (report.resolve_breached, report.escalated[1]) == (1, 1)


def test_waiting_items_do_not_breach_the_resolve_clock(queue, ops_person):
    item = opened(queue, intent_score=10)
    with time_machine.travel(at(5), tick=False):
        exception_mark_waiting(item=item, by=ops_person)
    assert sweep(600).resolve_breached == 0


def test_reminder_goes_to_the_assignee_ten_minutes_before_and_only_once(queue, ops_person):
    item = opened(queue)
    ExceptionItem.objects.filter(pk=item.pk).update(assignee=ops_person)
    assert sweep(19).reminded == 0
    assert sweep(20).reminded == 1
    assert sweep(21).reminded == 0
    reminder = Notification.objects.get()
    assert (reminder.kind, reminder.recipient) == ("reminder", ops_person)


def test_reminder_without_an_assignee_goes_to_the_queue(queue):
    member = MembershipFactory(queue=queue, user=UserFactory(username="m", email="m@example.com")).user
    opened(queue)
    sweep(22)
    reminder = Notification.objects.get()
    assert reminder.recipient is None
    notifications_send_due(now=at(22))
    assert mail.outbox[0].to == [member.email]


def test_queue_may_reassign_an_unacknowledged_item_to_the_next_member(queue):
    queue.reassign_unacknowledged = True
    queue.save()
    first, second = (MembershipFactory(queue=queue, user=UserFactory(username=n)).user for n in ("first", "second"))
    item = opened(queue)
    ExceptionItem.objects.filter(pk=item.pk).update(assignee=first)
    report = sweep(31)
    assert (report.reassigned, report.escalated) == (1, {1: 0, 2: 0})  # the next person gets a fresh window
    item.refresh_from_db()
    assert (item.assignee, item.ack_due_at, item.ack_breached_at) == (second, at(61), None)
    assert SlaEvent.objects.get(item=item, kind="reassigned").data["to"] == "second"
    assert SlaEvent.objects.filter(item=item, kind="breached").count() == 1  # the miss is still on record
    assert Notification.objects.get(kind="reassigned").recipient == second
    assert sweep(32).reassigned == 0  # only when the acknowledge time has just run out
    assert sweep(62).escalated == {1: 1, 2: 0}  # the second person missed it too


def test_queues_that_do_not_ask_keep_the_assignee(queue):
    first = MembershipFactory(queue=queue, user=UserFactory(username="first")).user
    MembershipFactory(queue=queue, user=UserFactory(username="second"))
    item = opened(queue)
    ExceptionItem.objects.filter(pk=item.pk).update(assignee=first)
    assert sweep(31).reassigned == 0
    item.refresh_from_db()
    assert item.assignee == first


def test_escalation_email_is_sent_once_and_names_the_item(queue):
    item = opened(queue, intent_score=10)
    sweep(31)
    assert notifications_send_due(now=at(31)) == 1
    assert notifications_send_due(now=at(32)) == 0
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["owner@example.com"]
    assert f"#{item.pk}" in message.body and "SLA breached" in message.body


def test_escalations_noticed_after_closing_wait_for_business_hours():
    owner = UserFactory(username="owner", email="owner@example.com")
    berlin = QueueFactory(
        name="Berlin desk",
        ack_sla_minutes=30,
        business_timezone="Europe/Berlin",
        business_start=dt.time(9),
        business_end=dt.time(17),
        owner=owner,
    )
    # opened Friday 16:30 Berlin (15:30 UTC): acknowledge due at closing, 17:00 Berlin
    with time_machine.travel(dt.datetime(2026, 11, 20, 15, 30, tzinfo=dt.UTC), tick=False):
        item = open_exception(queue=berlin, intent_score=10)
    assert item.ack_due_at == dt.datetime(2026, 11, 20, 16, 0, tzinfo=dt.UTC)
    friday_night = dt.datetime(2026, 11, 20, 23, 0, tzinfo=dt.UTC)  # midnight in Berlin
    with time_machine.travel(friday_night, tick=False):
        assert sla_sweep().escalated[1] == 1
    notification = Notification.objects.get(kind="escalation_1")
    monday_opening = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)  # 09:00 Berlin
    assert notification.deliver_after == monday_opening
    assert notifications_send_due(now=friday_night) == 0
    assert mail.outbox == []
    assert notifications_send_due(now=monday_opening) == 1
    assert mail.outbox[0].to == ["owner@example.com"]


def test_escalation_inside_business_hours_is_delivered_at_once():
    berlin = QueueFactory(
        name="Berlin desk",
        ack_sla_minutes=30,
        business_timezone="Europe/Berlin",
        business_start=dt.time(9),
        business_end=dt.time(17),
        owner=UserFactory(username="owner", email="owner@example.com"),
    )
    with time_machine.travel(dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC), tick=False):  # 10:00 Berlin
        open_exception(queue=berlin, intent_score=10)
    breached = dt.datetime(2026, 11, 20, 9, 31, tzinfo=dt.UTC)
    with time_machine.travel(breached, tick=False):
        sla_sweep()
    assert Notification.objects.get().deliver_after == breached


def test_a_sweep_costs_the_same_queries_for_3_or_30_breaches(queue):
    def queries_for(items, minute):
        batch = [opened(queue, minute - 31, intent_score=10) for _ in range(items)]
        with CaptureQueriesContext(connection) as queries:
            report = sweep(minute)
        assert report.ack_breached == items and report.escalated[1] == items
        ExceptionItem.objects.filter(pk__in=[i.pk for i in batch]).update(status="resolved")  # out of the way
        return len(queries)

    assert queries_for(3, 100) == queries_for(30, 200)


def test_the_send_task_drains_every_due_notification(queue):
    from exceptions.tasks import send_notifications_task

    items = [opened(queue, intent_score=10) for _ in range(5)]
    other = QueueFactory(name="Other", ack_sla_minutes=30, owner=queue.owner)
    opened(other, intent_score=10)
    sweep(31)
    with time_machine.travel(at(31), tick=False):
        assert send_notifications_task(max_batches=3) == 2  # one per queue, each listing its items
        assert send_notifications_task() == 0
    assert len(mail.outbox) == 1  # one message to the owner listing both
    body = mail.outbox[0].body
    assert "SLA breached: 5 items in Triage" in body and all(f"#{i.pk} " in body for i in items)
    assert body.count("SLA breached") == 2 and "in Other" in body


def test_an_item_acknowledged_after_its_breach_is_not_escalated_further(queue, ops_person):
    item = opened(queue, intent_score=10)
    sweep(31)
    with time_machine.travel(at(32), tick=False):
        exception_acknowledge(item=item, by=ops_person)
    assert sweep(70).escalated == {1: 0, 2: 0}  # its resolve clock is well within time
    assert not Notification.objects.filter(kind="escalation_2").exists()


def test_a_waiting_item_is_not_escalated_further(queue, ops_person):
    item = opened(queue, intent_score=10)
    sweep(31)
    with time_machine.travel(at(32), tick=False):
        exception_mark_waiting(item=item, by=ops_person)
    assert sweep(70).escalated == {1: 0, 2: 0}


def test_a_reopened_item_that_breaches_again_is_escalated_again(queue, ops_person):
    from exceptions.services import exception_reopen, exception_resolve

    item = opened(queue, intent_score=10)
    sweep(31)
    with time_machine.travel(at(40), tick=False):
        exception_resolve(item=item, by=ops_person, resolution="spam")
    with time_machine.travel(at(50), tick=False):
        exception_reopen(item=item, by=ops_person)
    assert sweep(81).escalated == {1: 1, 2: 0}
    assert Notification.objects.filter(kind="escalation_1", item=item).count() == 2
    assert SlaEvent.objects.filter(item=item, kind="escalated").count() == 2


def test_a_resumed_clock_gets_its_own_reminder(queue, ops_person):
    from exceptions.services import exception_resume

    item = opened(queue)
    with time_machine.travel(at(5), tick=False):
        exception_acknowledge(item=item, by=ops_person)
    assert sweep(231).reminded == 1  # 10 minutes before the 240-minute resolve due time
    with time_machine.travel(at(232), tick=False):
        waiting = exception_mark_waiting(item=item, by=ops_person)
    with time_machine.travel(at(300), tick=False):
        exception_resume(item=waiting, by=ops_person)  # 8 minutes were left: due at 308
    assert sweep(297).reminded == 0
    assert sweep(299).reminded == 1  # 10 minutes before the new due time
    assert Notification.objects.filter(kind="reminder", item=item).count() == 2


def test_sweep_reassignment_is_in_the_audit_trail(queue):
    from audit.models import AuditAction, AuditEvent

    queue.reassign_unacknowledged = True
    queue.save()
    first, second = (MembershipFactory(queue=queue, user=UserFactory(username=n)).user for n in ("first", "second"))
    item = opened(queue)
    ExceptionItem.objects.filter(pk=item.pk).update(assignee=first)
    sweep(31)
    event = AuditEvent.objects.get(exception=item, action=AuditAction.EXCEPTION_REASSIGNED)
    assert (event.actor_label, event.data["from"], event.data["to"]) == ("engine", "first", "second")
