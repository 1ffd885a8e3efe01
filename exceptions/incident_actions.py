"""What people do to an incident, fanned out to its items: acknowledging it acknowledges them, assigning it
assigns them, resolving it resolves every unresolved one with its code and note (each item as the item page
would: its clocks, its held leads, its outbox event, its own audit event naming the incident).

The incident's own row changes first, by a conditional UPDATE checked by row count (two people at once: one
wins, the other is told who); then its items, in the chunks of exceptions.bulk."""

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from exceptions import services
from exceptions.bulk import BulkOutcome, bulk_problems, exceptions_bulk
from exceptions.models import UNRESOLVED, ExceptionIncident, ExceptionItem, ExceptionStatus

OPEN, ACKNOWLEDGED, RESOLVED = ExceptionStatus.OPEN, ExceptionStatus.ACKNOWLEDGED, ExceptionStatus.RESOLVED


class IncidentConflict(Exception):
    """The incident is not in a state that allows the action (someone else acted first)."""

    def __init__(self, incident: ExceptionIncident, message: str):
        self.incident = incident
        self.message = message
        super().__init__(message)


def _change(
    incident: ExceptionIncident, *, allowed, changes: dict, verb: str, expected_version: int | None = None
) -> ExceptionIncident:
    rows = ExceptionIncident.objects.filter(pk=incident.pk, status__in=list(allowed))
    if expected_version is not None:
        rows = rows.filter(version=expected_version)
    if not rows.update(**changes, version=F("version") + 1):
        fresh = ExceptionIncident.objects.select_related("resolved_by", "acknowledged_by", "assignee").get(
            pk=incident.pk
        )
        if fresh.status in allowed and expected_version is not None:
            holder = fresh.assignee.get_username() if fresh.assignee else "nobody"
            raise IncidentConflict(
                fresh, f"Incident #{fresh.pk} changed since you opened it (it is {holder}'s now); nothing was done."
            )
        raise IncidentConflict(fresh, f"Cannot {verb} incident #{fresh.pk}: it is {_state(fresh)}.")
    return ExceptionIncident.objects.select_related("queue", "assignee").get(pk=incident.pk)


def _state(incident: ExceptionIncident) -> str:
    def who(user):
        return (user.get_full_name() or user.get_username()) if user else "the system"

    if incident.status == RESOLVED:
        return f"already resolved ({incident.get_resolution_display()}) by {who(incident.resolved_by)}"
    if incident.status == ACKNOWLEDGED:
        return f"already acknowledged by {who(incident.acknowledged_by)}"
    return "open"


def _unresolved_item_ids(incident: ExceptionIncident) -> list[int]:
    return list(ExceptionItem.objects.filter(UNRESOLVED, incident=incident).order_by("id").values_list("pk", flat=True))


def incident_acknowledge(*, incident: ExceptionIncident, by) -> tuple[ExceptionIncident, BulkOutcome]:
    now = timezone.now()
    with transaction.atomic():
        fresh = _change(
            incident,
            allowed=[OPEN],
            changes={"status": ACKNOWLEDGED, "acknowledged_at": now, "acknowledged_by": by, "assignee": by},
            verb="acknowledge",
        )
        audit_record(
            action=AuditAction.ITEM_INCIDENT_ACKNOWLEDGED,
            actor=by,
            incident=fresh,
            outcome=ACKNOWLEDGED,
            at=now,
            data={"within_sla": now <= fresh.ack_due_at},
        )
    ids = list(ExceptionItem.objects.filter(incident=fresh, status=OPEN).values_list("pk", flat=True))
    outcome = exceptions_bulk(action="acknowledge", item_ids=ids, by=by) if ids else BulkOutcome()
    return fresh, outcome


def incident_assign(
    *, incident: ExceptionIncident, to, by, expected_version: int | None = None
) -> tuple[ExceptionIncident, BulkOutcome]:
    problems = bulk_problems(action="assign", count=1, assignee=to)
    if problems:
        raise services.InvalidAction(" ".join(problems))
    now = timezone.now()
    before = incident.assignee.get_username() if incident.assignee else None
    with transaction.atomic():
        fresh = _change(
            incident,
            allowed=[OPEN, ACKNOWLEDGED],
            changes={"assignee": to},
            verb="assign",
            expected_version=expected_version,
        )
        audit_record(
            action=AuditAction.ITEM_INCIDENT_ASSIGNED,
            actor=by,
            incident=fresh,
            outcome=fresh.status,
            at=now,
            data={"before": before, "after": to.get_username()},
        )
    ids = _unresolved_item_ids(fresh)
    outcome = exceptions_bulk(action="assign", item_ids=ids, by=by, assignee=to) if ids else BulkOutcome()
    return fresh, outcome


def incident_resolve(
    *, incident: ExceptionIncident, by, resolution: str, note: str
) -> tuple[ExceptionIncident, BulkOutcome]:
    """Resolve the incident and every unresolved item of it with the code and note (a note is required: it is
    recorded on every item)."""
    note = (note or "").strip()
    problems = bulk_problems(action="resolve", count=1, resolution=resolution, note=note)
    if problems:
        raise services.InvalidAction(" ".join(problems))
    now = timezone.now()
    with transaction.atomic():
        fresh = _change(
            incident,
            allowed=[OPEN, ACKNOWLEDGED],
            changes={
                "status": RESOLVED,
                "resolved_at": now,
                "resolved_by": by,
                "resolution": resolution,
                "resolution_note": note,
            },
            verb="resolve",
        )
        ids = _unresolved_item_ids(fresh)
        audit_record(
            action=AuditAction.ITEM_INCIDENT_RESOLVED,
            actor=by,
            incident=fresh,
            outcome=resolution,
            at=now,
            data={
                "resolution": resolution,
                "note": note,
                "item_count": len(ids),
                "within_sla": now <= fresh.resolve_due_at,
            },
        )
    outcome = BulkOutcome()
    if ids:
        outcome = exceptions_bulk(
            action="resolve", item_ids=ids, by=by, resolution=resolution, note=f"{note} (incident #{fresh.pk})"
        )
    # An item that could not be resolved (someone held it) goes back to its own clock, so nothing is left
    # unswept under an incident that is over.
    ExceptionItem.objects.filter(UNRESOLVED, incident=fresh).update(incident=None, version=F("version") + 1)
    return fresh, outcome
