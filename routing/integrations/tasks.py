"""Celery tasks for delivery: thin wrappers; every step is idempotent (claims are conditional UPDATEs)."""

import logging

from celery import shared_task

from routing.dispatch import TaskName, deliveries_enqueue
from routing.integrations.delivery import event_deliver, events_due

logger = logging.getLogger(__name__)
CHUNK = 50


@shared_task(name=TaskName.DELIVER_EVENTS, acks_late=True, reject_on_worker_lost=True)
def deliver_events(event_ids: list[int]) -> int:
    """One attempt at each due event; an event not due yet or claimed elsewhere is skipped."""
    done = 0
    for event_id in event_ids:
        try:
            done += event_deliver(event_id=event_id) is not None
        except Exception:
            # The event stays pending under its lease; the beat sweep tries it again when the lease ends.
            logger.exception("Delivering event %s failed unexpectedly.", event_id)
    return done


@shared_task(name=TaskName.DELIVERIES_DUE, acks_late=True)
def deliveries_due() -> int:
    """Beat: publish pending events whose next attempt has come (lost publishes, lost retries)."""
    ids = events_due()
    for start in range(0, len(ids), CHUNK):
        deliveries_enqueue(ids[start : start + CHUNK])
    return len(ids)
