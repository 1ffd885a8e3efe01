"""Beat tasks for the exception queues: thin wrappers around the sweep, its record step and the notification sender."""

import logging

from celery import shared_task
from django.utils import timezone

from exceptions.alert_tasks import alerts_due, send_alerts  # noqa: F401 - registers the alerting tasks
from exceptions.notifications import NOTIFICATION_BATCH, notifications_send_due
from exceptions.root_cause import previous_month, root_cause_report_send
from exceptions.routing_sla import routing_sla_sweep
from exceptions.sweep import sla_sweep, sweep_record
from routing.dispatch import TaskName, sweep_record_enqueue

logger = logging.getLogger(__name__)


@shared_task(name=TaskName.SLA_SWEEP, acks_late=True, reject_on_worker_lost=True)
def sla_sweep_task() -> dict:
    """Stamp (short transactions an acknowledge never waits long behind), then leave the SLA events and
    notifications to a follow-up task, so the beat tick is done as soon as the stamps are."""
    report = sla_sweep(record=False)
    sweep_record_enqueue()
    if report.ack_breached or report.resolve_breached or any(report.escalated.values()):
        logger.info("SLA sweep: %s", report)
    return {
        "ack_breached": report.ack_breached,
        "resolve_breached": report.resolve_breached,
        "escalated": report.escalated,
        "reminded": report.reminded,
        "reassigned": report.reassigned,
    }


@shared_task(name=TaskName.ROUTING_SLA_SWEEP, acks_late=True, reject_on_worker_lost=True)
def routing_sla_sweep_task() -> dict:
    """Leads unassigned past their SLA get a routing_sla_breached item; assigned leads close theirs. Idempotent:
    a redelivered or duplicate tick finds the items already there (exceptions.routing_sla)."""
    report = routing_sla_sweep()
    if report.opened or report.closed:
        logger.info("Routing SLA sweep: %s", report)
    return {
        "opened": report.opened,
        "escalated": report.escalated,
        "unreached": report.unreached,
        "closed": report.closed,
    }


@shared_task(name=TaskName.SLA_SWEEP_RECORD, acks_late=True, reject_on_worker_lost=True)
def sla_sweep_record_task() -> int:
    """The sweep's record step: every sweep batch waiting becomes SLA events and grouped notifications.
    Idempotent: batches are claimed with SKIP LOCKED and deleted as they are recorded."""
    return sweep_record()


@shared_task(name=TaskName.SEND_NOTIFICATIONS, acks_late=True, reject_on_worker_lost=True)
def send_notifications_task(max_batches: int = 50) -> int:
    """Send what is due in batches of 1,000 until nothing is left (or 50 batches, then the next tick). A batch
    not sent in full (fewer due, or the mail server failing: logged once) ends the run."""
    sent = 0
    for _ in range(max_batches):
        batch = notifications_send_due(limit=NOTIFICATION_BATCH)
        sent += batch
        if batch < NOTIFICATION_BATCH:
            break
    return sent


@shared_task(name=TaskName.ROOT_CAUSE_REPORT, acks_late=True)
def root_cause_report_task() -> int:
    """Beat, the first days of each month: last month's root-cause report by email (once; see root_cause)."""
    return root_cause_report_send(month=previous_month(timezone.now().date()))
