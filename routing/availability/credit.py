"""Credit back: a lead the queue's strategy gave someone, taken from them by hand, gives them their turn back.

Only a turn the strategy handed out is owed (not a sticky or account owner's lead, not a manual assignment),
only while the queue's `credit_back` is on and the person is still a member, and only once per lead: once
taken, the lead is no longer theirs. The member's `turn_credits` goes up by one; the rotation serves an owed
turn first at their next eligible pick without moving their pass (routing/assignment.py), so the credit holds
under either return policy however many rounds have passed. The ledger counts it and the audit trail says why.
"""

import datetime as dt

from django.db.models import F

from audit.models import AuditAction, AuditEvent
from audit.services import audit_record
from routing.availability.ledger import ledger_credit_back
from routing.models import Lead, Queue, QueueMembership


def turn_credit_back(*, lead: Lead, queue_id: int | None, taken_from, by, how: str, at: dt.datetime) -> bool:
    """Credit `taken_from` for `lead` (its queue and assignee before the change). Returns whether it did.
    Call in the transaction that takes the lead away."""
    if taken_from is None or queue_id is None:
        return False
    queue = Queue.objects.select_for_update(no_key=True).get(pk=queue_id)  # the rotation's lock (assignment.py)
    if not queue.credit_back:
        return False
    decision = (
        AuditEvent.objects.filter(lead=lead, action=AuditAction.ROUTING_DECISION, outcome="assigned")
        .order_by("-occurred_at", "-id")
        .values_list("data", flat=True)
        .first()
    )
    given_by_strategy = (
        decision is not None
        and decision.get("assigned_by") == "queue"
        and decision.get("assignee") == taken_from.get_username()
        and decision.get("queue") == queue.name
    )
    if not given_by_strategy:
        return False
    if AuditEvent.objects.filter(lead=lead, action=AuditAction.LEAD_CREDITED_BACK).exists():
        return False  # the strategy's one turn for this lead was given back already (it went round by hand)
    updated = QueueMembership.objects.filter(queue=queue, user=taken_from).update(turn_credits=F("turn_credits") + 1)
    if not updated:
        return False  # no longer a member
    ledger_credit_back(queue.pk, taken_from.pk, at.astimezone(dt.UTC).date())
    audit_record(
        action=AuditAction.LEAD_CREDITED_BACK,
        actor=by,
        lead=lead,
        outcome="credited",
        at=at,
        data={"queue": queue.name, "member": taken_from.get_username(), "how": how},
    )
    return True
