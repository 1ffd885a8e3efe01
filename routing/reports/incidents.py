"""Incidents: acknowledge and resolve, each once (conditional UPDATE with a row-count check), audited; an owner
who answers for it; and, once resolved, the postmortem a large one needs (exceptions.postmortems: its size is
its report's worst discrepancy, `variance`; from HANDOFF_POSTMORTEM_THRESHOLD one is due, never blocking)."""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from exceptions.postmortems import postmortem_terms
from exceptions.services import InvalidAction
from routing.reports.models import Incident, IncidentStatus, ReconciliationReport


@transaction.atomic
def incident_acknowledge(*, incident: Incident, by) -> Incident:
    """Acknowledge it; one nobody owns becomes the acknowledger's (as an exception incident does)."""
    now = timezone.now()
    if not Incident.objects.filter(pk=incident.pk, status=IncidentStatus.OPEN).update(
        status=IncidentStatus.ACKNOWLEDGED,
        acknowledged_at=now,
        acknowledged_by=by,
        owner=Coalesce(F("owner"), Value(by.pk)) if by.is_active else F("owner"),
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


def incident_owner_candidates():
    """Who may own a reconciliation incident: the active people of ops, and admins."""
    return (
        get_user_model()
        .objects.filter(Q(groups__name="ops") | Q(is_superuser=True), is_active=True)
        .distinct()
        .order_by("username")
    )


@transaction.atomic
def incident_owner_assign(*, incident: Incident, to, by) -> Incident:
    """Make `to` (someone of ops, or an admin) the incident's owner, in any status: a resolved incident's owner
    writes its postmortem. Audited as an acknowledgement with the outcome "owner assigned" (there is no
    reconciliation incident assignment action of its own)."""
    if not incident_owner_candidates().filter(pk=to.pk).exists():
        raise InvalidAction(f"{to.get_username()} cannot own an incident: choose someone active in ops, or an admin.")
    before = Incident.objects.filter(pk=incident.pk).values_list("owner__username", flat=True).first()
    Incident.objects.filter(pk=incident.pk).update(owner=to)
    audit_record(
        action=AuditAction.INCIDENT_ACKNOWLEDGED,
        actor=by,
        outcome="owner assigned",
        at=timezone.now(),
        data={"incident_id": incident.pk, "title": incident.title, "before": before, "after": to.get_username()},
    )
    return Incident.objects.get(pk=incident.pk)


@transaction.atomic
def incident_resolve(*, incident: Incident, by, note: str) -> Incident:
    """Resolve it with a note (its record), and measure it: a postmortem is due if its report's discrepancy
    reached HANDOFF_POSTMORTEM_THRESHOLD. Resolving is never held up by the postmortem."""
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
    variance = ReconciliationReport.objects.values_list("variance", flat=True).get(pk=incident.report_id)
    terms = postmortem_terms(share=variance, at=now)
    Incident.objects.filter(pk=incident.pk, postmortem_written_at__isnull=True).update(**terms)
    audit_record(
        action=AuditAction.INCIDENT_RESOLVED,
        actor=by,
        outcome="resolved",
        at=now,
        data={
            "incident_id": incident.pk,
            "title": incident.title,
            "note": note,
            "postmortem_required": terms["postmortem_required"],
        },
    )
    return Incident.objects.get(pk=incident.pk)
