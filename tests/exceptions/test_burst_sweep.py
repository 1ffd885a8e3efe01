"""The SLA sweep under a burst: a few hundred items across queues breaching in the same minute, swept in
chunks (SWEEP_CHUNK made small), with exact stamps and SLA events, grouped notifications, and operators
acknowledging while the sweep runs (real PostgreSQL, two connections)."""

import datetime as dt
import threading
from collections import Counter

import pytest
from django.core import mail
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from exceptions import sweep as sweep_module
from exceptions.models import NOTIFICATION_LISTED_ITEMS, ExceptionItem, Notification, SlaEvent, SweepBatch
from exceptions.notifications import notifications_send_due
from exceptions.services import Opening, exception_acknowledge, exceptions_open
from exceptions.sweep import sla_sweep, sweep_record
from tests.factories import LeadFactory, MembershipFactory, QueueFactory, UserFactory

T0 = dt.datetime(2026, 11, 18, 9, 0, tzinfo=dt.UTC)  # a Wednesday; no queue here keeps business hours
BURST = T0 + dt.timedelta(minutes=31)  # every item opened at T0 is 1 minute past its acknowledge time


def at(minutes):
    return T0 + dt.timedelta(minutes=minutes)


def make_queue(name):
    return QueueFactory(
        name=name,
        ack_sla_minutes=30,
        resolve_sla_minutes=240,
        escalation_interval_minutes=30,
        owner=UserFactory(username=f"{name}-owner", email=f"{name}-owner@example.com"),
        escalation_contact=UserFactory(username=f"{name}-boss", email=f"{name}-boss@example.com"),
    )


def open_items(queue, count, *, at_minute=0, intent_score=10):
    leads = LeadFactory.create_batch(count, intent_score=intent_score)
    openings = [Opening(lead=lead, reason="no_matching_rule", queue=queue) for lead in leads]
    return exceptions_open(openings=openings, at=at(at_minute))


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(sweep_module, "SWEEP_CHUNK", 40)


@pytest.fixture
def burst(db, small_chunks):
    """Three queues, 300 items breaching at once: per queue 80 ordinary leads and 20 high-intent ones."""
    queues = [make_queue(name) for name in ("north", "south", "west")]
    items = {q.pk: open_items(q, 80) + open_items(q, 20, intent_score=95) for q in queues}
    return queues, items


@pytest.mark.django_db
def test_a_burst_is_stamped_once_with_one_event_per_breach_and_escalation(burst):
    queues, items = burst
    report = sla_sweep(now=BURST)
    assert (report.ack_breached, report.resolve_breached, report.escalated) == (300, 0, {1: 240, 2: 60})
    assert report.statements == 3 * 3  # per queue: 100 items in chunks of 40 (40, 40, 20)
    assert not SweepBatch.objects.exists()  # all recorded
    swept = ExceptionItem.objects.all()
    assert {(i.ack_breached_at, i.escalated_at) for i in swept} == {(BURST, BURST)}
    assert Counter(i.escalation_level for i in swept) == {1: 240, 2: 60}
    events = SlaEvent.objects.filter(at=BURST)
    assert Counter((e.clock, e.kind) for e in events) == {("ack", "breached"): 300, ("ack", "escalated"): 300}
    assert {e.data["by"] for e in events} == {"sweep"}
    per_item = Counter(e.item_id for e in events)
    assert set(per_item.values()) == {2} and len(per_item) == 300  # exactly one breach and one escalation each
    escalations = {e.item_id: e.data["level"] for e in events if e.kind == "escalated"}
    assert escalations == {i.pk: i.escalation_level for i in swept}
    # history reads breach, then escalation
    first = swept.first()
    assert [e.kind for e in SlaEvent.objects.filter(item=first, at=BURST)] == ["breached", "escalated"]
    # a second sweep at once (a duplicate beat tick) finds nothing
    again = sla_sweep(now=BURST + dt.timedelta(seconds=1))
    assert (again.ack_breached, again.escalated) == (0, {1: 0, 2: 0})
    assert SlaEvent.objects.filter(kind__in=["breached", "escalated"]).count() == 600


