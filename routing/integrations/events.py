"""The events execution targets receive, built from the change that caused them (README: Delivery)."""

import functools

from routing.integrations.models import EventType
from routing.integrations.outbox import events_emit_many


def _person(user) -> dict | None:
    if user is None:
        return None
    return {"username": user.get_username(), "email": user.email, "name": user.get_full_name()}


def _lead(lead) -> dict:
    return {
        "id": lead.pk,
        "lead_id": lead.lead_id,
        "origin": lead.origin.name,
        "email": lead.email,
        "phone": lead.phone,
        "first_name": lead.first_name,
        "last_name": lead.last_name,
        "company": lead.company,
        "country": lead.country,
        "lifecycle_stage": lead.lifecycle_stage,
    }


def lead_assigned(*, lead, rule) -> None:
    """`rule`: the compiled rule (or Rule) that decided, with its version."""
    leads_assigned([(lead, rule)])


def leads_assigned(assigned: list[tuple]) -> None:
    """(lead, rule) pairs routed together: their events in one write."""
    events_emit_many(
        event_type=EventType.LEAD_ASSIGNED,
        items=[(lead, functools.partial(_assignment, lead, rule)) for lead, rule in assigned],
    )


def _assignment(lead, rule) -> dict:
    return {
        "lead": _lead(lead),
        "queue": lead.queue.name,
        "assignee": _person(lead.assignee),
        "rule": {"id": rule.id, "name": rule.name, "version": rule.version} if rule else None,
        "assigned_at": lead.assigned_at,
    }


def lead_reassigned(*, lead, from_queue, from_assignee, by, reason: str) -> None:
    leads_reassigned(moves=[(lead, from_queue, from_assignee)], by=by, reason=reason)


def leads_reassigned(*, moves: list[tuple], by, reason: str) -> None:
    """(lead, from_queue, from_assignee) reassigned together (a remediation): their events in one write."""
    events_emit_many(
        event_type=EventType.LEAD_REASSIGNED,
        items=[(lead, functools.partial(_reassignment, lead, q, a, by, reason)) for lead, q, a in moves],
    )


def _reassignment(lead, from_queue, from_assignee, by, reason: str) -> dict:
    return {
        "lead": _lead(lead),
        "from": {"queue": from_queue.name if from_queue else None, "assignee": _person(from_assignee)},
        "to": {"queue": lead.queue.name, "assignee": _person(lead.assignee)},
        "by": _person(by),
        "reason": reason,
        "assigned_at": lead.assigned_at,
    }


def exception_resolved(*, item) -> None:
    exceptions_resolved(items=[item])


def exceptions_resolved(*, items) -> None:
    """Items resolved together (the routing SLA sweep closing them): their events in one write."""
    events_emit_many(
        event_type=EventType.EXCEPTION_RESOLVED,
        items=[(item.lead, functools.partial(_resolution, item)) for item in items],
    )


def _resolution(item) -> dict:
    return {
        "exception": {
            "id": item.pk,
            "reason": item.reason,
            "queue": item.queue.name,
            "resolution": item.resolution,
            "note": item.resolution_note,
            "resolved_at": item.resolved_at,
            "resolved_by": _person(item.resolved_by),
        },
        "lead": _lead(item.lead),
    }
