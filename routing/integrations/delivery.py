"""The delivery policy: at-least-once, with a receipt per attempt. (Writing and signing the events is
routing/integrations/outbox.py; `events_emit` asks for delivery once its transaction commits, and beat's
`deliveries_due` sends whatever is pending and due, so a publish lost after commit only delays an event.)

1. `event_deliver` claims a due event with a conditional UPDATE that also pushes its next attempt past the
   request's timeout (a lease): two workers never send the same attempt, and a worker that dies mid-request
   leaves the event to be claimed again when the lease runs out. The HTTP request runs outside any
   transaction.
2. The answer is recorded with a conditional UPDATE: delivered (and confirmed, for a target whose 2xx is its
   receipt: routing/integrations/handoff.py); retry later (timeouts, connection errors,
   5xx, 408/409/425/429, honouring Retry-After); or dead-lettered after the last attempt or a 4xx that
   retrying cannot fix, which opens a `delivery_failed` exception for the lead.
"""

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from config.logs import log_context
from exceptions.incidents import delivery_cause
from exceptions.models import ExceptionReason
from exceptions.services import delivery_failure_settled, exception_open
from routing.dispatch import deliveries_enqueue
from routing.integrations import http
from routing.integrations.handoff import delivery_receipt, handoff_event_confirmed
from routing.integrations.http import Answer
from routing.integrations.models import DeliveryAttempt, OutboxEvent, OutboxStatus
from routing.integrations.outbox import signed_request

logger = logging.getLogger(__name__)

LEASE_MARGIN_SECONDS = 30


def _post(event: OutboxEvent) -> Answer:
    body, headers = signed_request(event)
    return http.post(event.target.url, content=body, headers=headers, timeout=event.target.timeout_seconds)


def retry_wait_seconds(attempt: int, retry_after: int | None) -> float:
    base = settings.HANDOFF["DELIVERY_RETRY_BASE_SECONDS"]
    return http.retry_wait_seconds(base=base, attempt=attempt, retry_after=retry_after)


def event_deliver(*, event_id: int) -> OutboxEvent | None:
    """One attempt at a due, pending event. Returns None when there was nothing to do (delivered, dead, not
    due yet, or claimed by another worker)."""
    event = OutboxEvent.objects.select_related("target", "lead").filter(pk=event_id).first()
    if event is None or event.status != OutboxStatus.PENDING:
        return None
    capture_id = event.lead.lead_id if event.lead_id else None
    # The attempt's lines name all, and the webhook-id its receiver sees, for a CRM team asking about one.
    with log_context(
        lead_pk=event.lead_id, lead_id=capture_id, event_id=event.pk, webhook_id=str(event.idempotency_key)
    ):
        return _attempt(event)


def _attempt(event: OutboxEvent) -> OutboxEvent | None:
    event_id = event.pk
    now = timezone.now()
    if event.confirmed_at is not None:
        # The receiver confirmed it by callback (it has the lead) while an earlier attempt failed: stop sending.
        OutboxEvent.objects.filter(pk=event_id, status=OutboxStatus.PENDING).update(
            status=OutboxStatus.DELIVERED, delivered_at=now
        )
        return None
    lease_until = now + dt.timedelta(seconds=event.target.timeout_seconds + LEASE_MARGIN_SECONDS)
    claimed = OutboxEvent.objects.filter(
        pk=event_id, status=OutboxStatus.PENDING, next_attempt_at__lte=now, attempts=event.attempts
    ).update(next_attempt_at=lease_until, attempts=event.attempts + 1)
    if claimed != 1:
        return None
    event.attempts += 1
    try:
        answer = _post(event)
    except Exception as exc:  # noqa: BLE001 - whatever broke, the attempt gets a receipt and counts
        logger.exception("Delivering event %s raised; recorded as a failed attempt.", event.pk)
        answer = Answer(None, 0, f"{type(exc).__name__}: {exc}"[:500])
    target = event.target.name  # _record reloads the event, which drops the cached target
    event = _record(event, answer)
    logger.info(
        "Event %s to %s, attempt %d: %s; now %s.",
        event.pk,
        target,
        event.attempts,
        answer.status_code or answer.error,
        event.status,
    )
    return event


@transaction.atomic
def _record(event: OutboxEvent, answer: Answer) -> OutboxEvent:
    now = timezone.now()
    number = (event.receipts.aggregate(n=Max("number"))["n"] or 0) + 1
    DeliveryAttempt.objects.create(
        event=event,
        number=number,
        at=now,
        status_code=answer.status_code,
        latency_ms=answer.latency_ms,
        error=answer.error,
        retry_after_seconds=answer.retry_after,
        replay=event.replays > 0,
    )
    still_ours = OutboxEvent.objects.filter(pk=event.pk, status=OutboxStatus.PENDING, attempts=event.attempts)
    if not answer.ok and OutboxEvent.objects.filter(pk=event.pk, confirmed_at__isnull=False).exists():
        # Confirmed by callback while this attempt failed (a timeout the receiver outlived): never dead-lettered.
        still_ours.update(status=OutboxStatus.DELIVERED, delivered_at=now, last_error=answer.error)
        event.refresh_from_db()
        return event
    if answer.ok:
        # A 2xx is the handoff's confirmation too, unless the target confirms by calling back (handoff.py).
        receipt = delivery_receipt(target=event.target, status_code=answer.status_code, at=now)
        if still_ours.update(status=OutboxStatus.DELIVERED, delivered_at=now, last_error="", **receipt):
            if event.replays and event.lead_id:
                # It had dead-lettered: the delivery_failed item that opened is settled by the same fix.
                delivery_failure_settled(lead_id=event.lead_id, event_id=event.pk)
            if receipt:
                handoff_event_confirmed(event=event, at=now)
    elif answer.retryable and event.attempts < event.target.max_attempts:
        wait = retry_wait_seconds(event.attempts, answer.retry_after)
        still_ours.update(next_attempt_at=now + dt.timedelta(seconds=wait), last_error=answer.error)
        transaction.on_commit(lambda: deliveries_enqueue([event.pk], countdown=wait))
    elif still_ours.update(status=OutboxStatus.DEAD, dead_at=now, last_error=answer.error):
        _dead_lettered(event, answer, now)
    event.refresh_from_db()
    return event


def _dead_lettered(event: OutboxEvent, answer: Answer, now) -> None:
    why = "not retryable" if not answer.retryable else f"{event.attempts} attempts"
    detail = f"{event.event_type} to {event.target.name} failed ({why}): {answer.error}"[:2000]
    logger.error("Dead-lettered event %s: %s", event.pk, detail)
    if event.lead_id is not None:
        cause = delivery_cause(target_id=event.target_id, target_name=event.target.name, error=answer.error)
        item = exception_open(
            lead=event.lead, reason=ExceptionReason.DELIVERY_FAILED, detail=detail, at=now, cause=cause
        )
        audit_record(
            action=AuditAction.DELIVERY_DEAD_LETTERED,
            lead=event.lead,
            exception=item,
            outcome="dead-lettered",
            at=now,
            data={"event_id": event.pk, "target": event.target.name, "error": answer.error},
        )


def events_due(*, limit: int = 1000) -> list[int]:
    """Pending events whose next attempt has come, oldest first (the beat sweep)."""
    due = OutboxEvent.objects.filter(status=OutboxStatus.PENDING, next_attempt_at__lte=timezone.now())
    return list(due.order_by("next_attempt_at").values_list("id", flat=True)[:limit])
