"""Beat tasks for the exception queues: thin wrappers around the sweep and the notification sender."""

import logging

from celery import shared_task

from exceptions.notifications import notifications_send_due
from exceptions.sweep import sla_sweep
from routing.dispatch import TaskName

logger = logging.getLogger(__name__)


@shared_task(name=TaskName.SLA_SWEEP, acks_late=True, reject_on_worker_lost=True)
def sla_sweep_task() -> dict:
    report = sla_sweep()
    if report.ack_breached or report.resolve_breached or any(report.escalated.values()):
        logger.info("SLA sweep: %s", report)
    return {
        "ack_breached": report.ack_breached,
        "resolve_breached": report.resolve_breached,
        "escalated": report.escalated,
        "reminded": report.reminded,
        "reassigned": report.reassigned,
    }


@shared_task(name=TaskName.SEND_NOTIFICATIONS, acks_late=True, reject_on_worker_lost=True)
def send_notifications_task(max_batches: int = 50) -> int:
    """Send what is due in batches of 1,000 until nothing is left (or 50 batches, then the next tick)."""
    sent = 0
    for _ in range(max_batches):
        batch = notifications_send_due()
        sent += batch
        if batch == 0:
            break
    return sent
