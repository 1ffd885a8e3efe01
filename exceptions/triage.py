"""Actions that settle an exception by changing the lead: fix its data and re-route, or assign it by hand."""

from django.db import transaction
from django.utils import timezone

from audit.models import AuditAction, Override
from audit.services import audit_record
from exceptions.models import UNRESOLVED, ExceptionItem, ExceptionStatus, Resolution
from exceptions.services import ExceptionConflict, InvalidAction, action_logged, action_refused, exception_resolve
from routing.availability.credit import turn_credit_back
from routing.intake import LeadIn, validation_errors
from routing.integrations import events as integration_events
from routing.models import Lead, LeadStatus, Queue
from routing.services import lead_route

EDITABLE_FIELDS = [name for name in LeadIn.model_fields if name not in ("lead_id", "occurred_at")]


class InvalidLeadData(InvalidAction):
    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items()))


def _validated_changes(lead: Lead, changes: dict) -> dict:
    """Run edited fields through the intake validation, so the console cannot store what the API refuses."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise InvalidLeadData({name: ["This field cannot be edited."] for name in sorted(unknown)})
    current = {name: getattr(lead, name) for name in EDITABLE_FIELDS}
    from pydantic import ValidationError

    try:
        clean = LeadIn.model_validate({**current, **changes, "lead_id": lead.lead_id})
    except ValidationError as exc:
        raise InvalidLeadData(validation_errors(exc)) from None
    return {name: getattr(clean, name) for name in changes}


@transaction.atomic
def lead_edit_and_reroute(*, item: ExceptionItem, by, changes: dict, expected_version: int | None = None):
    """Apply the person's corrections to the lead, then route it again through the engine.

    The item is resolved as `rerouted` when the lead is assigned, or `fixed_data` when it now needs a
    different kind of attention (a new exception is opened for that); if the same problem remains, the
    item stays open and the caller is told why."""
    lead = Lead.objects.select_for_update().get(pk=item.lead_id)
    # no_key: FOR NO KEY UPDATE, which the SLA sweep's record step (foreign-key share locks on the items its
    # events name) does not hold back.
    fresh = ExceptionItem.objects.select_for_update(no_key=True).get(pk=item.pk)
    rerouted = AuditAction.LEAD_REROUTED
    if fresh.status == ExceptionStatus.RESOLVED:
        conflict = ExceptionConflict(fresh, f"Item #{fresh.pk} is already resolved; reopen it to re-route the lead.")
        raise action_refused(conflict, action=rerouted, by=by, lead=lead)
    if expected_version is not None and fresh.version != expected_version:
        conflict = ExceptionConflict(fresh, f"Item #{fresh.pk} changed since you opened it; reload and try again.")
        raise action_refused(conflict, action=rerouted, by=by, lead=lead)
    clean = _validated_changes(lead, changes)
    before = {name: getattr(lead, name) for name in clean}
    for name, value in clean.items():
        setattr(lead, name, value)
    lead.status = LeadStatus.RECEIVED
    lead.save()
    audit_record(
        action=AuditAction.LEAD_EDITED, actor=by, lead=lead, exception=fresh, data={"before": before, "after": clean}
    )
    lead = lead_route(lead_id=lead.pk)
    audit_record(action=AuditAction.LEAD_REROUTED, actor=by, lead=lead, exception=fresh, outcome=lead.status)
    action_logged(fresh, action=rerouted, by=by, lead=lead, detail=f": the lead is {lead.status}")
    if lead.status == LeadStatus.ASSIGNED:
        return lead, exception_resolve(item=fresh, by=by, resolution=Resolution.REROUTED, note="Re-routed after edit.")
    if lead.status == LeadStatus.RECEIVED and lead.waiting_until is not None:
        # Held: everyone in its queue is away and the queue holds. Routing assigns it when the first member's
        # hours start, and the routing SLA watches it until then, so this item has nothing left to do.
        note = f"Re-routed after edit; held for working hours until {lead.waiting_until:%Y-%m-%d %H:%M} UTC."
        return lead, exception_resolve(item=fresh, by=by, resolution=Resolution.REROUTED, note=note)
    if not lead.exceptions.filter(UNRESOLVED).exclude(pk=fresh.pk).exists():
        return lead, ExceptionItem.objects.get(pk=fresh.pk)  # the same problem remains: the item stays open
    return lead, exception_resolve(
        item=fresh, by=by, resolution=Resolution.FIXED_DATA, note="Data fixed; the lead needs other attention now."
    )


@transaction.atomic
def lead_assign_manually(*, lead: Lead, queue: Queue, assignee, reason: str, by, item: ExceptionItem | None = None):
    """Assign a lead by hand. Records an override against the rule and version that had decided, and
    resolves the exception it came from, if any."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidAction("Give a reason for assigning by hand; it is counted against the rule that decided.")
    if assignee is not None and not assignee.is_active:
        raise InvalidAction(f"{assignee.get_username()} is not an active account.")
    lead = Lead.objects.select_for_update().get(pk=lead.pk)
    now = timezone.now()
    taken_from, from_queue_id = lead.assignee if lead.assignee_id else None, lead.queue_id
    override = Override.objects.create(
        lead=lead,
        rule_id=lead.rule_id,
        rule_version=lead.rule_version,
        from_queue_id=lead.queue_id,
        from_assignee_id=lead.assignee_id,
        to_queue=queue,
        to_assignee=assignee,
        by=by,
        at=now,
        reason=reason,
    )
    before = {
        "queue": lead.queue.name if lead.queue else None,
        "assignee": lead.assignee.get_username() if lead.assignee else None,
    }
    lead.status, lead.queue, lead.assignee, lead.assigned_at = LeadStatus.ASSIGNED, queue, assignee, now
    lead.save()
    audit_record(
        action=AuditAction.LEAD_OVERRIDE,
        actor=by,
        lead=lead,
        exception=item,
        outcome="assigned",
        rule=lead.rule if lead.rule_id else None,
        rule_version=lead.rule_version,
        data={
            "override_id": override.pk,
            "reason": reason,
            "before": before,
            "after": {"queue": queue.name, "assignee": assignee.get_username() if assignee else None},
        },
    )
    if taken_from is not None and taken_from != assignee:
        turn_credit_back(lead=lead, queue_id=from_queue_id, taken_from=taken_from, by=by, how="override", at=now)
    integration_events.lead_reassigned(
        lead=lead, from_queue=override.from_queue, from_assignee=override.from_assignee, by=by, reason=reason
    )
    if item is not None and item.status != ExceptionStatus.RESOLVED:
        item = exception_resolve(item=item, by=by, resolution=Resolution.REROUTED, note=f"Assigned by hand: {reason}")
    return lead, override
