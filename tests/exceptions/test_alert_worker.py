"""The round trip through a real Celery worker and Redis: an item opens → PagerDuty is triggered (after a rate
limit) → PagerDuty's webhook says acknowledged → the item is acknowledged in Handoff → resolving it in Handoff
sends PagerDuty the resolve, and never an acknowledge echoed back."""

import pytest

from exceptions.models import AlertMessage, AlertMessageStatus, ExceptionItem, ExceptionStatus
from exceptions.services import exception_open, exception_resolve
from tests.conftest import wait_until
from tests.exceptions.fake_incident_tools import (
    FakePagerDuty,
    pagerduty_webhook_body,
    post_webhook,
    rate_limited,
    signed,
)
from tests.factories import AlertChannelFactory, LeadFactory, QueueFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]


@pytest.fixture
def pagerduty():
    server = FakePagerDuty().start()
    yield server
    server.stop()


def test_trigger_acknowledge_in_pagerduty_then_resolve_in_handoff(celery_worker, pagerduty, client):
    triage = QueueFactory(name="Triage")
    AlertChannelFactory(queue=triage, url=pagerduty.url)
    pagerduty.script = [rate_limited(1)]  # the first try is told to come back in a second
    item = exception_open(lead=LeadFactory(lead_id="wf-7"), reason="no_matching_rule", queue=triage)
    key = f"handoff-exception-{item.pk}"
    wait_until(lambda: pagerduty.alerts.get(key) == ["trigger"], what="the worker to trigger PagerDuty")
    assert [r.answered for r in pagerduty.received] == [429, 202]

    body = pagerduty_webhook_body("incident.acknowledged", key)
    assert post_webhook(client, body, signed(body)).json()["outcome"] == "acknowledged"
    item.refresh_from_db()
    assert (item.status, item.acknowledged_by.username) == (ExceptionStatus.ACKNOWLEDGED, "pagerduty")

    exception_resolve(item=item, by=UserFactory(username="olga"), resolution="fixed_data", note="email fixed")
    wait_until(lambda: pagerduty.alerts.get(key) == ["trigger", "resolve"], what="the worker to send the resolve")
    wait_until(
        lambda: set(AlertMessage.objects.values_list("status", flat=True)) == {AlertMessageStatus.SENT},
        what="every message to be recorded as sent",
    )
    assert list(AlertMessage.objects.order_by("pk").values_list("action", flat=True)) == ["trigger", "resolve"]
    assert ExceptionItem.objects.get().status == ExceptionStatus.RESOLVED
