"""Remediation: the leads a rule version decided that the live rules now route elsewhere, listed and re-routed.

Rollback only changes future routing; a bad version's leads keep their wrong owner. A lead counts as this
version's when its recorded decision (`Lead.rule`, `Lead.rule_version`) is the version and it is still
assigned. It is misrouted when the live production set, evaluated in memory over the lead and the account
it was matched to when routed (as a replay does), picks a different queue than the version did; a different
rule sending it to the same queue changes nobody's owner, so it is not listed.

Left alone, and listed as such: a lead a person assigned by hand after it was routed (an Override since its
decision: someone already judged it), and a lead no live rule matches (it would only become a triage item;
a person should assign it). Re-routing writes a new decision (the live rule and version, routed now), so
running it again finds nothing to move."""

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from audit.models import AuditAction, Override
from audit.services import audit_event, audit_record
from exceptions.models import Notification, NotificationKind
from exceptions.sla import next_open
from routing.assignment import pick_assignees
from routing.availability.credit import turn_credit_back
from routing.bulk import bulk_insert
from routing.engine import RuleSet, production_ruleset
from routing.governance.models import RuleVersion
from routing.governance.services import can_govern
from routing.integrations import events as integration_events
from routing.lead_store import leads_assignment_write
from routing.models import Lead, LeadStatus, Queue, Source

CHUNK = 2_000
ACCOUNT_VIEW = "account_match__account_view"
# What a re-route changes on the lead: a new decision and a new owner.
REROUTED_FIELDS = ["status", "queue", "assignee", "assigned_at", "rule", "rule_version", "routed_at"]
# Notification keys of a re-route (exceptions/notifications.py words their emails by this prefix).
NOTIFICATION_KEY_PREFIX = "leads:"


class LeadState(models.TextChoices):
    REROUTE = "reroute", "The live rules route it elsewhere"
    MOVED_BY_HAND = "moved_by_hand", "Assigned by hand since; left alone"
    NO_LIVE_MATCH = "no_live_match", "No live rule matches it; assign it by hand"


class SkipReason(models.TextChoices):
    BUSY = "busy", "locked by someone else, or changed meanwhile (no longer this version's)"
    MOVED_BY_HAND = "moved_by_hand", "assigned by hand since it was routed"
    NO_LIVE_MATCH = "no_live_match", "no live rule matches it now"
    SAME_QUEUE = "same_queue", "the live rules route it to the same queue"
    NOBODY_AVAILABLE = "nobody_available", "nobody available under the cap in the new queue"


@dataclass(frozen=True)
class MisroutedLead:
    id: int
    lead_id: str  # the capture system's id
    queue: str | None  # where it is now
    assignee: str | None
    assignee_id: int | None
    state: str  # LeadState
    new_rule_id: int | None = None
    new_rule: str | None = None
    new_version: int | None = None
    new_queue: str | None = None
    new_queue_id: int | None = None


@dataclass
class Misrouted:
    version: RuleVersion
    rows: list[MisroutedLead]  # in lead id order; the first `limit` when one was given
    counts: Counter  # LeadState -> exact number, whatever the limit
    checked_all: bool = True  # False: only the newest `newest` leads the version decided were checked

    @property
    def count(self) -> int:
        return self.counts[LeadState.REROUTE]

    def of(self, state: str) -> list[MisroutedLead]:
        return [row for row in self.rows if row.state == state]


@dataclass
class RerouteResult:
    dry_run: bool
    moved: list[MisroutedLead] = field(default_factory=list)  # with dry_run: what would move
    skipped: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))  # SkipReason -> lead pks
    event_id: int | None = None

    def summary(self) -> str:
        verb = "would move" if self.dry_run else "moved"
        text = f"{len(self.moved)} lead(s) {verb}"
        if self.skipped:
            reasons = "; ".join(
                f"{len(ids)} {SkipReason(reason).label}" for reason, ids in sorted(self.skipped.items())
            )
            text += f", {sum(len(ids) for ids in self.skipped.values())} skipped ({reasons})"
        return text + "."


