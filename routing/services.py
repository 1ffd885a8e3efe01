"""Routing writes: route a lead, record why, and hand what cannot be routed to an exception queue."""

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_event
from exceptions.incidents import Cause, enrichment_cause, enrichment_incident_open, no_rule_cause
from exceptions.models import ExceptionItem, ExceptionReason
from exceptions.services import Opening, exceptions_open
from routing.accounts.identity import (
    leads_link_identities,
    one_lead_per_person,
    people_lock,
    people_open_items,
    routing_choice,
)
from routing.accounts.leads import Availability, leads_match_accounts
from routing.assignment import Pick, pick_assignees
from routing.bulk import bulk_insert
from routing.engine import CONTACT_FIELDS, CompiledRule, Match, RuleSets, routing_rulesets
from routing.experiments.arms import Evaluated, leads_split
from routing.experiments.models import Arm
from routing.governance.models import ShadowDecision
from routing.integrations import events as integration_events
from routing.integrations.models import EnrichmentStatus
from routing.lead_store import leads_assignment_write
from routing.models import Lead, LeadStatus, Queue
from routing.queue_owners import enrichment_review_queue

logger = logging.getLogger(__name__)
MAX_REQUEUE_DOUBLINGS = 5
# What routing changes on an assigned lead.
ASSIGNED_FIELDS = ["status", "queue", "assignee", "assigned_at", "rule", "rule_version", "routed_at", "waiting_until"]
EXCEPTION_FIELDS = ["status", "queue", "rule", "rule_version", "routed_at", "waiting_until"]
HELD = "held"  # the decision's outcome for a held lead
# What routing changes on a lead it holds (everyone in the queue away, the queue holds): it stays `received`.
HELD_FIELDS = ["queue", "rule", "rule_version", "waiting_until"]


def lead_route(*, lead_id: int, rulesets: RuleSets | None = None) -> Lead | None:
    """Route one received lead (see `leads_route`), waiting for its row lock if someone holds it (a person
    re-routing a lead they just corrected). Returns the lead, routed or as it already was."""
    leads_route(lead_ids=[lead_id], rulesets=rulesets, skip_locked=False)
    return Lead.objects.filter(pk=lead_id).select_related("queue").first()


def leads_route(*, lead_ids: Sequence[int], rulesets: RuleSets | None = None, skip_locked: bool = True) -> list[Lead]:
    """Route the received leads among `lead_ids` by the production rules, together, and record what the staging
    rules would have done. Set-based: one locked read of the batch, the engine over all of it in memory, one
    lock per queue for its assignees, then bulk writes of the leads, their history rows, decisions, shadow
    decisions and outbox rows. Returns the leads it routed.

    Idempotent: a lead no longer `received` (routed by an earlier delivery of the same task) is left alone.
    With `skip_locked`, a lead another worker holds is skipped: that worker is routing it. A second lead of the
    same person waits for the first to be routed and committed (a batch of its own, after), so it sees the
    first's owner and exception item as if the two had come one after the other."""
    rulesets = rulesets or routing_rulesets()
    routed, later = _route_batch(lead_ids, rulesets, skip_locked, wait_for_people=not skip_locked)
    while later:
        # The leads left for later wait for their people's locks: the batch that held them has committed or
        # soon will, and waiting (in lock order) cannot close a circle.
        more, later = _route_batch(later, rulesets, skip_locked, wait_for_people=True)
        routed += more
    return routed