@pytest.mark.django_db
def test_a_burst_notifies_each_person_once_per_queue_listing_the_items(burst):
    queues, items = burst
    sla_sweep(now=BURST)
    notes = Notification.objects.all()
    assert sorted((n.queue.name, n.kind, n.recipient.username, n.item_count) for n in notes) == sorted(
        [(q.name, "escalation_1", f"{q.name}-owner", 80) for q in queues]
        + [(q.name, "escalation_2", f"{q.name}-boss", 20) for q in queues]
    )
    for note in notes:
        assert note.item is None
        assert len(note.item_ids) == min(note.item_count, NOTIFICATION_LISTED_ITEMS)
        level = 1 if note.kind == "escalation_1" else 2
        in_queue = {i.pk for i in ExceptionItem.objects.filter(queue=note.queue, escalation_level=level)}
        assert set(note.item_ids) <= in_queue
    assert notifications_send_due(now=BURST) == 6
    owner_mail = next(m for m in mail.outbox if m.to == ["north-owner@example.com"])
    assert "SLA breached: 80 items in north" in owner_mail.body
    assert owner_mail.body.count("\n  #") == NOTIFICATION_LISTED_ITEMS  # the first items, one line each
    assert f"and {80 - NOTIFICATION_LISTED_ITEMS} more" in owner_mail.body
    assert owner_mail.subject == "[Handoff] 80 exception item(s) need attention"


@pytest.mark.django_db
def test_reminders_are_grouped_per_assignee_and_queue(small_chunks):
    queue = make_queue("east")
    ann, bob = UserFactory(username="ann"), UserFactory(username="bob")
    batch = open_items(queue, 50)
    ExceptionItem.objects.filter(pk__in=[i.pk for i in batch[:30]]).update(assignee=ann)
    ExceptionItem.objects.filter(pk__in=[i.pk for i in batch[30:45]]).update(assignee=bob)
    assert sla_sweep(now=at(21)).reminded == 50
    groups = {(n.recipient.username if n.recipient else None): n.item_count for n in Notification.objects.all()}
    assert groups == {"ann": 30, "bob": 15, None: 5}  # nobody has the last five: the queue
    assert SlaEvent.objects.filter(kind="reminded").count() == 50


@pytest.mark.django_db
def test_escalation_in_a_burst_goes_on_to_level_two_once_per_item(small_chunks):
    queue = make_queue("north")
    early = open_items(queue, 60)  # breach at 31, level 2 at 61
    late = open_items(queue, 50, at_minute=20)  # breach at 51, level 2 at 81
    assert sla_sweep(now=at(31)).escalated == {1: 60, 2: 0}
    assert sla_sweep(now=at(51)).escalated == {1: 50, 2: 0}
    with transaction.atomic():
        for item in early[:10]:
            exception_acknowledge(item=item, by=queue.owner)  # met late: escalates no further
    assert sla_sweep(now=at(61)).escalated == {1: 0, 2: 50}
    assert sla_sweep(now=at(81)).escalated == {1: 0, 2: 50}
    levels = dict(ExceptionItem.objects.values_list("pk", "escalation_level"))
    assert {levels[i.pk] for i in early[:10]} == {1} and {levels[i.pk] for i in early[10:] + late} == {2}
    level_two = Notification.objects.filter(kind="escalation_2").order_by("created_at")
    assert [(n.recipient.username, n.item_count) for n in level_two] == [("north-boss", 50), ("north-boss", 50)]
    assert SlaEvent.objects.filter(kind="escalated", data__level=2).count() == 100


