"""What people do to exception items: each action, its audit event and SLA events, and its conflicts."""

import datetime as dt
import threading

import pytest
import time_machine
from django.db import connection

from audit.models import AuditAction, AuditEvent
from exceptions.models import ExceptionItem, ExceptionStatus, SlaEvent
from exceptions.services import (
    ExceptionConflict,
    InvalidAction,
    exception_acknowledge,
    exception_assign,
    exception_mark_waiting,
    exception_reopen,
    exception_resolve,
    exception_resume,
    exceptions_bulk_acknowledge,
    exceptions_bulk_assign,
)
from tests.factories import QueueFactory, UserFactory, open_exception

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)  # a Friday


def sla_trail(item):
    return [(e.clock, e.kind) for e in SlaEvent.objects.filter(item=item).order_by("at", "id")]


def actions(item):
    return list(AuditEvent.objects.filter(exception=item).order_by("id").values_list("action", flat=True))


@pytest.fixture
def item():
    with time_machine.travel(T0, tick=False):
        return open_exception(queue=QueueFactory(name="Triage", ack_sla_minutes=30, resolve_sla_minutes=240))


def test_opening_sets_due_times_from_the_queue_and_starts_both_clocks(item):
    assert (item.ack_due_at, item.resolve_due_at) == (T0 + dt.timedelta(minutes=30), T0 + dt.timedelta(hours=4))
    assert sla_trail(item) == [("ack", "started"), ("resolve", "started")]
    assert actions(item) == [AuditAction.EXCEPTION_OPENED]


def test_business_hours_queue_sets_due_times_inside_its_hours():
    queue = QueueFactory(
        business_timezone="Europe/Berlin",
        business_start=dt.time(9),
        business_end=dt.time(17),
        ack_sla_minutes=30,
        resolve_sla_minutes=240,
    )
    with time_machine.travel(dt.datetime(2026, 11, 20, 15, 0, tzinfo=dt.UTC), tick=False):  # Fri 16:00 Berlin
        item = open_exception(queue=queue)
    assert item.ack_due_at == dt.datetime(2026, 11, 20, 15, 30, tzinfo=dt.UTC)
    assert item.resolve_due_at == dt.datetime(2026, 11, 23, 11, 0, tzinfo=dt.UTC)  # 1 h Fri + 3 h Mon


def test_acknowledge_records_who_when_and_takes_the_item(item, ops_person):
    with time_machine.travel(T0 + dt.timedelta(minutes=10), tick=False):
        acked = exception_acknowledge(item=item, by=ops_person)
    assert acked.status == ExceptionStatus.ACKNOWLEDGED
    assert (acked.acknowledged_by, acked.assignee) == (ops_person, ops_person)
    assert acked.acknowledged_at == T0 + dt.timedelta(minutes=10)
    assert sla_trail(item)[-1] == ("ack", "fulfilled")
    assert SlaEvent.objects.filter(item=item, kind="fulfilled").get().data == {"within_sla": True}
    event = AuditEvent.objects.filter(exception=item, action=AuditAction.EXCEPTION_ACKNOWLEDGED).get()
    assert (event.actor, event.lead) == (ops_person, item.lead)


def test_acknowledge_twice_conflicts_naming_who_did_it(item, ops_person):
    other = UserFactory(username="pat", first_name="Pat", last_name="Ops")
    exception_acknowledge(item=item, by=other)
    with pytest.raises(ExceptionConflict) as caught:
        exception_acknowledge(item=item, by=ops_person)
    assert "already acknowledged by Pat Ops" in caught.value.message
    assert actions(item).count(AuditAction.EXCEPTION_ACKNOWLEDGED) == 1


def test_resolve_needs_a_known_resolution_code(item, ops_person):
    with pytest.raises(InvalidAction, match="Unknown resolution 'done'"):
        exception_resolve(item=item, by=ops_person, resolution="done")
    assert ExceptionItem.objects.get(pk=item.pk).status == ExceptionStatus.OPEN


@pytest.mark.parametrize("code", ["rerouted", "fixed_data", "duplicate", "spam", "not_a_lead"])
def test_resolve_with_each_code(item, ops_person, code):
    resolved = exception_resolve(item=item, by=ops_person, resolution=code, note="checked")
    assert (resolved.status, resolved.resolution, resolved.resolution_note) == ("resolved", code, "checked")
    assert resolved.acknowledged_at is not None  # resolving an unacknowledged item acknowledges it too
    assert sla_trail(item)[-2:] == [("ack", "fulfilled"), ("resolve", "fulfilled")]


