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
from routing.accounts.identity import lead_link_identity, person_open_item, routing_choice
from routing.accounts.leads import lead_match_account
from routing.assignment import Pick, pick_assignee
from routing.engine import CONTACT_FIELDS, CompiledRule, Match, RuleSets, routing_rulesets
from routing.governance.models import ShadowDecision
from routing.integrations import events as integration_events
from routing.integrations.models import EnrichmentStatus
from routing.models import Lead, LeadStatus, Queue

logger = logging.getLogger(__name__)
MAX_REQUEUE_DOUBLINGS = 5


def lead_route(*, lead_id: int, rulesets: RuleSets | None = None) -> Lead | None:
    """Route one received lead by the production rules (`rulesets`, when a caller routing many leads
    fetched them once), and record what the staging rules would have done. Idempotent: a lead that is no
    longer `received` (routed by an earlier delivery of the same task) is returned untouched."""
    rulesets = rulesets or routing_rulesets()
    ruleset = rulesets.production
    with transaction.atomic():
        # The row lock makes a second delivery of the same lead wait, then see it already routed.
        lead = Lead.objects.select_for_update().filter(pk=lead_id).first()
        if lead is None or lead.status != LeadStatus.RECEIVED:
            return lead
        now = timezone.now()
        # The lead's account and person, found before any rule reads them (routing/accounts).
        account = lead_match_account(lead=lead, at=now)
        identity = lead_link_identity(lead=lead, at=now)
        if not lead.email and not lead.phone:
            _to_exception(
                lead,
                reason=ExceptionReason.MISSING_CONTACT,
                at=now,
                inputs={
                    **{field: getattr(lead, field) for field in CONTACT_FIELDS},
                    "account_match": account.audit,
                    "identity": identity.audit,
                },
                detail="The lead has neither an email address nor a phone number.",
            )
            return lead

        if lead.enrichment_status == EnrichmentStatus.FAILED and _needs_review(lead):
            _to_exception(
                lead,
                reason=ExceptionReason.ENRICHMENT_FAILED,
                at=now,
                inputs={
                    "intent_score": lead.intent_score,
                    "enrichment": lead.enrichment_status,
                    "account_match": account.audit,
                    "identity": identity.audit,
                },
                detail=f"Enrichment failed and intent is {lead.intent_score:g}: review the lead before it routes.",
                queue=enrichment_review_queue(),
            )
            return lead
        view = lead.routing_view()
        view["account"] = account.view
        match = ruleset.evaluate(view)
        if rulesets.shadow is not None:
            _record_shadow(lead, match, rulesets.shadow.evaluate(view), at=now)
        inputs = {**match.inputs, "account_match": account.audit, "identity": identity.audit}
        if match.rule is None:
            _to_exception(
                lead,
                reason=ExceptionReason.NO_MATCHING_RULE,
                at=now,
                inputs=inputs,
                detail=f"None of the {len(ruleset)} production rules matched.",
            )
            return lead

        rule = match.rule  # the compiled version that decided, even if an edit landed since
        choice = routing_choice(
            assign_to=rule.assign_to, queue_id=rule.queue_id, account=account.account, identity=identity, now=now
        )
        if choice.user is not None:
            # The account's owner (or the person's sticky owner) takes it in the rule's queue, member or not.
            pick = Pick(queue=Queue.objects.get(pk=rule.queue_id), assignee=choice.user)
        else:
            pick = pick_assignee(queue_id=rule.queue_id)
        lead.queue, lead.rule_id, lead.rule_version, lead.routed_at = pick.queue, rule.id, rule.version, now
        if pick.assignee is None:
            chain = " → ".join((pick.queue.name, *pick.overflowed_from))
            _to_exception(
                lead,
                reason=ExceptionReason.NO_ELIGIBLE_ASSIGNEE,
                at=now,
                inputs=inputs,
                rule=rule,
                detail=f"No available member under the cap in {chain}." + (f" ({choice.note})" if choice.note else ""),
            )
            return lead

        lead.status, lead.assignee, lead.assigned_at = LeadStatus.ASSIGNED, pick.assignee, now
        lead.save()
        audit_record(
            action=AuditAction.ROUTING_DECISION,
            lead=lead,
            rule=rule,
            inputs=inputs,
            outcome="assigned",
            at=now,
            data={
                "queue": pick.queue.name,
                "assignee": pick.assignee.get_username(),
                "assigned_by": choice.how,
                "assignee_note": choice.note,
                "overflowed_from": list(pick.overflowed_from),
                "enrichment": lead.enrichment_status or "not tried",
            },
        )
        integration_events.lead_assigned(lead=lead, rule=rule)  # outbox rows, in this transaction
    return lead


def _record_shadow(lead: Lead, production: Match, shadow: Match, *, at) -> None:
    live, candidate = production.rule, shadow.rule
    ShadowDecision.objects.create(
        lead=lead,
        at=at,
        production_rule_id=live.id if live else None,
        production_version=live.version if live else None,
        production_queue_id=live.queue_id if live else None,
        candidate_rule_id=candidate.id if candidate else None,
        candidate_version=candidate.version if candidate else None,
        candidate_queue_id=candidate.queue_id if candidate else None,
        # What the lead would feel: a different queue, or a match where there was none (or the reverse).
        differs=(live.queue_id if live else None) != (candidate.queue_id if candidate else None),
    )


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


def _needs_review(lead: Lead) -> bool:
    return lead.intent_score is not None and lead.intent_score > settings.HANDOFF["ENRICHMENT_REVIEW_INTENT"]


def enrichment_review_queue() -> Queue:
    """Where high-intent leads go when enrichment failed: a person reviews them within 30 minutes."""
    queue, _ = Queue.objects.get_or_create(
        name=settings.HANDOFF["ENRICHMENT_REVIEW_QUEUE"], defaults={"ack_sla_minutes": 30}
    )
    return queue


def _to_exception(
    lead: Lead,
    *,
    reason: str,
    at,
    inputs: dict,
    detail: str,
    rule: CompiledRule | None = None,
    queue: Queue | None = None,
):
    lead.status = LeadStatus.EXCEPTION
    lead.routed_at = at
    lead.save()
    # The same person's unresolved item for this cause takes the lead in: one item per person and cause.
    item = person_open_item(lead=lead, reason=reason)
    if item is not None:
        detail += f" Same person as lead {item.lead.lead_id}, whose item #{item.pk} is still open: no second item."
    else:
        item = exception_open(lead=lead, reason=reason, detail=detail, at=at, queue=queue)
    audit_record(
        action=AuditAction.ROUTING_DECISION,
        lead=lead,
        rule=rule,
        inputs=inputs,
        outcome=reason,
        at=at,
        data={
            "exception_id": item.id,
            "exception_of_same_person": item.lead_id != lead.id,
            "exception_queue": item.queue.name,
            "queue": lead.queue.name if lead.queue else None,
            "detail": detail,
            "enrichment": lead.enrichment_status or "not tried",
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
