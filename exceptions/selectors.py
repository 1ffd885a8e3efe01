"""Reads for the console and the API: the queue overview, the item list and an item's timeline."""

import datetime as dt
from dataclasses import dataclass
from itertools import chain

from django.db.models import Count, Min, Q
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from exceptions.models import UNRESOLVED, ExceptionItem, ExceptionStatus, Notification
from routing.models import Queue

BREACHED = Q(ack_breached_at__isnull=False) | Q(resolve_breached_at__isnull=False)


@dataclass
class QueueRow:
    queue: Queue
    open: int
    unacknowledged: int
    breached: int
    oldest_opened_at: dt.datetime | None

    @property
    def oldest_age(self) -> dt.timedelta | None:
        return timezone.now() - self.oldest_opened_at if self.oldest_opened_at else None


def queue_overview() -> list[QueueRow]:
    """Every queue with its unresolved, unacknowledged and breached counts and its oldest item: 2 queries."""
    stats = {
        row["queue"]: row
        for row in ExceptionItem.objects.filter(UNRESOLVED)
        .values("queue")
        .annotate(
            open=Count("id"),
            unacknowledged=Count("id", filter=Q(status=ExceptionStatus.OPEN)),
            breached=Count("id", filter=BREACHED),
            oldest=Min("opened_at"),
        )
    }
    rows = []
    for queue in Queue.objects.order_by("name"):
        row = stats.get(queue.pk, {})
        rows.append(
            QueueRow(queue, row.get("open", 0), row.get("unacknowledged", 0), row.get("breached", 0), row.get("oldest"))
        )
    return sorted(rows, key=lambda r: (-r.breached, -r.open, r.queue.name))


def exception_list_queryset():
    return ExceptionItem.objects.select_related("lead", "lead__origin", "queue", "assignee")


def exception_api_queryset():
    """Items with everything the API's item serializer reads, in one query."""
    return exception_list_queryset().select_related("acknowledged_by", "resolved_by")


def item_timeline(item: ExceptionItem) -> list[dict]:
    """The item's history: audit events about it and its SLA events, oldest first."""
    audit = [
        {"at": e.occurred_at, "who": e.actor_label, "what": e.get_action_display(), "detail": e.data, "kind": "audit"}
        for e in item.audit_events.select_related("actor").order_by("occurred_at", "id")
    ]
    sla = [
        {
            "at": e.at,
            "who": "clock",
            "what": f"{e.get_clock_display()} clock {e.get_kind_display().lower()}",
            "detail": e.data,
            "kind": "sla",
        }
        for e in item.sla_events.all()
    ]
    return sorted(chain(audit, sla), key=lambda entry: entry["at"])


def lead_trail(lead) -> list[AuditEvent]:
    return list(lead.audit_events.select_related("rule", "actor").order_by("occurred_at", "id"))


def lead_decisions(trail: list[AuditEvent]) -> list[AuditEvent]:
    return [event for event in trail if event.action == AuditAction.ROUTING_DECISION]


def notifications_for(user):
    """Notifications addressed to the person, or to a queue they are a member of."""
    return Notification.objects.filter(
        Q(recipient=user) | Q(recipient__isnull=True, queue__memberships__user=user)
    ).distinct()


def open_items_by_assignee() -> dict[int, int]:
    """Unresolved items per assignee (user id): the load the assign control shows beside each name."""
    rows = ExceptionItem.objects.filter(UNRESOLVED, assignee__isnull=False).values("assignee").annotate(n=Count("id"))
    return {row["assignee"]: row["n"] for row in rows}