def test_resolving_a_resolved_item_conflicts(item, ops_person):
    exception_resolve(item=item, by=ops_person, resolution="spam")
    with pytest.raises(ExceptionConflict, match="already resolved \\(Spam\\)"):
        exception_resolve(item=item, by=ops_person, resolution="duplicate")


def test_reopen_restarts_both_clocks(item, ops_person):
    with time_machine.travel(T0 + dt.timedelta(minutes=20), tick=False):
        exception_resolve(item=item, by=ops_person, resolution="spam")
    with time_machine.travel(T0 + dt.timedelta(hours=1), tick=False):
        reopened = exception_reopen(item=item, by=ops_person)
    assert reopened.status == ExceptionStatus.OPEN
    assert (reopened.resolution, reopened.acknowledged_at, reopened.resolved_at) == ("", None, None)
    assert reopened.ack_due_at == T0 + dt.timedelta(minutes=90)
    assert sla_trail(item)[-2:] == [("ack", "started"), ("resolve", "started")]
    with pytest.raises(ExceptionConflict, match="it is open"):
        exception_reopen(item=reopened, by=ops_person)


def test_waiting_pauses_the_resolve_clock_and_resume_restores_the_time_left(item, ops_person):
    with time_machine.travel(T0 + dt.timedelta(hours=1), tick=False):
        waiting = exception_mark_waiting(item=item, by=ops_person, note="asked the customer")
    assert waiting.status == ExceptionStatus.WAITING and waiting.resolve_remaining_seconds == 3 * 3600
    with time_machine.travel(T0 + dt.timedelta(hours=6), tick=False):  # five hours of waiting
        resumed = exception_resume(item=waiting, by=ops_person)
    assert resumed.status == ExceptionStatus.ACKNOWLEDGED
    assert resumed.resolve_due_at == T0 + dt.timedelta(hours=9)  # 6 h now + the 3 h that were left
    assert sla_trail(item)[-2:] == [("resolve", "paused"), ("resolve", "resumed")]


def test_waiting_items_cannot_be_acknowledged(item, ops_person):
    exception_mark_waiting(item=item, by=ops_person)
    with pytest.raises(ExceptionConflict, match="waiting since"):
        exception_acknowledge(item=item, by=ops_person)


def test_assign_with_a_stale_version_is_refused(item, ops_person):
    pat = UserFactory(username="pat")
    exception_assign(item=item, to=pat, by=ops_person, expected_version=item.version)
    with pytest.raises(ExceptionConflict, match="changed since you opened it"):
        exception_assign(item=item, to=ops_person, by=ops_person, expected_version=item.version)
    assert ExceptionItem.objects.get(pk=item.pk).assignee == pat


def test_assign_to_an_inactive_account_is_refused(item, ops_person):
    with pytest.raises(InvalidAction, match="not an active account"):
        exception_assign(item=item, to=UserFactory(is_active=False), by=ops_person)


def test_bulk_acknowledge_takes_the_open_ones_and_explains_the_rest(ops_person):
    queue = QueueFactory(name="Triage")
    items = [open_exception(queue=queue) for _ in range(4)]
    exception_resolve(item=items[3], by=ops_person, resolution="spam")
    done, skipped = exceptions_bulk_acknowledge(item_ids=[i.pk for i in items], by=ops_person)
    assert sorted(done) == sorted(i.pk for i in items[:3])
    assert len(skipped) == 1 and f"Item #{items[3].pk} was not acknowledged: it is already resolved" in skipped[0]
    assert AuditEvent.objects.filter(action=AuditAction.EXCEPTION_ACKNOWLEDGED).count() == 3
    assert SlaEvent.objects.filter(kind="fulfilled", clock="ack").count() == 4  # 3 now + 1 when resolved


def test_bulk_assign(ops_person):
    queue = QueueFactory(name="Triage")
    items = [open_exception(queue=queue) for _ in range(3)]
    pat = UserFactory(username="pat")
    done, skipped = exceptions_bulk_assign(item_ids=[i.pk for i in items], to=pat, by=ops_person)
    assert (len(done), skipped) == (3, [])
    assert set(ExceptionItem.objects.values_list("assignee__username", flat=True)) == {"pat"}