def _route_batch(lead_ids, rulesets: RuleSets, skip_locked: bool, *, wait_for_people: bool):
    """Route one lead per person among `lead_ids`, in one transaction; returns (the leads routed, the ids of the
    leads left for the next batch: a person's other leads, and, unless `wait_for_people`, the leads whose person
    another worker is routing)."""
    ruleset = rulesets.production
    with transaction.atomic():
        locked = list(
            Lead.objects.select_for_update(skip_locked=skip_locked, no_key=True, of=("self",))  # NO KEY: assignment.py
            .filter(pk__in=list(lead_ids), status=LeadStatus.RECEIVED)
            # A held lead waits for its time even if a duplicate task or the sweeper delivers it: the beat
            # (routing.availability.waiting) releases it then.
            .filter(Q(waiting_until__isnull=True) | Q(waiting_until__lte=timezone.now()))
            .select_related("origin")
            .order_by("id")
        )
        leads, later = one_lead_per_person(locked)
        leads, busy = people_lock(leads, wait=wait_for_people)
        later = sorted([*busy, *later], key=lambda lead: lead.pk)
        now = timezone.now()
        accounts = leads_match_accounts(leads=leads, at=now)
        identities = leads_link_identities(leads=leads, at=now)
        # The sticky owners' memberships, read once for the batch (account owners are read when first asked).
        availability = Availability((other.assignee for i in identities.values() for other in i.others), at=now)
        by_queue: dict[int, list[Decided]] = defaultdict(list)  # leads the queue's strategy assigns
        direct: list[tuple[Decided, Pick]] = []  # leads an account owner or a sticky owner takes
        shadows: list[ShadowDecision] = []
        unroutable: list[Unroutable] = []  # what goes to a person, written together at the end
        queues: dict[int, Queue] = {}
        outage: bool | None = None  # an enrichment incident open (routing/integrations/enrichment_health.py)
        evaluated = []  # leads the rules were evaluated on, decided once the experiment has split them
        for lead in leads:
            # The lead's account and person, found before any rule reads them (routing/accounts).
            account, identity = accounts[lead.pk], identities[lead.pk]
            found = {"account_match": account.audit, "identity": identity.audit}
            known = bool(identity.others)
            if not lead.email and not lead.phone:
                unroutable.append(
                    Unroutable(
                        lead,
                        reason=ExceptionReason.MISSING_CONTACT,
                        inputs={**{field: getattr(lead, field) for field in CONTACT_FIELDS}, **found},
                        detail="The lead has neither an email address nor a phone number.",
                        known_person=known,
                    )
                )
                continue
            if lead.enrichment_status == EnrichmentStatus.INVALID:
                unroutable.append(
                    Unroutable(
                        lead,
                        reason=ExceptionReason.ENRICHMENT_INVALID,
                        inputs={"enrichment": lead.enrichment_status, **found},
                        detail=_invalid_detail(lead),
                        queue=enrichment_review_queue(),
                        known_person=known,
                    )
                )
                continue
            if lead.enrichment_status == EnrichmentStatus.FAILED and outage is None:
                # Read once per batch, and only when a lead's enrichment failed.
                outage = enrichment_incident_open() is not None
            if lead.enrichment_status == EnrichmentStatus.FAILED and (_needs_review(lead) or outage):
                unroutable.append(
                    Unroutable(
                        lead,
                        reason=ExceptionReason.ENRICHMENT_FAILED,
                        inputs={"intent_score": lead.intent_score, "enrichment": lead.enrichment_status, **found},
                        detail=(
                            f"Enrichment failed and intent is {lead.intent_score:g}: review the lead before it routes."
                            if _needs_review(lead)
                            else "Enrichment failed while the provider is below its success target (an incident is"
                            " open): review the lead before it routes."
                        ),
                        queue=enrichment_review_queue(),
                        known_person=known,
                        cause=enrichment_cause(),
                    )
                )
                continue
            view = lead.routing_view()
            view["account"] = account.view
            match = ruleset.evaluate(view)
            if rulesets.shadow is not None:
                shadows.append(_shadow_decision(lead, match, rulesets.shadow.evaluate(view), at=now))
            trial = rulesets.experiment.candidate.evaluate(view) if rulesets.experiment is not None else None
            evaluated.append((lead, match, trial, found, known, account, identity))
        # The running experiment enrols the leads its rule concerns and says which arm routes each.
        splits = (
            leads_split(
                experiment=rulesets.experiment,
                evaluated=[Evaluated(lead, match, trial) for lead, match, trial, *_ in evaluated],
                at=now,
            )
            if rulesets.experiment is not None
            else {}
        )
        for lead, match, _trial, found, known, account, identity in evaluated:
            inputs = {**match.inputs, **found}
            if lead.pk in splits:
                split = splits[lead.pk]
                match = split.match
                inputs = {**match.inputs, **found, "experiment": {"id": rulesets.experiment.id, "arm": split.arm}}
            if match.rule is None:
                unroutable.append(
                    Unroutable(
                        lead,
                        reason=ExceptionReason.NO_MATCHING_RULE,
                        inputs=inputs,
                        detail=f"None of the {len(ruleset)} production rules matched."
                        + (" (The experiment's candidate arm routed it.)" if _candidate_arm(inputs) else ""),
                        known_person=known,
                        cause=no_rule_cause(
                            source_id=lead.origin_id, source_name=lead.origin.name if lead.origin else "no source"
                        ),
                    )
                )
                continue
            rule = match.rule  # the compiled version that decided, even if an edit landed since
            choice = routing_choice(
                assign_to=rule.assign_to,
                queue_id=rule.queue_id,
                account=account.account,
                identity=identity,
                now=now,
                availability=availability,
            )
            decided = Decided(lead, rule, inputs, choice, known)
            if choice.user is not None:
                # The account's owner (or the person's sticky owner) takes it in the rule's queue, member or not.
                if rule.queue_id not in queues:
                    queues[rule.queue_id] = Queue.objects.get(pk=rule.queue_id)
                direct.append((decided, Pick(queue=queues[rule.queue_id], assignee=choice.user)))
            else:
                by_queue[rule.queue_id].append(decided)

        # Everything that needs no queue lock is written first: the queue locks are what concurrent batches
        # (and the live lane) wait for, so they are taken last and held only for the assignments' writes.
        bulk_insert(shadows)
        _record_exceptions(unroutable, at=now)
        unroutable = []
        picked = list(direct)
        for queue_id in sorted(by_queue):  # queues locked in id order, so two batches never wait in a circle
            group = by_queue[queue_id]
            picked += zip(group, pick_assignees(queue_id=queue_id, count=len(group), at=now), strict=True)
        assigned: list[tuple[Decided, Pick]] = []
        held: list[tuple[Decided, Pick]] = []
        for decided, pick in picked:
            lead, rule = decided.lead, decided.rule
            lead.queue, lead.rule_id, lead.rule_version = pick.queue, rule.id, rule.version
            if pick.hold_until is not None:
                # Everyone is away and the queue holds: not routed yet (routed_at stays null), routed again
                # when the first member's hours start.
                lead.waiting_until = pick.hold_until
                held.append((decided, pick))
                continue
            lead.routed_at, lead.waiting_until = now, None
            if pick.assignee is None:
                chain = " → ".join((pick.queue.name, *pick.overflowed_from))
                note = f" ({decided.choice.note})" if decided.choice.note else ""
                why = pick.why_nobody or f"No available member under the cap in {chain}."
                unroutable.append(
                    Unroutable(
                        lead,
                        reason=ExceptionReason.NO_ELIGIBLE_ASSIGNEE,
                        inputs=decided.inputs,
                        rule=rule,
                        detail=f"{why}{note}",
                        known_person=decided.known_person,
                    )
                )
                continue
            lead.status, lead.assignee, lead.assigned_at = LeadStatus.ASSIGNED, pick.assignee, now
            assigned.append((decided, pick))
        _record_assignments(assigned, at=now)
        _record_held(held, at=now)
        _record_exceptions(unroutable, at=now)  # nobody eligible
    return leads, [lead.pk for lead in later]