def decided_by(version: RuleVersion):
    """The assigned leads whose recorded decision is this version, each flagged when assigned by hand since."""
    by_hand = Override.objects.filter(lead=OuterRef("pk"), at__gte=OuterRef("routed_at"))
    return Lead.objects.filter(
        rule_id=version.rule_id, rule_version=version.number, status=LeadStatus.ASSIGNED
    ).annotate(moved_by_hand=Exists(by_hand))


def misrouted_leads(*, version: RuleVersion, limit: int | None = None, newest: int | None = None) -> Misrouted:
    """The leads this version decided that the live rules route elsewhere, with those left alone and why.
    Set-based: two queries (queue names, then the leads streamed in chunks), the engine in memory. `newest`
    checks only that many of the version's newest leads (a page must answer fast; a version live for months
    decided far more, which `reroute_leads` goes through)."""
    ruleset = production_ruleset()
    queue_names = dict(Queue.objects.values_list("id", "name"))
    fields = (
        "id",
        "lead_id",
        "queue_id",
        "assignee_id",
        "assignee__username",
        "moved_by_hand",
        *Lead.ROUTABLE_FIELDS,
        ACCOUNT_VIEW,
    )
    rows, counts, checked_all = [], Counter(), True
    leads = decided_by(version).order_by("id").values(*fields)
    if newest is not None:
        window = list(decided_by(version).order_by("-id").values_list("id", flat=True)[: newest + 1])
        checked_all = len(window) <= newest
        leads = leads.filter(id__gte=window[:newest][-1]) if window else leads.none()
    for values in leads.iterator(chunk_size=CHUNK):
        row = _classify(values, version, ruleset, queue_names)
        if row is None:
            continue
        counts[row.state] += 1
        if limit is None or len(rows) < limit:
            rows.append(row)
    return Misrouted(version=version, rows=rows, counts=counts, checked_all=checked_all)


def _classify(values: dict, version: RuleVersion, ruleset: RuleSet, queue_names: dict) -> MisroutedLead | None:
    """The lead's row, or None when the live rules still send it to the version's queue."""
    view = Lead.view_from(values)
    view["account"] = values[ACCOUNT_VIEW]
    match = ruleset.evaluate(view)
    live = match.rule
    if live is not None and live.queue_id == version.queue_id:
        return None
    if values["moved_by_hand"]:
        state = LeadState.MOVED_BY_HAND
    else:
        state = LeadState.REROUTE if live is not None else LeadState.NO_LIVE_MATCH
    return MisroutedLead(
        id=values["id"],
        lead_id=values["lead_id"],
        queue=queue_names.get(values["queue_id"]),
        assignee=values["assignee__username"],
        assignee_id=values["assignee_id"],
        state=state,
        new_rule_id=live.id if live else None,
        new_rule=live.name if live else None,
        new_version=live.version if live else None,
        new_queue=queue_names.get(live.queue_id) if live else None,
        new_queue_id=live.queue_id if live else None,
    )


def require_remediator(user, version: RuleVersion) -> None:
    if not can_govern(user, version.rule):
        owner = version.rule.owner.get_username() if version.rule.owner_id else "nobody yet"
        raise PermissionDenied(f"Only the rule's owner ({owner}) or an admin can re-route the leads {version} decided.")