@pytest.mark.django_db
def test_a_queue_that_reassigns_still_notifies_each_person_once_per_sweep():
    """Such a queue is recorded twice in one sweep (breaches before the reassignment, then what nobody could
    take over escalates): a second group for the same person joins the first notification."""
    queue = make_queue("handover")
    queue.reassign_unacknowledged = True  # and no member to hand anything to
    queue.save()
    (first,) = open_items(queue, 1)
    assert sla_sweep(now=at(31)).escalated == {1: 1, 2: 0}
    (urgent,) = open_items(queue, 1, at_minute=30, intent_score=95)
    assert sla_sweep(now=at(61)).escalated == {1: 0, 2: 2}  # `first` a level on, `urgent` straight to 2
    (note,) = Notification.objects.filter(kind="escalation_2")
    assert (note.recipient.username, note.item_count, note.item) == ("handover-boss", 2, None)
    assert sorted(note.item_ids) == sorted([first.pk, urgent.pk])


@pytest.mark.django_db
def test_items_handed_on_in_a_burst_are_one_notification_per_new_assignee(small_chunks):
    queue = make_queue("handover")
    queue.reassign_unacknowledged = True
    queue.save()
    for name in ("m1", "m2"):
        MembershipFactory(queue=queue, user=UserFactory(username=name))
    items = open_items(queue, 20)
    report = sla_sweep(now=at(31))
    assert (report.reassigned, report.escalated) == (20, {1: 0, 2: 0})
    notes = Notification.objects.filter(kind="reassigned")
    assert sorted((n.recipient.username, n.item_count) for n in notes) == [("m1", 10), ("m2", 10)]
    assigned = dict(ExceptionItem.objects.values_list("pk", "assignee__username"))
    for note in notes:
        assert {assigned[i] for i in note.item_ids} == {note.recipient.username}
    # every miss is on record, before the handover
    for item in items:
        assert [e.kind for e in SlaEvent.objects.filter(item=item, at=at(31))] == ["breached", "reassigned"]


@pytest.mark.django_db
def test_the_sweep_costs_the_same_queries_for_a_small_and_a_large_burst(small_chunks, monkeypatch):
    monkeypatch.setattr(sweep_module, "SWEEP_CHUNK", 1000)
    queues = [make_queue("north"), make_queue("south")]

    def queries_for(per_queue, minute):
        for queue in queues:
            open_items(queue, per_queue, at_minute=minute - 31)
        with CaptureQueriesContext(connection) as queries:
            report = sla_sweep(now=at(minute))
        assert report.ack_breached == 2 * per_queue
        ExceptionItem.objects.update(status="resolved")  # out of the way
        return len(queries)

    assert queries_for(5, 100) == queries_for(150, 200)


@pytest.mark.django_db
def test_stamps_left_unrecorded_are_recorded_by_the_next_sweep(burst):
    report = sla_sweep(now=BURST, record=False)  # as the beat task runs it; say its follow-up task was lost
    assert report.ack_breached == 300
    assert SweepBatch.objects.count() == 9 and not SlaEvent.objects.filter(at=BURST).exists()
    assert not Notification.objects.exists()
    sla_sweep(now=BURST + dt.timedelta(minutes=1))  # the next minute's sweep records what was left
    assert SlaEvent.objects.filter(at=BURST, kind="breached").count() == 300
    assert Notification.objects.count() == 6 and not SweepBatch.objects.exists()
    assert sweep_record() == 0  # nothing recorded twice


# Operators acting while the sweep runs: real transactions on two connections.


def opened_long_ago(queue, count):
    """Items whose acknowledge time ran out an hour ago (real time: an acknowledge now is late)."""
    leads = LeadFactory.create_batch(count, intent_score=10)
    openings = [Opening(lead=lead, reason="no_matching_rule", queue=queue) for lead in leads]
    return exceptions_open(openings=openings, at=timezone.now() - dt.timedelta(minutes=90))


def in_thread(work):
    errors = []

    def target():
        try:
            work()
        except Exception as exc:  # surfaced by the caller
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    return thread, errors


