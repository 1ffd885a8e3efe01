"""What people do to an incident, fanned out to its items: acknowledging it acknowledges them, assigning it
assigns them, resolving it resolves every unresolved one with its code and note (each item as the item page
would: its clocks, its held leads, its outbox event, its own audit event naming the incident).

The incident's own row changes first, by a conditional UPDATE checked by row count (two people at once: one
wins, the other is told who); then its items, in the chunks of exceptions.bulk. Each action logs one line with
the `incident_id` once done (its items' own lines carry it too), and a refused one a warning."""

import logging

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from config.logs import log_context
from exceptions import alerts, services
from exceptions.bulk import BulkOutcome, bulk_problems, exceptions_bulk
from exceptions.models import UNRESOLVED, ExceptionIncident, ExceptionItem, ExceptionStatus
from exceptions.postmortems import incident_postmortem_assess

OPEN, ACKNOWLEDGED, RESOLVED = ExceptionStatus.OPEN, ExceptionStatus.ACKNOWLEDGED, ExceptionStatus.RESOLVED
logger = logging.getLogger(__name__)


class IncidentConflict(Exception):
    """The incident is not in a state that allows the action (someone else acted first)."""

    def __init__(self, incident: ExceptionIncident, message: str):
        self.incident = incident
        self.message = message
        super().__init__(message)


def _who(by) -> str:
    return by.get_username() if by else "the system"


def _logged(incident: ExceptionIncident, outcome: BulkOutcome, *, action: str, by) -> None:
    logger.info(
        "Incident #%s: %s by %s; %d item(s) done, %d skipped.",
        incident.pk,
        action,
        _who(by),
        len(outcome.done),
        len(outcome.skipped),
        extra={"incident_id": incident.pk, "action": action, "by": _who(by), "status": incident.status},
    )


def _refused(conflict: "IncidentConflict", *, action: str, by) -> "IncidentConflict":
    fields = {"incident_id": conflict.incident.pk, "action": action, "by": _who(by), "refused": True}
    logger.warning(
        "Incident #%s: %s by %s refused: %s",
        conflict.incident.pk,
        action,
        _who(by),
        conflict.message,
        extra={**fields, "status": conflict.incident.status},
    )
    return conflict


def _change(
    incident: ExceptionIncident,
    *,
    allowed,
    changes: dict,
    verb: str,
    action: str,
    by,
    expected_version: int | None = None,
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
            conflict = IncidentConflict(
                fresh, f"Incident #{fresh.pk} changed since you opened it (it is {holder}'s now); nothing was done."
            )
        else:
            conflict = IncidentConflict(fresh, f"Cannot {verb} incident #{fresh.pk}: it is {_state(fresh)}.")
        raise _refused(conflict, action=action, by=by)
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


def incident_acknowledge(*, incident: ExceptionIncident, by, note: str = "") -> tuple[ExceptionIncident, BulkOutcome]:
    """`note`: why, for the audit trail (an acknowledge from PagerDuty names who acknowledged there)."""
    now = timezone.now()
    with transaction.atomic():
        fresh = _change(
            incident,
            allowed=[OPEN],
            changes={
                "status": ACKNOWLEDGED,
                "acknowledged_at": now,
                "acknowledged_by": by,
                "assignee": services.acknowledger_claims(by),
            },
            verb="acknowledge",
            action=AuditAction.ITEM_INCIDENT_ACKNOWLEDGED,
            by=by,
        )
        audit_record(
            action=AuditAction.ITEM_INCIDENT_ACKNOWLEDGED,
            actor=by,
            incident=fresh,
            outcome=ACKNOWLEDGED,
            at=now,
            data={"within_sla": now <= fresh.ack_due_at, **({"note": note} if note else {})},
        )
        alerts.alert_incident_acknowledged(incident_id=fresh.pk, by=by, note=note)
    ids = list(ExceptionItem.objects.filter(incident=fresh, status=OPEN).values_list("pk", flat=True))
    with log_context(incident_id=fresh.pk):
        outcome = exceptions_bulk(action="acknowledge", item_ids=ids, by=by) if ids else BulkOutcome()
    _logged(fresh, outcome, action=AuditAction.ITEM_INCIDENT_ACKNOWLEDGED, by=by)
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
            action=AuditAction.ITEM_INCIDENT_ASSIGNED,
            by=by,
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
    with log_context(incident_id=fresh.pk):
        outcome = exceptions_bulk(action="assign", item_ids=ids, by=by, assignee=to) if ids else BulkOutcome()
    _logged(fresh, outcome, action=AuditAction.ITEM_INCIDENT_ASSIGNED, by=by)
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
            action=AuditAction.ITEM_INCIDENT_RESOLVED,
            by=by,
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
        alerts.alert_incident_resolved(incident_id=fresh.pk, by=by, note=note)
    outcome = BulkOutcome()
    if ids:
        with log_context(incident_id=fresh.pk):
            outcome = exceptions_bulk(
                action="resolve", item_ids=ids, by=by, resolution=resolution, note=f"{note} (incident #{fresh.pk})"
            )
    # An item that could not be resolved (someone held it) goes back to its own clock, so nothing is left
    # unswept under an incident that is over.
    ExceptionItem.objects.filter(UNRESOLVED, incident=fresh).update(incident=None, version=F("version") + 1)
    # Its size, once its items are settled: a large one is "postmortem due" from now on.
    for name, value in incident_postmortem_assess(incident_id=fresh.pk, at=now, opened_at=fresh.opened_at).items():
        setattr(fresh, name, value)
    _logged(fresh, outcome, action=AuditAction.ITEM_INCIDENT_RESOLVED, by=by)
    return fresh, outcome
