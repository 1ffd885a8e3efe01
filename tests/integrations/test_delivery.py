"""Delivery against a real local HTTP server: signatures a receiver can verify (the schemes in detail:
test_standard_webhooks.py), receipts, retries and their spacing, Retry-After, timeouts, dropped connections,
dead-lettering with a delivery_failed exception."""

import json
import time

import pytest
from standardwebhooks import Webhook

from exceptions.models import ExceptionReason
from routing.integrations.delivery import event_deliver
from routing.integrations.models import OutboxStatus
from routing.integrations.signing import whsec_form
from routing.services import lead_route
from tests.factories import DeliveryTargetFactory, LeadFactory, MembershipFactory, QueueFactory, RuleFactory
from tests.integrations.fake_target import DROP, hang, status

pytestmark = pytest.mark.django_db


@pytest.fixture
def routed(fake_target):
    """A target subscribed to every event, and a lead routed to Sales: one lead.assigned event queued."""
    target = DeliveryTargetFactory(name="CRM", url=fake_target.url, secret="whsec-crm")
    queue = QueueFactory(name="Sales")
    MembershipFactory(queue=queue, user__username="sam")
    RuleFactory(queue=queue)
    lead = LeadFactory(lead_id="wf-1")
    lead_route(lead_id=lead.pk)
    (event,) = target.events_out.all()
    return target, lead, event


def deliver_until_settled(event, *, limit=20):
    """Attempt the event whenever it is due, as the worker and the beat sweep would, until it settles."""
    for _ in range(limit):
        event.refresh_from_db()
        if event.status != OutboxStatus.PENDING:
            return event
        wait = event.next_attempt_at.timestamp() - time.time()
        if wait > 0:
            time.sleep(wait)
        event_deliver(event_id=event.pk)
    event.refresh_from_db()
    return event


def test_an_assignment_is_delivered_signed_with_a_stable_webhook_id_and_a_receipt(routed, fake_target):
    target, lead, event = routed
    assert event_deliver(event_id=event.pk).status == OutboxStatus.DELIVERED
    (request,) = fake_target.received
    body = json.loads(request.body)
    assert Webhook(whsec_form("whsec-crm")).verify(request.body, request.headers) == body  # Standard Webhooks
    assert request.headers["webhook-id"] == str(event.idempotency_key) == body["id"]
    assert body["type"] == "lead.assigned"
    assert (body["data"]["lead"]["lead_id"], body["data"]["queue"], body["data"]["assignee"]["username"]) == (
        "wf-1",
        "Sales",
        "sam",
    )
    (receipt,) = event.receipts.all()
    assert (receipt.number, receipt.status_code, receipt.error) == (1, 200, "")
    assert receipt.latency_ms >= 0


def test_500s_are_retried_with_growing_waits_then_delivered(routed, fake_target, settings):
    settings.HANDOFF = {**settings.HANDOFF, "DELIVERY_RETRY_BASE_SECONDS": 0.2}
    _, _, event = routed
    fake_target.script = [status(500), status(502), status(503)]
    event = deliver_until_settled(event)
    assert event.status == OutboxStatus.DELIVERED
    assert [r.status_code for r in event.receipts.all()] == [500, 502, 503, 200]
    arrivals = [r.at for r in fake_target.received]
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False)]
    # 0.2 s × 2^(n-1), ±20% jitter: 0.16–0.24, 0.32–0.48, 0.64–0.96 (plus scheduling slack)
    assert 0.16 <= gaps[0] < 0.4 and 0.32 <= gaps[1] < 0.7 and 0.64 <= gaps[2] < 1.3, gaps
    assert {r.message_id for r in fake_target.received} == {str(event.idempotency_key)}


def test_429_waits_as_long_as_retry_after_asks(routed, fake_target, settings):
    settings.HANDOFF = {**settings.HANDOFF, "DELIVERY_RETRY_BASE_SECONDS": 0.05}
    _, _, event = routed
    fake_target.script = [status(429, Retry_After="1")]
    event = deliver_until_settled(event)
    assert event.status == OutboxStatus.DELIVERED
    first, second = fake_target.received
    assert second.at - first.at >= 0.95
    assert event.receipts.first().retry_after_seconds == 1


def test_a_timeout_and_a_dropped_connection_are_retried(routed, fake_target, settings):
    settings.HANDOFF = {**settings.HANDOFF, "DELIVERY_RETRY_BASE_SECONDS": 0.05}
    target, _, event = routed
    target.timeout_seconds = 0.3
    target.save()
    fake_target.script = [hang(1.0), DROP]
    event = deliver_until_settled(event)
    assert event.status == OutboxStatus.DELIVERED
    timeout, dropped, ok = event.receipts.all()
    assert timeout.status_code is None and "timeout after 0.3 s" in timeout.error
    assert dropped.status_code is None and dropped.error
    assert ok.status_code == 200


def test_a_4xx_retrying_cannot_fix_dead_letters_at_once_and_opens_delivery_failed(routed, fake_target):
    _, lead, event = routed
    fake_target.script = [status(422)]
    event = deliver_until_settled(event)
    assert (event.status, event.attempts) == (OutboxStatus.DEAD, 1)
    assert "HTTP 422" in event.last_error
    item = lead.exceptions.get(reason=ExceptionReason.DELIVERY_FAILED)
    assert "lead.assigned to CRM failed (not retryable): HTTP 422" in item.detail


def test_after_the_last_attempt_the_event_is_dead_lettered(routed, fake_target, settings):
    settings.HANDOFF = {**settings.HANDOFF, "DELIVERY_RETRY_BASE_SECONDS": 0.01}
    target, lead, event = routed
    target.max_attempts = 3
    target.save()
    fake_target.default = status(503)
    event = deliver_until_settled(event)
    assert (event.status, event.attempts, event.receipts.count()) == (OutboxStatus.DEAD, 3, 3)
    assert lead.exceptions.filter(reason=ExceptionReason.DELIVERY_FAILED).count() == 1


def test_a_delivered_or_not_yet_due_event_is_not_sent_again(routed, fake_target):
    _, _, event = routed
    event_deliver(event_id=event.pk)
    assert event_deliver(event_id=event.pk) is None
    assert len(fake_target.received) == 1


def test_no_target_no_event_and_inactive_or_unsubscribed_targets_get_nothing(fake_target):
    DeliveryTargetFactory(url=fake_target.url, is_active=False)
    DeliveryTargetFactory(url=fake_target.url, events=["exception.resolved"])
    queue = QueueFactory()
    MembershipFactory(queue=queue)
    RuleFactory(queue=queue)
    lead = LeadFactory()
    lead_route(lead_id=lead.pk)
    from routing.integrations.models import OutboxEvent

    assert not OutboxEvent.objects.exists()