def leads_reroute(
    *,
    version: RuleVersion,
    by,
    lead_ids: Iterable[int] | None = None,
    dry_run: bool = False,
    newest: int | None = None,
) -> RerouteResult:
    """Re-route this version's misrouted leads (those among `lead_ids`, or all) through the live rules in one
    audited action. Leads someone else holds are skipped, not waited for; so are leads that changed since the
    list was read, were assigned by hand, match no live rule, or find nobody available. With `dry_run` nothing
    is written and `by` may be None (the shell listing what would move)."""
    if not (dry_run and by is None):
        require_remediator(by, version)
    wanted = None if lead_ids is None else {int(pk) for pk in lead_ids}
    if dry_run:
        return _dry_run(version, wanted)
    if wanted is None:
        # "All": the leads the list shows (those left alone too, so the result says why), not every lead the
        # version decided: a version still live may have decided many more that need nothing.
        wanted = {row.id for row in misrouted_leads(version=version, newest=newest).rows}
    result = RerouteResult(dry_run=False)
    with transaction.atomic():
        # Locked, skipping those someone else holds: a worker or a person is changing them right now.
        locked = list(
            decided_by(version)
            .filter(pk__in=wanted)
            .select_for_update(skip_locked=True, no_key=True, of=("self",))
            .annotate(account_view=F(ACCOUNT_VIEW))
            .order_by("id")
        )
        result.skipped[SkipReason.BUSY] += sorted(wanted - {lead.pk for lead in locked})
        _attach_related(locked)
        ruleset = production_ruleset()
        by_queue: dict[int, list[tuple[Lead, object, dict]]] = defaultdict(list)
        for lead in locked:
            view = lead.routing_view()
            view["account"] = lead.account_view  # as matched when it was routed (None: no match row)
            match = ruleset.evaluate(view)
            if match.rule is not None and match.rule.queue_id == version.queue_id:
                result.skipped[SkipReason.SAME_QUEUE].append(lead.pk)
            elif lead.moved_by_hand:
                result.skipped[SkipReason.MOVED_BY_HAND].append(lead.pk)
            elif match.rule is None:
                result.skipped[SkipReason.NO_LIVE_MATCH].append(lead.pk)
            else:
                by_queue[match.rule.queue_id].append((lead, match.rule, match.inputs))
        now = timezone.now()
        moves = []  # (lead, rule, inputs, from queue, from assignee)
        # Every queue this touches, locked up front in one id order: the picks lock the new queues and the credits
        # back the old ones, which in two orders could wait on a concurrent re-route in a circle.
        touched = set(by_queue) | {lead.queue_id for group in by_queue.values() for lead, _, _ in group}
        list(Queue.objects.select_for_update(no_key=True).filter(pk__in=touched - {None}).order_by("pk").values("pk"))
        for queue_id in sorted(by_queue):  # queues locked in id order, as routing does
            group = by_queue[queue_id]
            for (lead, rule, inputs), pick in zip(
                group, pick_assignees(queue_id=queue_id, count=len(group)), strict=True
            ):
                if pick.assignee is None:
                    result.skipped[SkipReason.NOBODY_AVAILABLE].append(lead.pk)
                    continue
                moves.append((lead, rule, inputs, lead.queue, lead.assignee))
                lead.status, lead.queue, lead.assignee, lead.assigned_at = (
                    LeadStatus.ASSIGNED,
                    pick.queue,
                    pick.assignee,
                    now,
                )
                lead.rule_id, lead.rule_version, lead.routed_at = rule.id, rule.version, now
        # The rule was wrong, not the member: a turn the strategy gave them and the fix took away is given back.
        for lead, _, _, old_queue, old_assignee in sorted(moves, key=lambda move: move[3].pk if move[3] else 0):
            if old_assignee is not None and old_assignee != lead.assignee:
                turn_credit_back(
                    lead=lead,
                    queue_id=old_queue and old_queue.pk,
                    taken_from=old_assignee,
                    by=by,
                    how="remediation",
                    at=now,
                )
        result.skipped = {reason: ids for reason, ids in result.skipped.items() if ids}
        result.moved = [
            _moved_row(lead, rule, old_queue, old_assignee) for lead, rule, _, old_queue, old_assignee in moves
        ]
        event = audit_record(
            action=AuditAction.LEAD_REROUTED,
            actor=by,
            rule=version.rule,
            rule_version=version.number,
            outcome="remediated",
            at=now,
            data={
                "remediation": True,
                "version": version.number,
                "moved": len(moves),
                "moved_leads": [lead.pk for lead, *_ in moves],
                "skipped": {reason: ids for reason, ids in result.skipped.items()},
            },
        )
        result.event_id = event.pk
        if moves:
            _record_moves(moves, version=version, by=by, event=event, at=now)
    return result


def _attach_related(leads: list[Lead]) -> None:
    """The few sources, queues and people the leads name, read once each and shared: joining them into the
    locked read built thousands of copies (a third of a 5,000-lead re-route's time)."""
    sources = Source.objects.in_bulk({lead.origin_id for lead in leads})
    queues = Queue.objects.in_bulk({lead.queue_id for lead in leads} - {None})
    people = get_user_model().objects.in_bulk({lead.assignee_id for lead in leads} - {None})
    for lead in leads:
        lead.origin = sources[lead.origin_id]
        lead.queue = queues.get(lead.queue_id)
        lead.assignee = people.get(lead.assignee_id)


