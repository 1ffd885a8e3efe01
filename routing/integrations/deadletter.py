"""Dead letters: events that exhausted their attempts or met an answer retrying cannot fix. People find them
by target, error and age, and send them again; each replay is audited and its outcome shows on the screen."""

import datetime as dt

from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from routing.dispatch import deliveries_enqueue
from routing.integrations.models import OutboxEvent, OutboxStatus

# "Dead for at least" beyond this would overflow datetime (99999999999 hours gave a 500); no event is older.
MAX_DEAD_AGE_HOURS = 100 * 366 * 24


def dead_letters(*, target_id: int | None = None, error: str = "", older_than_hours: float | None = None) -> QuerySet:
    events = OutboxEvent.objects.filter(status=OutboxStatus.DEAD)
    if target_id:
        events = events.filter(target_id=target_id)
    if error:
        events = events.filter(last_error__icontains=error)
    if older_than_hours is not None:
        events = events.filter(dead_at__lte=timezone.now() - dt.timedelta(hours=older_than_hours))
    return events.select_related("target", "lead").order_by("-dead_at", "-id")


@transaction.atomic
def dead_letters_replay(*, event_ids, by) -> list[int]:
    """Send dead events again from a fresh attempt budget (same idempotency key). Only events still dead are
    taken, so two people replaying the same selection send each once. Returns the ids replayed."""
    ids = list(
        OutboxEvent.objects.filter(pk__in=list(event_ids), status=OutboxStatus.DEAD)
        .select_for_update(skip_locked=True)
        .values_list("id", flat=True)
    )
    if not ids:
        return []
    now = timezone.now()
    events = {e.pk: e for e in OutboxEvent.objects.filter(pk__in=ids).select_related("target", "lead")}
    for event_id in ids:
        event = events[event_id]
        OutboxEvent.objects.filter(pk=event_id, status=OutboxStatus.DEAD).update(
            status=OutboxStatus.PENDING, attempts=0, next_attempt_at=now, dead_at=None, replays=event.replays + 1
        )
        audit_record(
            action=AuditAction.DELIVERY_REPLAYED,
            actor=by,
            lead=event.lead,
            outcome="replayed",
            at=now,
            data={"event_id": event_id, "target": event.target.name, "last_error": event.last_error},
        )
    transaction.on_commit(lambda: deliveries_enqueue(ids))
    return ids


def replay_outcomes() -> dict:
    """Replay success rate: of the events ever replayed, how many are now delivered, pending or dead again."""
    counts = OutboxEvent.objects.filter(replays__gt=0).aggregate(
        replayed=Count("id"),
        delivered=Count("id", filter=Q(status=OutboxStatus.DELIVERED)),
        pending=Count("id", filter=Q(status=OutboxStatus.PENDING)),
        dead=Count("id", filter=Q(status=OutboxStatus.DEAD)),
    )
    settled = counts["delivered"] + counts["dead"]
    counts["success_rate"] = counts["delivered"] / settled if settled else None
    return counts
