"""What a late action stamps: a breach only for the clock that was still running when it came."""

import datetime as dt

import pytest
import time_machine

from exceptions.bulk import exceptions_bulk
from exceptions.models import SlaEvent
from exceptions.services import exception_acknowledge, exception_resolve
from tests.factories import QueueFactory, open_exception

pytestmark = pytest.mark.django_db


@pytest.fixture
def item():
    return open_exception(queue=QueueFactory(name="Triage", ack_sla_minutes=30, resolve_sla_minutes=240))


def test_an_item_acknowledged_in_time_and_resolved_after_the_ack_due_time_did_not_breach_acknowledge(item, ops_person):
    exception_acknowledge(item=item, by=ops_person)
    with time_machine.travel(item.ack_due_at + dt.timedelta(minutes=20), tick=False):
        resolved = exception_resolve(item=item, by=ops_person, resolution="fixed_data")
    assert resolved.ack_breached_at is None and resolved.resolve_breached_at is None
    assert not SlaEvent.objects.filter(item=item, kind="breached").exists()


def test_an_open_item_resolved_after_its_ack_due_time_breached_acknowledge(item, ops_person):
    late = item.ack_due_at + dt.timedelta(minutes=1)
    with time_machine.travel(late, tick=False):
        resolved = exception_resolve(item=item, by=ops_person, resolution="fixed_data")
    assert resolved.ack_breached_at == late


def test_a_late_bulk_acknowledge_records_the_breach_as_one_by_one_does(item, ops_person):
    late = item.ack_due_at + dt.timedelta(minutes=1)
    with time_machine.travel(late, tick=False):
        exceptions_bulk(action="acknowledge", item_ids=[item.pk], by=ops_person)
    item.refresh_from_db()
    assert item.ack_breached_at == late
    (breach,) = SlaEvent.objects.filter(item=item, kind="breached")
    assert (breach.clock, breach.data) == ("ack", {"by": "late action"})
    assert SlaEvent.objects.get(item=item, kind="fulfilled").data == {"within_sla": False}
