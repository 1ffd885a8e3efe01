"""Routing writes: route a lead, record why, and hand what cannot be routed to an exception queue."""

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from exceptions.models import ExceptionReason
from exceptions.services import exception_open
from routing.assignment import pick_assignee
from routing.engine import CONTACT_FIELDS, CompiledRule, RuleSet, production_ruleset
from routing.models import Lead, LeadStatus

logger = logging.getLogger(__name__)
MAX_REQUEUE_DOUBLINGS = 5


def lead_route(*, lead_id: int, ruleset: RuleSet | None = None) -> Lead | None:
    """Route one received lead by the production rules (or `ruleset`, when a caller routing many leads
    fetched it once). Idempotent: a lead that is no longer `received` (routed by an earlier delivery of
    the same task) is returned untouched."""
    ruleset = ruleset or production_ruleset()
    with transaction.atomic():
        # The row lock makes a second delivery of the same lead wait, then see it already routed.
        lead = Lead.objects.select_for_update().filter(pk=lead_id).first()
        if lead is None or lead.status != LeadStatus.RECEIVED:
            return lead
        now = timezone.now()
        if not lead.email and not lead.phone:
            _to_exception(
                lead,
                reason=ExceptionReason.MISSING_CONTACT,
                at=now,
                inputs={field: getattr(lead, field) for field in CONTACT_FIELDS},
                detail="The lead has neither an email address nor a phone number.",
            )
            return lead

        match = ruleset.evaluate(lead.routing_view())
        if match.rule is None:
            _to_exception(
                lead,
                reason=ExceptionReason.NO_MATCHING_RULE,
                at=now,
                inputs=match.inputs,
                detail=f"None of the {len(ruleset)} production rules matched.",
            )
            return lead

        rule = match.rule  # the compiled version that decided, even if an edit landed since
        pick = pick_assignee(queue_id=rule.queue_id)
        lead.queue, lead.rule_id, lead.rule_version, lead.routed_at = pick.queue, rule.id, rule.version, now
        if pick.assignee is None:
            chain = " → ".join((pick.queue.name, *pick.overflowed_from))
            _to_exception(
                lead,
                reason=ExceptionReason.NO_ELIGIBLE_ASSIGNEE,
                at=now,
                inputs=match.inputs,
                rule=rule,
                detail=f"No available member under the cap in {chain}.",
            )
            return lead

        lead.status, lead.assignee, lead.assigned_at = LeadStatus.ASSIGNED, pick.assignee, now
        lead.save()
        audit_record(
            action=AuditAction.ROUTING_DECISION,
            lead=lead,
            rule=rule,
            inputs=match.inputs,
            outcome="assigned",
            at=now,
            data={
                "queue": pick.queue.name,
                "assignee": pick.assignee.get_username(),
                "overflowed_from": list(pick.overflowed_from),
            },
        )
    return lead


def lead_fail_routing(*, lead_id: int, error: str) -> Lead | None:
    """Routing raised something retrying will not fix: put the lead in front of a person, not in limbo."""
    with transaction.atomic():
        lead = Lead.objects.select_for_update().filter(pk=lead_id).first()
        if lead is None or lead.status != LeadStatus.RECEIVED:
            return lead
        _to_exception(
            lead,
            reason=ExceptionReason.ROUTING_FAILED,
            at=timezone.now(),
            inputs={},
            detail=f"Routing failed: {error}"[:2000],
        )
    return lead


def _to_exception(lead: Lead, *, reason: str, at, inputs: dict, detail: str, rule: CompiledRule | None = None):
    lead.status = LeadStatus.EXCEPTION
    lead.routed_at = at
    lead.save()
    item = exception_open(lead=lead, reason=reason, detail=detail, at=at)
    audit_record(
        action=AuditAction.ROUTING_DECISION,
        lead=lead,
        rule=rule,
        inputs=inputs,
        outcome=reason,
        at=at,
        data={
            "exception_id": item.id,
            "exception_queue": item.queue.name,
            "queue": lead.queue.name if lead.queue else None,
            "detail": detail,
        },
    )


def leads_claim_stuck(*, limit: int = 5000) -> list[int]:
    """Claim leads still `received` past the grace period for publishing again.

    A lead becomes due `grace` after intake, then 2, 4, … 32 × `grace` after each re-queue, so a backlog
    that is merely slow is not flooded with copies. Claimed rows are stamped in the same transaction and
    locked rows are skipped, so two sweeps at once never claim the same lead."""
    now = timezone.now()
    grace = dt.timedelta(seconds=settings.HANDOFF["REQUEUE_GRACE_SECONDS"])
    with transaction.atomic():
        lead_ids = list(
            Lead.objects.filter(status=LeadStatus.RECEIVED, received_at__lt=now - grace)
            .filter(Q(requeue_after__isnull=True) | Q(requeue_after__lte=now))
            .order_by("received_at")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        backoff = Case(
            *(When(requeue_count=n, then=Value(now + grace * 2 ** (n + 1))) for n in range(MAX_REQUEUE_DOUBLINGS)),
            default=Value(now + grace * 2**MAX_REQUEUE_DOUBLINGS),
        )
        Lead.objects.filter(pk__in=lead_ids).update(requeue_after=backoff, requeue_count=F("requeue_count") + 1)
    return lead_ids
