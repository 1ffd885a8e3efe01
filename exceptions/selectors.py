"""Reads for the console and the API: the queue overview, the item list and an item's timeline."""

import datetime as dt
from dataclasses import dataclass
from itertools import chain

from django.db.models import Count, Exists, F, Min, OuterRef, Q, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from exceptions.models import (
    UNRESOLVED,
    UNRESOLVED_STATUSES,
    ExceptionIncident,
    ExceptionItem,
    ExceptionStatus,
    Notification,
)
from routing.models import Queue

BREACHED = Q(ack_breached_at__isnull=False) | Q(resolve_breached_at__isnull=False)


@dataclass
class QueueRow:
    queue: Queue
    open: int
    unacknowledged: int
    breached: int
    oldest_opened_at: dt.datetime | None
    incidents: int = 0  # unresolved incidents of the queue (their items are among `open`)
    incidents_breached: int = 0

    @property
    def breached_or_in_breached_incident(self) -> bool:
        return bool(self.breached or self.incidents_breached)

    @property
    def oldest_age(self) -> dt.timedelta | None:
        return timezone.now() - self.oldest_opened_at if self.oldest_opened_at else None


def queue_overview() -> list[QueueRow]:
    """Every queue with its unresolved, unacknowledged and breached counts, its oldest item and its unresolved
    incidents (how many, how many breached): 3 queries."""
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
    incidents = {
        row["queue"]: row
        for row in ExceptionIncident.objects.exclude(status=ExceptionStatus.RESOLVED)
        .values("queue")
        .annotate(n=Count("id"), breached=Count("id", filter=BREACHED))
    }
    rows = []
    for queue in Queue.objects.order_by("name"):
        row, incident = stats.get(queue.pk, {}), incidents.get(queue.pk, {})
        rows.append(
            QueueRow(
                queue,
                row.get("open", 0),
                row.get("unacknowledged", 0),
                row.get("breached", 0),
                row.get("oldest"),
                incident.get("n", 0),
                incident.get("breached", 0),
            )
        )
    return sorted(rows, key=lambda r: (-r.breached - r.incidents_breached, -r.open, r.queue.name))


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


def latest_per_incident(notes, user):
    """Of `notes`, those about no incident, and for each incident only its latest that the person sees."""
    later = notifications_for(user).filter(incident=OuterRef("incident"), id__gt=OuterRef("id"))
    return notes.filter(Q(incident__isnull=True) | ~Exists(later))


def incident_stream_sizes(user, incident_ids) -> dict[int, int]:
    """How many notifications the person has about each of these incidents (one query)."""
    if not incident_ids:
        return {}
    rows = (
        notifications_for(user)
        .filter(incident__in=set(incident_ids))
        .order_by()  # no ordering columns in the DISTINCT: one row per incident
        .values("incident")
        .annotate(n=Count("id", distinct=True))
    )
    return {row["incident"]: row["n"] for row in rows}


def open_items_by_assignee() -> dict[int, int]:
    """Unresolved items per assignee (user id): the load the assign control shows beside each name."""
    rows = ExceptionItem.objects.filter(UNRESOLVED, assignee__isnull=False).values("assignee").annotate(n=Count("id"))
    return {row["assignee"]: row["n"] for row in rows}


INCIDENT_GROUPS_SHOWN = 10  # incidents shown above the item list (the incidents page has them all)
INCIDENT_ITEMS_SHOWN = 5  # items shown inside a group before "all N items"


@dataclass
class IncidentGroup:
    incident: ExceptionIncident
    matching: int  # of the list's items, how many are this incident's
    items: list[ExceptionItem]  # the first few of them, soonest due first


def incident_groups(items) -> list[IncidentGroup]:
    """The incidents among `items` (the list's filtered queryset), biggest first, each with how many of the items
    it holds and the first INCIDENT_ITEMS_SHOWN of them: 3 queries, however many items."""
    counts = {
        row["incident"]: row["n"]
        for row in items.filter(incident__isnull=False).order_by().values("incident").annotate(n=Count("id"))
    }
    if not counts:
        return []
    shown = sorted(counts, key=lambda pk: (-counts[pk], pk))[:INCIDENT_GROUPS_SHOWN]
    incidents = ExceptionIncident.objects.select_related("queue", "assignee").in_bulk(shown)
    first = (
        items.filter(incident__in=shown)
        .select_related("lead", "lead__origin", "assignee")
        .annotate(
            place=Window(
                RowNumber(), partition_by=[F("incident")], order_by=[F("due_at").asc(nulls_last=True), F("id").asc()]
            )
        )
        .filter(place__lte=INCIDENT_ITEMS_SHOWN)
        .order_by("incident", "place")
    )
    by_incident: dict[int, list[ExceptionItem]] = {pk: [] for pk in shown}
    for item in first:
        by_incident[item.incident_id].append(item)
    return [IncidentGroup(incidents[pk], counts[pk], by_incident[pk]) for pk in shown if pk in incidents]


def incident_list():
    """Incidents with what their screens and the API show of them: queue, people, and item counts."""
    return ExceptionIncident.objects.select_related("queue", "assignee", "acknowledged_by", "resolved_by").annotate(
        item_count=Count("items"), unresolved_count=Count("items", filter=Q(items__status__in=UNRESOLVED_STATUSES))
    )


def incident_history(incident: ExceptionIncident) -> list[AuditEvent]:
    return list(incident.audit_events.select_related("actor").order_by("occurred_at", "id"))