@dataclass(frozen=True)
class Decided:
    """A lead a production rule decided: what the engine read, and who the rule's assignee setting chose."""

    lead: Lead
    rule: CompiledRule
    inputs: dict
    choice: object  # routing.accounts.leads.Choice: user None means the queue's strategy picks
    known_person: bool


def _record_assignments(assigned: list[tuple[Decided, Pick]], *, at) -> None:
    """The assigned leads' rows and history rows, their decisions (audit) and their outbox events, in bulk."""
    if not assigned:
        return
    leads_assignment_write([decided.lead for decided, _ in assigned], ASSIGNED_FIELDS, at=at)
    bulk_insert(
        [
            audit_event(
                action=AuditAction.ROUTING_DECISION,
                lead=decided.lead,
                rule=decided.rule,
                inputs=decided.inputs,
                outcome="assigned",
                at=at,
                data={
                    "queue": pick.queue.name,
                    "assignee": pick.assignee.get_username(),
                    "assigned_by": decided.choice.how,
                    "assignee_note": decided.choice.note,
                    "overflowed_from": list(pick.overflowed_from),
                    "enrichment": decided.lead.enrichment_status or "not tried",
                },
            )
            for decided, pick in assigned
        ]
    )
    integration_events.leads_assigned([(decided.lead, decided.rule) for decided, _ in assigned])  # in this transaction


def _record_held(held: list[tuple[Decided, Pick]], *, at) -> None:
    """The held leads' rows and history rows (still `received`, waiting until their queue's first member's
    hours start) and their decisions (audit, outcome "held"), in bulk."""
    if not held:
        return
    leads_assignment_write([decided.lead for decided, _ in held], HELD_FIELDS, at=at)
    bulk_insert(
        [
            audit_event(
                action=AuditAction.ROUTING_DECISION,
                lead=decided.lead,
                rule=decided.rule,
                inputs=decided.inputs,
                outcome=HELD,
                at=at,
                data={
                    "queue": pick.queue.name,
                    "waiting_until": pick.hold_until.isoformat(),
                    "why": pick.why_nobody,
                    "enrichment": decided.lead.enrichment_status or "not tried",
                },
            )
            for decided, pick in held
        ]
    )


