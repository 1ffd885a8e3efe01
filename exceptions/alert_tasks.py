"""Celery tasks for alerting (exceptions.alerts, exceptions.alert_delivery): thin wrappers on the deliveries
lane; every step is idempotent (claims are conditional UPDATEs). Registered through exceptions.tasks."""

import logging

from celery import shared_task

from exceptions import alert_delivery
from routing.dispatch import TaskName, alerts_enqueue

logger = logging.getLogger(__name__)
CHUNK = 50


@shared_task(name=TaskName.SEND_ALERTS, acks_late=True, reject_on_worker_lost=True)
def send_alerts(message_ids: list[int]) -> int:
    """One attempt at each due message; one not due, claimed elsewhere or waiting for its alert's earlier
    message is skipped (published again when that one is settled, or by the beat sweep)."""
    done = 0
    for message_id in message_ids:
        try:
            done += alert_delivery.alert_send(message_id=message_id) is not None
        except Exception:
            # The message stays pending under its lease; the beat sweep tries it again when the lease ends.
            logger.exception("Sending alert message %s failed unexpectedly.", message_id)
    return done


@shared_task(name=TaskName.ALERTS_DUE, acks_late=True)
def alerts_due() -> int:
    """Beat: publish pending alert messages whose next attempt has come (lost publishes, lost retries)."""
    ids = alert_delivery.alerts_due()
    for start in range(0, len(ids), CHUNK):
        alerts_enqueue(ids[start : start + CHUNK])
    return len(ids)
