"""Postmortems of large incidents.

When an incident resolves, `incident_postmortem_assess` measures it: its items as a share of the leads captured
on the UTC days it spanned (opening day to resolution day; the daily parity measures days too). At or above
HANDOFF_POSTMORTEM_THRESHOLD (a fraction: 0.05 = 5%) a postmortem is required, due HANDOFF_POSTMORTEM_DUE_DAYS
after the resolution. Resolving is never blocked on it: as PagerDuty and incident.io do, restoring service
comes first and the postmortem follows; until one is written the incident is listed as "postmortem due"
(overdue past its due time), on the incident list and in the monthly root-cause report.

Reconciliation incidents (routing.reports.models.Incident, opened by a parity gap) follow the same rule with their
report's worst discrepancy as the size (routing.reports.incidents); `postmortem_terms` and
`incident_postmortem_write` serve both kinds.
"""

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from exceptions.models import ExceptionIncident, ExceptionItem, ExceptionStatus
from routing.models import Lead

POSTMORTEM_MIN_CHARS = 40  # "fixed" is not a postmortem: what happened, why, and what changes
POSTMORTEM_MAX_CHARS = 20_000


class PostmortemRefused(ValueError):
    """Nothing was saved; the message says what to fix."""


def _day_start(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def affected_share(*, item_count: int, start: dt.datetime, end: dt.datetime) -> float:
    """Items as a share of the leads received on the UTC days from `start` to `end` (two counts' worth)."""
    window_start, window_end = _day_start(start), _day_start(end) + dt.timedelta(days=1)
    captured = Lead.objects.filter(received_at__gte=window_start, received_at__lt=window_end).count()
    return min(item_count / captured, 1.0) if captured else (1.0 if item_count else 0.0)


def incident_postmortem_assess(*, incident_id: int, at: dt.datetime, opened_at: dt.datetime | None = None) -> dict:
    """Measure a just-resolved incident and require a postmortem if it reached the threshold. Call it in the
    resolution's transaction. Returns the fields it set (affected_share, postmortem_required, postmortem_due_at)."""
    if opened_at is None:
        opened_at = ExceptionIncident.objects.values_list("opened_at", flat=True).get(pk=incident_id)
    items = ExceptionItem.objects.filter(incident=incident_id).count()
    fields = postmortem_terms(share=affected_share(item_count=items, start=opened_at, end=at), at=at)
    ExceptionIncident.objects.filter(pk=incident_id, postmortem_written_at__isnull=True).update(**fields)
    return fields


def postmortem_terms(*, share: float, at: dt.datetime) -> dict:
    """An incident of size `share` resolved at `at`: the fields that say whether it needs a postmortem, and by when."""
    required = share >= settings.HANDOFF["POSTMORTEM_THRESHOLD"]
    return {
        "affected_share": share,
        "postmortem_required": required,
        "postmortem_due_at": at + dt.timedelta(days=settings.HANDOFF["POSTMORTEM_DUE_DAYS"]) if required else None,
    }


def incident_postmortem_write(*, incident, text: str, by):
    """Write (or rewrite: a postmortem is a living document until the review) the incident's postmortem, with
    its audit event. Any incident may have one; one that requires it stops being "postmortem due". `incident` is
    an ExceptionIncident or a reconciliation incident (routing.reports.models.Incident); returns it fresh."""
    text = (text or "").strip().replace("\r\n", "\n")
    model = type(incident)
    items_of_one_cause = isinstance(incident, ExceptionIncident)
    if incident.status != ExceptionStatus.RESOLVED:  # the same value in both kinds' status choices
        raise PostmortemRefused(
            f"Incident #{incident.pk} is {incident.get_status_display().lower()}: resolve it first, then write "
            "its postmortem (what happened, why, what changes)."
        )
    if len(text) < POSTMORTEM_MIN_CHARS:
        raise PostmortemRefused(
            f"Write at least {POSTMORTEM_MIN_CHARS} characters: what happened, why it happened, and what changes "
            "so it does not happen again."
        )
    if len(text) > POSTMORTEM_MAX_CHARS:
        raise PostmortemRefused(f"A postmortem is at most {POSTMORTEM_MAX_CHARS} characters ({len(text)} given).")
    now = timezone.now()
    with transaction.atomic():
        first = incident.postmortem_written_at is None
        changes = {"postmortem": text, "postmortem_written_at": now, "postmortem_written_by": by}
        if items_of_one_cause:  # its page's forms carry the version they saw
            changes["version"] = F("version") + 1
        model.objects.filter(pk=incident.pk).update(**changes)
        audit_record(
            action=AuditAction.INCIDENT_POSTMORTEM,
            actor=by,
            incident=incident if items_of_one_cause else None,  # the audit row's foreign key is to this kind only
            outcome="written" if first else "revised",
            at=now,
            data={
                "required": incident.postmortem_required,
                "late": bool(incident.postmortem_due_at and now > incident.postmortem_due_at),
                "chars": len(text),
                # A revision keeps the text it replaces here, in the append-only trail: nothing written is lost.
                **({} if first else {"previous": incident.postmortem or ""}),
                **({} if items_of_one_cause else {"incident_id": incident.pk, "kind": "reconciliation"}),
            },
        )
    return model.objects.get(pk=incident.pk)
