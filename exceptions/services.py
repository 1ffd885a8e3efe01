import datetime as dt

from django.conf import settings
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from exceptions.models import UNRESOLVED, ExceptionItem
from routing.models import Queue


def triage_queue() -> Queue:
    queue, _ = Queue.objects.get_or_create(name=settings.HANDOFF["TRIAGE_QUEUE"])
    return queue


def exception_due_times(*, queue: Queue, opened_at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    return (
        opened_at + dt.timedelta(minutes=queue.ack_sla_minutes),
        opened_at + dt.timedelta(minutes=queue.resolve_sla_minutes),
    )


def exception_open(
    *, lead, reason: str, detail: str = "", queue: Queue | None = None, at: dt.datetime | None = None
) -> ExceptionItem:
    """Open an exception for the lead, or return the unresolved one it already has for this reason."""
    current = ExceptionItem.objects.filter(UNRESOLVED, lead=lead, reason=reason).first()
    if current is not None:
        return current
    queue = queue or triage_queue()
    opened_at = at or timezone.now()
    ack_due_at, resolve_due_at = exception_due_times(queue=queue, opened_at=opened_at)
    item = ExceptionItem.objects.create(
        lead=lead,
        reason=reason,
        detail=detail,
        queue=queue,
        opened_at=opened_at,
        ack_due_at=ack_due_at,
        resolve_due_at=resolve_due_at,
    )
    audit_record(
        action=AuditAction.EXCEPTION_OPENED,
        lead=lead,
        outcome=reason,
        at=opened_at,
        data={
            "exception_id": item.id,
            "queue": queue.name,
            "detail": detail,
            "ack_due_at": ack_due_at,
            "resolve_due_at": resolve_due_at,
        },
    )
    return item