def _dry_run(version: RuleVersion, wanted: set[int] | None) -> RerouteResult:
    result = RerouteResult(dry_run=True)
    found = misrouted_leads(version=version)
    reasons = {LeadState.MOVED_BY_HAND: SkipReason.MOVED_BY_HAND, LeadState.NO_LIVE_MATCH: SkipReason.NO_LIVE_MATCH}
    for row in found.rows:
        if wanted is not None and row.id not in wanted:
            continue
        if row.state == LeadState.REROUTE:
            result.moved.append(row)
        else:
            result.skipped[reasons[row.state]].append(row.id)
    if wanted is not None:
        listed = {row.id for row in found.rows}
        decided = set(decided_by(version).filter(pk__in=wanted - listed).values_list("pk", flat=True))
        if wanted - listed - decided:
            result.skipped[SkipReason.BUSY] += sorted(wanted - listed - decided)
        if decided:
            result.skipped[SkipReason.SAME_QUEUE] += sorted(decided)
    result.skipped = {reason: ids for reason, ids in result.skipped.items() if ids}
    return result


def _moved_row(lead: Lead, rule, old_queue, old_assignee) -> MisroutedLead:
    return MisroutedLead(
        id=lead.pk,
        lead_id=lead.lead_id,
        queue=old_queue.name if old_queue else None,
        assignee=old_assignee.get_username() if old_assignee else None,
        assignee_id=old_assignee.pk if old_assignee else None,
        state=LeadState.REROUTE,
        new_rule_id=rule.id,
        new_rule=rule.name,
        new_version=rule.version,
        new_queue=lead.queue.name,
        new_queue_id=lead.queue_id,
    )


def _record_moves(moves: list, *, version: RuleVersion, by, event, at: dt.datetime) -> None:
    """The leads' rows and history, a decision record per lead (as a person's re-route is recorded), the
    outbox's lead.reassigned events and the notifications of the old and new owners: all in bulk."""
    leads = [lead for lead, *_ in moves]
    leads_assignment_write(leads, REROUTED_FIELDS, at=at)
    reason = f"Re-routed by the live rules: {version} had decided it (remediation #{event.pk})."
    bulk_insert(
        [
            audit_event(
                action=AuditAction.LEAD_REROUTED,
                actor=by,
                lead=lead,
                rule=rule,
                inputs=inputs,
                outcome="assigned",
                at=at,
                data={
                    "remediation_event": event.pk,
                    "reason": reason,
                    "before": {
                        "queue": old_queue.name if old_queue else None,
                        "assignee": old_assignee.get_username() if old_assignee else None,
                        "rule_version": version.number,
                    },
                    "after": {"queue": lead.queue.name, "assignee": lead.assignee.get_username()},
                },
            )
            for lead, rule, inputs, old_queue, old_assignee in moves
        ]
    )
    integration_events.leads_reassigned(
        moves=[(lead, old_queue, old_assignee) for lead, _, _, old_queue, old_assignee in moves], by=by, reason=reason
    )
    _notify(moves, event=event, at=at)


def _notify(moves: list, *, event, at: dt.datetime) -> None:
    """One notification per person and queue: to each previous owner about the leads taken from them, and to
    each new owner about the leads given to them (delivered in the queue's business hours)."""
    groups: Counter = Counter()
    queues: dict[int, Queue] = {}
    for lead, _, _, old_queue, old_assignee in moves:
        groups[("to", lead.queue_id, lead.assignee_id)] += 1
        queues[lead.queue_id] = lead.queue
        if old_assignee is not None and old_queue is not None:
            groups[("from", old_queue.pk, old_assignee.pk)] += 1
            queues[old_queue.pk] = old_queue
    opens = {queue_id: next_open(at, queue.business_hours()) for queue_id, queue in queues.items()}
    Notification.objects.bulk_create(
        Notification(
            queue=queues[queue_id],
            item_ids=[],
            item_count=count,
            key=f"{NOTIFICATION_KEY_PREFIX}{event.pk}:{direction}:{recipient}",
            kind=NotificationKind.REASSIGNED,
            recipient_id=recipient,
            created_at=at,
            deliver_after=opens[queue_id],
        )
        for (direction, queue_id, recipient), count in sorted(groups.items())
    )