@pytest.mark.django_db(transaction=True)
def test_the_sweep_skips_an_item_being_acknowledged_and_the_late_acknowledge_counts_as_breached(ops_person):
    queue = make_queue("north")
    held, *others = opened_long_ago(queue, 5)
    acknowledging, release = threading.Event(), threading.Event()

    def acknowledge():
        with transaction.atomic():
            exception_acknowledge(item=held, by=ops_person)  # holds the row until the commit below
            acknowledging.set()
            release.wait(10)

    thread, errors = in_thread(acknowledge)
    try:
        assert acknowledging.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")  # waiting for the operator fails here instead of hanging
        report = sla_sweep()
    finally:
        release.set()
        thread.join()
    assert not errors, errors
    assert report.ack_breached == 4  # the held item was skipped, not waited for
    held = ExceptionItem.objects.get(pk=held.pk)
    assert (held.status, held.escalation_level) == ("acknowledged", 0)
    assert held.ack_breached_at == held.acknowledged_at  # stamped by the late acknowledge itself
    breach = SlaEvent.objects.get(item=held, kind="breached")
    assert breach.data["by"] == "late action"
    others = ExceptionItem.objects.filter(pk__in=[i.pk for i in others])
    assert set(others.values_list("escalation_level", flat=True)) == {1}


@pytest.mark.django_db(transaction=True)
def test_an_acknowledge_does_not_wait_for_the_rest_of_a_burst(ops_person, monkeypatch):
    """Each chunk commits on its own: while the sweep is still stamping, an item of a chunk already stamped
    can be acknowledged at once; so can one whose SLA events are being written (the record step's foreign-key
    checks take share locks an update does not wait for), and the record step does not lock the queue."""
    monkeypatch.setattr(sweep_module, "SWEEP_CHUNK", 10)
    queue = make_queue("north")
    opened_long_ago(queue, 25)
    stamp_chunk, record_notifications = sweep_module._stamp_chunk, sweep_module._record_notifications
    paused, release = threading.Event(), threading.Event()
    calls = []

    def pausing_stamp_chunk(params):
        calls.append(1)
        if len(calls) == 2:  # the first chunk is committed; the second not begun
            paused.set()
            release.wait(10)
        return stamp_chunk(params)

    monkeypatch.setattr(sweep_module, "_stamp_chunk", pausing_stamp_chunk)
    thread, errors = in_thread(lambda: sla_sweep(record=False))
    try:
        assert paused.wait(10)
        stamped = ExceptionItem.objects.filter(ack_breached_at__isnull=False)
        assert stamped.count() == 10
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        exception_acknowledge(item=stamped.first(), by=ops_person)
    finally:
        release.set()
        thread.join()
    assert not errors, errors
    assert ExceptionItem.objects.filter(ack_breached_at__isnull=False).count() == 25

    # The record step, paused inside its transaction after writing the SLA events.
    recording, release_record = threading.Event(), threading.Event()

    def pausing_record_notifications(at, batches):
        recording.set()
        release_record.wait(10)
        return record_notifications(at, batches)

    monkeypatch.setattr(sweep_module, "_record_notifications", pausing_record_notifications)
    thread, errors = in_thread(sweep_record)
    try:
        assert recording.wait(10)
        open_item = ExceptionItem.objects.filter(status="open").last()
        exception_acknowledge(item=open_item, by=ops_person)  # lock_timeout still 2 s on this connection
        with connection.cursor() as cursor:  # what a foreign-key check on a new item or lead of the queue does
            cursor.execute("SELECT 1 FROM routing_queue WHERE id = %s FOR KEY SHARE", [queue.pk])
    finally:
        release_record.set()
        thread.join()
    assert not errors, errors
    assert SlaEvent.objects.filter(kind="breached", data__by="sweep").count() == 25
    assert ExceptionItem.objects.filter(status="acknowledged").count() == 2