def _shadow_decision(lead: Lead, production: Match, shadow: Match, *, at) -> ShadowDecision:
    live, candidate = production.rule, shadow.rule
    return ShadowDecision(
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


def _candidate_arm(inputs: dict) -> bool:
    return (inputs.get("experiment") or {}).get("arm") == Arm.CANDIDATE


def lead_fail_routing(*, lead_id: int, error: str) -> Lead | None:
    """Routing raised something retrying will not fix: put the lead in front of a person, not in limbo."""
    with transaction.atomic():
        lead = Lead.objects.select_for_update(no_key=True).filter(pk=lead_id).first()
        if lead is None or lead.status != LeadStatus.RECEIVED:
            return lead
        reason = ExceptionReason.ROUTING_FAILED
        detail = f"Routing failed: {error}"[:2000]
        _record_exceptions([Unroutable(lead, reason=reason, inputs={}, detail=detail)], at=timezone.now())
    return lead


def _needs_review(lead: Lead) -> bool:
    return lead.intent_score is not None and lead.intent_score > settings.HANDOFF["ENRICHMENT_REVIEW_INTENT"]


def _invalid_detail(lead: Lead) -> str:
    invalid = ((lead.attributes or {}).get("enrichment") or {}).get("invalid") or {}
    wrong = "; ".join(f"{name}: {message}" for name, message in sorted(invalid.items())) or "(not recorded)"
    return f"The enrichment provider answered values intake refuses, so none of those were stored: {wrong}"[:2000]


@dataclass(frozen=True)
class Unroutable:
    """A lead that goes to a person: why, what the engine read, and where (None: the triage queue)."""

    lead: Lead
    reason: str
    inputs: dict
    detail: str
    rule: CompiledRule | None = None
    queue: Queue | None = None
    known_person: bool = True  # False: the lead's person has no other lead, so no other item to join
    cause: Cause | None = None  # what produced it, when one cause can produce many (an incident)


def _record_exceptions(unroutable: list[Unroutable], *, at) -> None:
    """The leads' rows (status `exception`) and history rows, their exception items, and their decisions. The
    same person's unresolved item for the same cause takes a lead in: one item per person and cause."""
    if not unroutable:
        return
    for entry in unroutable:
        entry.lead.status, entry.lead.routed_at, entry.lead.waiting_until = LeadStatus.EXCEPTION, at, None
    leads_assignment_write([entry.lead for entry in unroutable], EXCEPTION_FIELDS, at=at)
    theirs = people_open_items([(entry.lead, entry.reason) for entry in unroutable if entry.known_person])
    held = {id(entry): theirs.get(entry.lead.pk) if entry.known_person else None for entry in unroutable}
    to_open = [entry for entry in unroutable if held[id(entry)] is None]
    opened = exceptions_open(
        openings=[
            Opening(lead=e.lead, reason=e.reason, detail=e.detail, queue=e.queue, cause=e.cause) for e in to_open
        ],
        at=at,
    )
    items = dict(zip(map(id, to_open), opened, strict=True))
    events, waiting = [], []
    for entry in unroutable:
        item, detail = held[id(entry)], entry.detail
        if item is not None:
            detail += (
                f" Same person as lead {item.lead.lead_id}, whose item #{item.pk} is still open: no second item;"
                " this lead follows that item's resolution."
            )
            waiting.append(ExceptionItem.held_leads.through(exceptionitem_id=item.pk, lead_id=entry.lead.pk))
        else:
            item = items[id(entry)]
        events.append(
            audit_event(
                action=AuditAction.ROUTING_DECISION,
                lead=entry.lead,
                rule=entry.rule,
                inputs=entry.inputs,
                outcome=entry.reason,
                at=at,
                data={
                    "exception_id": item.id,
                    "exception_of_same_person": item.lead_id != entry.lead.id,
                    "exception_queue": item.queue.name,
                    "queue": entry.lead.queue.name if entry.lead.queue else None,
                    "detail": detail,
                    "enrichment": entry.lead.enrichment_status or "not tried",
                },
            )
        )
    bulk_insert(events)
    ExceptionItem.held_leads.through.objects.bulk_create(waiting, ignore_conflicts=True)


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
            # A held lead is not lost: it waits for its queue's hours, and the beat releases it then.
            .filter(Q(waiting_until__isnull=True) | Q(waiting_until__lte=now))
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
