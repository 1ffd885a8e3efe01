"""A lead held because everyone in its queue is away, through a real Celery worker and Redis broker: posted
while nobody is in, held; routed by the worker once the beat task releases it when someone's hours start."""

import datetime as dt
import json

import pytest
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from routing.availability.schedule import DAYS
from routing.availability.tasks import release_waiting_leads_task
from routing.models import EveryoneAway, Lead, LeadStatus
from tests.conftest import wait_until
from tests.factories import (
    LeadPayloadFactory,
    MembershipFactory,
    QueueFactory,
    RuleFactory,
    TimeOffFactory,
    UserFactory,
    WorkingHoursFactory,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]


def outcomes(lead_id):
    return list(
        AuditEvent.objects.filter(lead_id=lead_id, action=AuditAction.ROUTING_DECISION)
        .order_by("id")
        .values_list("outcome", flat=True)
    )


def test_a_lead_held_while_everyone_is_away_is_routed_by_the_worker_once_someone_is_in(
    celery_worker, source_client, rule_owner
):
    queue = QueueFactory(name="Holding AEs", when_everyone_away=EveryoneAway.HOLD)
    ann = MembershipFactory(queue=queue, user=UserFactory(username="ann")).user
    WorkingHoursFactory(user=ann, hours={day: [["00:00", "24:00"]] for day in DAYS})  # in around the clock
    now = timezone.now()
    away = TimeOffFactory(user=ann, start=now - dt.timedelta(hours=1), end=now + dt.timedelta(hours=2))
    RuleFactory(
        name="MQL to holding AEs",
        condition={"field": "lifecycle_stage", "op": "eq", "value": "mql"},
        queue=queue,
        owner=rule_owner,
    )

    response = source_client.post(
        "/api/v1/leads/", data=json.dumps(LeadPayloadFactory(lifecycle_stage="mql")), content_type="application/json"
    )
    assert response.status_code == 202
    lead_id = response.json()["id"]
    wait_until(lambda: outcomes(lead_id) == ["held"], what="the worker to hold the lead")
    lead = Lead.objects.get(pk=lead_id)
    assert (lead.status, lead.assignee, lead.queue) == (LeadStatus.RECEIVED, None, queue)
    assert lead.waiting_until == away.end  # back when the time off ends
    assert release_waiting_leads_task() == 0  # the beat tick before then releases nothing

    # ann comes back early: her time off ends now, and the lead's hold with it; the next beat tick releases it.
    back = timezone.now()
    away.end = back
    away.save()
    Lead.objects.filter(pk=lead_id).update(waiting_until=back)
    assert release_waiting_leads_task() == 1

    wait_until(lambda: outcomes(lead_id) == ["held", "assigned"], what="the worker to route the released lead")
    lead.refresh_from_db()
    assert (lead.status, lead.assignee, lead.waiting_until) == (LeadStatus.ASSIGNED, ann, None)
    assert source_client.get(f"/api/v1/leads/{lead_id}/").json()["waiting_until"] is None
