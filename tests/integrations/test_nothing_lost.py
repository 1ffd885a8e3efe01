"""At-least-once delivery through a real Celery worker and Redis broker to a real local HTTP server that fails
at random: every event arrives, repeats are recognisable by idempotency key, and every request the target saw
has its receipt. A publish lost after commit is made good by the beat sweep."""

import datetime as dt
import time
from collections import Counter, defaultdict

import pytest
from django.db import transaction
from django.utils import timezone

from routing.integrations.deadletter import dead_letters_replay
from routing.integrations.models import DeliveryAttempt, EventType, OutboxEvent, OutboxStatus
from routing.integrations.outbox import events_emit
from routing.integrations.tasks import deliveries_due
from tests.conftest import queue_drained, wait_until
from tests.factories import DeliveryTargetFactory, OutboxEventFactory
from tests.integrations.fake_target import status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]

EVENTS = 1_000


def delivered_count(ids) -> int:
    return OutboxEvent.objects.filter(pk__in=ids, status=OutboxStatus.DELIVERED).count()


def wait_for_delivery(ids, *, stall_seconds=30.0, cap_seconds=240.0):
    """Wait until every event is delivered. A lost event shows as a stall (no delivery for `stall_seconds`,
    far longer than any retry wait here); a slow machine only makes the wait longer, up to `cap_seconds`."""
    began = last_progress = time.monotonic()
    done = -1
    while time.monotonic() - last_progress < stall_seconds and time.monotonic() - began < cap_seconds:
        now_done = delivered_count(ids)
        if now_done == len(ids):
            return time.monotonic() - began
        if now_done != done:
            done, last_progress = now_done, time.monotonic()
        time.sleep(0.2)
    stuck = OutboxEvent.objects.filter(pk__in=ids).exclude(status=OutboxStatus.DELIVERED).order_by("pk")
    states = Counter(stuck.values_list("status", "attempts"))
    sample = list(stuck.values("pk", "status", "attempts", "next_attempt_at", "last_error")[:5])
    raise AssertionError(f"{done} of {len(ids)} delivered; not delivered by (status, attempts): {states}; {sample}")


def all_answered(fake_target) -> bool:
    """The server records the status it sent just after sending it; wait for the last of those to land."""
    with fake_target._lock:
        return all(r.answered is not None for r in fake_target.received)


def test_a_thousand_events_to_a_flaky_target_all_arrive_and_every_request_has_a_receipt(celery_worker, fake_target):
    fake_target.failure_rate = 0.3  # 30% of requests answered 500; 30 attempts make a loss ~0.3^30 per event
    target = DeliveryTargetFactory(name="Flaky CRM", url=fake_target.url, max_attempts=30, timeout_seconds=5)

    ids = []
    for n in range(EVENTS):
        with transaction.atomic():  # the change and its outbox row commit together; on_commit publishes
            ids += [e.pk for e in events_emit(event_type=EventType.LEAD_ASSIGNED, payload=lambda n=n: {"n": n})]
    assert len(ids) == EVENTS

    wait_for_delivery(ids)
    wait_until(lambda: all_answered(fake_target), timeout=5, what="the target to finish answering")

    events = list(OutboxEvent.objects.filter(pk__in=ids))
    keys = {str(e.idempotency_key) for e in events}
    assert len(keys) == EVENTS and {e.target_id for e in events} == {target.pk}

    # Every event arrived; any repeat carries a key already seen, so the receiver can drop it.
    accepted = fake_target.delivered_keys()
    assert set(accepted) == keys
    assert len(accepted) >= EVENTS
    assert sum(r.answered == 500 for r in fake_target.received) > 0  # the target really did fail

    # One receipt per request the target saw, per event and in the same order, answer for answer.
    seen = defaultdict(list)
    for request in fake_target.received:
        seen[request.message_id].append(request.answered)
    assert set(seen) == keys
    receipts = defaultdict(list)
    for key, code in DeliveryAttempt.objects.filter(event__in=ids).values_list(
        "event__idempotency_key", "status_code"
    ):  # ordered by event, number
        receipts[str(key)].append(code)
    assert receipts == seen
    assert DeliveryAttempt.objects.filter(event__in=ids).count() == len(fake_target.received)
    assert all(e.attempts == len(seen[str(e.idempotency_key)]) for e in events)
    assert all(e.attempts <= 30 and e.delivered_at and e.last_error == "" for e in events)


def test_pending_events_whose_publish_was_lost_are_sent_by_the_beat_sweep(celery_worker, fake_target):
    target = DeliveryTargetFactory(name="CRM", url=fake_target.url)
    now = timezone.now()
    # Written without events_emit, so nothing was published: a broker that went away just after commit.
    fresh = OutboxEventFactory(target=target)
    # A retry whose delayed publish was lost (the worker died holding it): two attempts made, due again.
    retrying = OutboxEventFactory(
        target=target, attempts=2, last_error="HTTP 503: busy", next_attempt_at=now - dt.timedelta(seconds=5)
    )
    later = OutboxEventFactory(target=target, next_attempt_at=now + dt.timedelta(hours=1))

    wait_until(queue_drained, what="an idle worker")
    assert fake_target.received == []  # no publish, no delivery: only the sweep can find them

    deliveries_due.delay()  # the beat tick, published to the broker; the worker runs it and what it queues

    wait_until(lambda: delivered_count([fresh.pk, retrying.pk]) == 2, what="the swept events to be delivered")
    wait_until(queue_drained, what="the worker to finish")
    assert sorted(r.message_id for r in fake_target.received) == sorted(
        [str(fresh.idempotency_key), str(retrying.idempotency_key)]
    )
    retrying.refresh_from_db()
    assert retrying.attempts == 3 and retrying.last_error == ""
    later.refresh_from_db()
    assert (later.status, later.attempts) == (OutboxStatus.PENDING, 0)  # not due yet: left alone


def test_a_replayed_dead_letter_is_sent_again_by_the_worker(celery_worker, fake_target, ops_person):
    DeliveryTargetFactory(name="CRM", url=fake_target.url)
    fake_target.script = [status(422)]
    with transaction.atomic():
        (event,) = events_emit(event_type=EventType.LEAD_ASSIGNED, payload=lambda: {"n": 1})
    wait_until(
        lambda: OutboxEvent.objects.filter(pk=event.pk, status=OutboxStatus.DEAD).exists(),
        what="the event to be dead-lettered",
    )

    dead_letters_replay(event_ids=[event.pk], by=ops_person)  # commits, then publishes

    wait_until(lambda: delivered_count([event.pk]) == 1, what="the replayed event to be delivered")
    assert [(r.status_code, r.replay) for r in DeliveryAttempt.objects.filter(event=event)] == [
        (422, False),
        (200, True),
    ]
    assert [r.message_id for r in fake_target.received] == [str(event.idempotency_key)] * 2