@pytest.mark.django_db(transaction=True)
def test_two_people_acknowledging_at_once_exactly_one_wins():
    item = open_exception(queue=QueueFactory(name="Triage"))
    people = [UserFactory(username=f"ops{i}") for i in range(2)]
    barrier, outcomes = threading.Barrier(2), []

    def act(person):
        try:
            barrier.wait()
            exception_acknowledge(item=ExceptionItem.objects.get(pk=item.pk), by=person)
            outcomes.append("won")
        except ExceptionConflict as conflict:
            outcomes.append(conflict.message)
        finally:
            connection.close()

    threads = [threading.Thread(target=act, args=(p,)) for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes)[-1] == "won" and outcomes.count("won") == 1
    assert "already acknowledged by" in sorted(outcomes)[0]
    assert AuditEvent.objects.filter(exception=item, action=AuditAction.EXCEPTION_ACKNOWLEDGED).count() == 1


def test_sla_flags_judge_each_clock_by_its_own_due_time(item, ops_person):
    with time_machine.travel(T0 + dt.timedelta(minutes=100), tick=False):  # acknowledge was due at 30
        exception_resolve(item=item, by=ops_person, resolution="spam")
    flags = dict(SlaEvent.objects.filter(item=item, kind="fulfilled").values_list("clock", "data__within_sla"))
    assert flags == {"ack": False, "resolve": True}


def test_resolving_a_waiting_item_is_in_time_if_time_was_left(item, ops_person):
    with time_machine.travel(T0 + dt.timedelta(minutes=10), tick=False):
        waiting = exception_mark_waiting(item=item, by=ops_person)
    with time_machine.travel(T0 + dt.timedelta(hours=6), tick=False):  # past the old due time, but paused
        exception_resolve(item=waiting, by=ops_person, resolution="fixed_data")
    event = SlaEvent.objects.get(item=item, clock="resolve", kind="fulfilled")
    assert event.data == {"within_sla": True}
    assert SlaEvent.objects.filter(item=item, clock="ack", kind="fulfilled").count() == 1  # waiting acknowledged it


def test_a_late_acknowledge_before_any_sweep_is_recorded_as_a_breach(item, ops_person):
    """The sweep stamps breaches once a minute; an acknowledge that comes after the due time first must not
    count as met (the dashboard's adherence reads the stamp)."""
    late = T0 + dt.timedelta(minutes=30, seconds=20)
    with time_machine.travel(late, tick=False):
        item = exception_acknowledge(item=item, by=ops_person)
    assert item.ack_breached_at == late and item.is_breached
    assert sla_trail(item)[-2:] == [("ack", "breached"), ("ack", "fulfilled")]
    breach = SlaEvent.objects.get(item=item, kind="breached")
    assert breach.data == {"by": "late action"}


def test_an_acknowledge_in_time_stamps_no_breach(item, ops_person):
    with time_machine.travel(T0 + dt.timedelta(minutes=29), tick=False):
        item = exception_acknowledge(item=item, by=ops_person)
    assert item.ack_breached_at is None
    assert not SlaEvent.objects.filter(item=item, kind="breached").exists()


def test_a_late_resolve_before_any_sweep_is_recorded_as_a_breach_of_both_clocks(item, ops_person):
    late = T0 + dt.timedelta(hours=4, seconds=5)
    with time_machine.travel(late, tick=False):
        item = exception_resolve(item=item, by=ops_person, resolution="duplicate", note="seen")
    assert (item.ack_breached_at, item.resolve_breached_at) == (late, late)


def test_resolving_a_waiting_item_after_its_old_due_time_is_not_a_breach(item, ops_person):
    with time_machine.travel(T0 + dt.timedelta(minutes=10), tick=False):
        item = exception_acknowledge(item=item, by=ops_person)
        item = exception_mark_waiting(item=item, by=ops_person, note="customer")
    with time_machine.travel(T0 + dt.timedelta(hours=5), tick=False):  # the paused clock had time left
        item = exception_resolve(item=item, by=ops_person, resolution="duplicate", note="seen")
    assert item.resolve_breached_at is None
