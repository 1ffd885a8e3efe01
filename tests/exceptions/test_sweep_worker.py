"""The SLA sweep through a real Celery worker and Redis: the beat task stamps, then its follow-up task
records the SLA events and grouped notifications."""

import datetime as dt

import pytest
from django.utils import timezone

from config.celery import app
from exceptions.models import ExceptionItem, Notification, SlaEvent, SweepBatch
from exceptions.services import Opening, exceptions_open
from routing.dispatch import TaskName
from tests.conftest import queue_drained, wait_until
from tests.factories import LeadFactory, QueueFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]


def test_the_beat_sweep_stamps_and_its_follow_up_records_events_and_one_notification(celery_worker_process):
    owner = UserFactory(username="owner", email="owner@example.com")
    queue = QueueFactory(name="Triage", ack_sla_minutes=30, owner=owner)
    leads = LeadFactory.create_batch(12, intent_score=10)
    items = exceptions_open(
        openings=[Opening(lead=lead, reason="no_matching_rule", queue=queue) for lead in leads],
        at=timezone.now() - dt.timedelta(minutes=45),
    )
    app.send_task(TaskName.SLA_SWEEP)
    wait_until(
        lambda: SlaEvent.objects.filter(kind="escalated", data__by="sweep").count() == 12,
        what="the sweep's follow-up task to record the escalations",
    )
    wait_until(queue_drained, what="the worker to finish")
    assert not SweepBatch.objects.exists()
    assert set(ExceptionItem.objects.values_list("escalation_level", flat=True)) == {1}
    assert SlaEvent.objects.filter(kind="breached", data__by="sweep").count() == 12
    (note,) = Notification.objects.all()
    assert (note.kind, note.recipient, note.item_count) == ("escalation_1", owner, 12)
    assert sorted(note.item_ids) == sorted(i.pk for i in items)
