"""Incidents: acknowledge and resolve, each once (conditional UPDATE with a row-count check), audited."""

from django.db import transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from exceptions.services import InvalidAction
from routing.reports.models import Incident, IncidentStatus


@transaction.atomic
def incident_acknowledge(*, incident: Incident, by) -> Incident:
    now = timezone.now()
    if not Incident.objects.filter(pk=incident.pk, status=IncidentStatus.OPEN).update(
        status=IncidentStatus.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=by
    ):
        incident.refresh_from_db()
        raise InvalidAction(f"Incident #{incident.pk} is already {incident.get_status_display().lower()}.")
    audit_record(
        action=AuditAction.INCIDENT_ACKNOWLEDGED,
        actor=by,
        outcome="acknowledged",
        at=now,
        data={"incident_id": incident.pk, "title": incident.title},
    )
    return Incident.objects.get(pk=incident.pk)


@transaction.atomic
def incident_resolve(*, incident: Incident, by, note: str) -> Incident:
    note = (note or "").strip()
    if not note:
        raise InvalidAction("Say what was found and done: the note is the incident's record.")
    now = timezone.now()
    if (
        not Incident.objects.exclude(status=IncidentStatus.RESOLVED)
        .filter(pk=incident.pk)
        .update(status=IncidentStatus.RESOLVED, resolved_at=now, resolved_by=by, note=note)
    ):
        raise InvalidAction(f"Incident #{incident.pk} is already resolved.")
    Incident.objects.filter(pk=incident.pk, acknowledged_at__isnull=True).update(
        acknowledged_at=now, acknowledged_by=by
    )
    audit_record(
        action=AuditAction.INCIDENT_RESOLVED,
        actor=by,
        outcome="resolved",
        at=now,
        data={"incident_id": incident.pk, "title": incident.title, "note": note},
    )
    return Incident.objects.get(pk=incident.pk)
