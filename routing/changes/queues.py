"""Changing a queue's routing settings and members from the console, and restoring an earlier version of them.

On a governed queue (`Queue.governed`) a change to who gets its leads (members, weights, availability, cap,
overflow, strategy, availability policy, hours) does not apply at once: it is staged as a CONFIG_CHANGED
audit event (outcome "staged") holding the proposal and its evidence on the queue's recent leads, and
applies when the person who made it, or an admin, confirms it. Nothing but the audit trail stores a staged
change, so it is append-only like the decision it prepares.

The evidence replays the queue's leads of the last days through its strategy twice, with today's members
and settings and with the proposed ones, and lists the leads that would go to a different person (like a
rule replay's moved leads), beside the leads of members the change removes or takes out (those certainly
go to someone else). The replay is of the rotation alone: working hours, time off, caps over time, overflow
and the away policy are not modelled, and the evidence names the changed settings it leaves out."""

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from audit.services import audit_record
from routing.availability.schedule import Schedule
from routing.availability.selectors import schedules_for
from routing.changes.history import (
    ChangeKind,
    RestoreError,
    ValueLabels,
    may_restore,
    restorable_fields,
    restore_reason,
    validate_restored,
    version_get,
)
from routing.models import AssignmentStrategy, EveryoneAway, Lead, OpenLeadCount, Queue, QueueMembership

# The settings that decide who gets a queue's leads: changing them on a governed queue is staged.
ROUTING_FIELDS = (
    "strategy",
    "max_open_per_member",
    "overflow_queue",
    "when_everyone_away",
    "return_policy",
    "distribution_period",
    "credit_back",
    "business_timezone",
    "business_days",
    "business_start",
    "business_end",
)
# Changed settings the evidence does not estimate: the replay models the strategy, who is in at each lead's time
# (working hours, time off), where a lead with nobody in goes (overflow, the away policy) and who a cap skips now.
MODELLED = ("strategy", "max_open_per_member", "overflow_queue", "when_everyone_away")
NOT_ESTIMATED = tuple(name for name in ROUTING_FIELDS if name not in MODELLED)
EVIDENCE_DAYS = 14
REPLAYED_AT_MOST = 20_000  # the newest leads of the window: staging stays well under a second
MOVED_LISTED = 50
# Issue 19's bar: a change that may move more than this share of leads wants a staged rollout and a rollback plan.
MOVED_SHARE_THRESHOLD = 0.005

STAGED, APPLIED, DISCARDED = "staged", "applied", "discarded"


class QueueChangeError(ValueError):
    """A change that cannot be made as asked; the message says why."""


@dataclass
class QueueChangeResult:
    queue: Queue
    applied: bool
    staged: AuditEvent | None
    changed: list[str]


def may_change_queues(user) -> bool:
    return bool(user and user.is_authenticated and (user.is_superuser or user.groups.filter(name="ops").exists()))


def queue_proposal_current(queue: Queue) -> dict:
    """The queue's restorable settings and members as a proposal (the start of an edit)."""
    return {
        "fields": settings_of(queue),
        "members": {
            str(m.user_id): {"weight": m.weight, "is_available": m.is_available}
            for m in queue.memberships.order_by("id")
        },
    }


def settings_of(queue_or_record) -> dict:
    """attname → a JSON-safe value, of a queue or one of its history rows."""
    values = {}
    for f in restorable_fields(Queue):
        value = getattr(queue_or_record, f.attname)
        values[f.attname] = value.isoformat() if isinstance(value, dt.time | dt.date) else value
    return values


def _proposal_values(proposal: dict) -> dict:
    """attname → Python value for the fields a proposal names (stored as JSON-safe strings)."""
    by_attname = {f.attname: f for f in restorable_fields(Queue)}
    values = {}
    for attname, raw in proposal["fields"].items():
        f = by_attname[attname]
        values[attname] = None if raw is None else f.to_python(raw)
    return values


def proposal_differences(queue: Queue, proposal: dict) -> tuple[list[str], list[dict]]:
    """The fields (by name) the proposal changes, and its member changes [{user_id, user, change}]."""
    by_attname = {f.attname: f for f in restorable_fields(Queue)}
    fields = [
        by_attname[attname].name
        for attname, value in _proposal_values(proposal).items()
        if getattr(queue, attname) != value
    ]
    now = {m.user_id: m for m in queue.memberships.all()}
    wanted = {int(uid): spec for uid, spec in proposal["members"].items()}
    names = dict(get_user_model().objects.filter(pk__in=set(now) | set(wanted)).values_list("pk", "username"))
    members = []
    for uid in sorted(set(now) | set(wanted)):
        name = names.get(uid, f"#{uid} (deleted)")
        if uid not in wanted:
            members.append({"user_id": uid, "user": name, "change": "removed"})
        elif uid not in now:
            members.append({"user_id": uid, "user": name, "change": f"added (weight {wanted[uid]['weight']})"})
        else:
            old, new = now[uid], wanted[uid]
            if old.weight != new["weight"]:
                members.append({"user_id": uid, "user": name, "change": f"weight {old.weight} → {new['weight']}"})
            if old.is_available != new["is_available"]:
                state = "available" if new["is_available"] else "unavailable"
                members.append({"user_id": uid, "user": name, "change": f"now {state}"})
    return fields, members


def queue_change_propose(*, queue: Queue, proposal: dict, by, restored_from: int | None = None) -> QueueChangeResult:
    """Apply a change to a queue's settings and members, or stage it with its evidence when the change alters
    routing and the queue is governed or this is a restore. `restored_from`: the history row a restore brings
    back."""
    allowed = may_restore(by) if restored_from is not None else may_change_queues(by)
    if not allowed:
        raise PermissionDenied(
            "Only admins restore an earlier configuration."
            if restored_from is not None
            else "Only ops staff and admins change a queue's routing settings."
        )
    fields, members = proposal_differences(queue, proposal)
    if not fields and not members:
        raise QueueChangeError(f"{queue} already has these settings; nothing to change.")
    _validated_copy(queue, proposal)
    # A restore of a queue is staged whether or not the queue is governed: bringing back an old member list can
    # empty a queue in one click, so the admin sees who would be added or removed, and its evidence, first.
    if (queue.governed or restored_from is not None) and (members or set(fields) & set(ROUTING_FIELDS)):
        event = audit_record(
            action=AuditAction.CONFIG_CHANGED,
            actor=by,
            outcome=STAGED,
            data={
                "kind": ChangeKind.QUEUE,
                "queue_id": queue.pk,
                "queue": queue.name,
                "proposal": proposal,
                "fields": fields,
                "field_changes": _field_changes(queue, proposal, fields),
                "members": members,
                "restored_from": restored_from,
                "base": _versions_now(queue),
                "evidence": queue_change_evidence(queue=queue, proposal=proposal, fields=fields),
            },
        )
        return QueueChangeResult(queue=queue, applied=False, staged=event, changed=fields)
    with transaction.atomic():
        locked = Queue.objects.select_for_update().get(pk=queue.pk)
        _apply(locked, proposal, by=by, restored_from=restored_from, fields=fields, members=members)
    return QueueChangeResult(queue=locked, applied=True, staged=None, changed=fields)


def _field_changes(queue: Queue, proposal: dict, fields: list[str]) -> list[dict]:
    values, labels = _proposal_values(proposal), ValueLabels()
    changes = []
    for name in fields:
        f = Queue._meta.get_field(name)
        old, new = getattr(queue, f.attname), values[f.attname]
        changes.append(
            {"field": name, "label": str(f.verbose_name), "old": labels.show(f, old), "new": labels.show(f, new)}
        )
    return changes


def queue_restore(*, queue: Queue, kind: str, history_id: int, by) -> QueueChangeResult:
    """Bring a queue back to how it stood right after history row `history_id` (of the queue or of one of its
    memberships): its settings and its members as they were then (as_of). Staged on a governed queue."""
    if not may_restore(by):
        raise PermissionDenied("Only admins restore an earlier configuration.")
    if kind not in (ChangeKind.QUEUE, ChangeKind.MEMBERSHIP):
        raise RestoreError("A queue is restored from one of its own versions or its memberships'.")
    record = version_get(kind=kind, history_id=history_id)
    if (record.id if kind == ChangeKind.QUEUE else record.queue_id) != queue.pk:
        raise RestoreError(f"Version #{history_id} is not one of {queue}'s.")
    at = record.history_date
    queue_then = (
        Queue.history.filter(id=queue.pk, history_date__lte=at).order_by("-history_date", "-history_id").first()
    )
    if queue_then is None:
        raise RestoreError(f"{queue} has no recorded version at or before {at:%Y-%m-%d %H:%M:%S}.")
    members_then = list(QueueMembership.history.as_of(at).filter(queue_id=queue.pk))
    existing = set(
        get_user_model().objects.filter(pk__in=[m.user_id for m in members_then]).values_list("pk", flat=True)
    )
    proposal = {
        "fields": settings_of(queue_then),
        "members": {
            str(m.user_id): {"weight": m.weight, "is_available": m.is_available}
            for m in members_then
            if m.user_id in existing  # a person deleted since cannot come back
        },
    }
    overflow = proposal["fields"].get("overflow_queue_id")
    if overflow and not Queue.objects.filter(pk=overflow).exists():
        proposal["fields"]["overflow_queue_id"] = None  # deleted since: left without one
    return queue_change_propose(queue=queue, proposal=proposal, by=by, restored_from=record.history_id)


def _validated_copy(queue: Queue, proposal: dict) -> Queue:
    copy = Queue.objects.get(pk=queue.pk)
    for attname, value in _proposal_values(proposal).items():
        setattr(copy, attname, value)
    try:
        validate_restored(copy)
    except RestoreError as exc:
        raise QueueChangeError(str(exc).replace("That version cannot be restored", "Not changed")) from None
    if copy.overflow_queue_id == queue.pk:
        raise QueueChangeError("A queue cannot overflow to itself; choose another queue or none.")
    weights = [spec["weight"] for spec in proposal["members"].values()]
    if any(not isinstance(w, int) or w < 1 for w in weights):
        raise QueueChangeError("Every member's weight must be a whole number of at least 1.")
    return copy


def _versions_now(queue: Queue) -> list:
    """The newest history rows of the queue and its memberships: a staged change applies only onto these."""
    newest_queue = Queue.history.filter(id=queue.pk).order_by("-history_id").values_list("history_id", flat=True)
    newest_member = (
        QueueMembership.history.filter(queue_id=queue.pk).order_by("-history_id").values_list("history_id", flat=True)
    )
    return [newest_queue.first(), newest_member.first()]


def _apply(queue: Queue, proposal: dict, *, by, restored_from, fields, members, staged_id=None) -> None:
    """Write the proposal (memberships, then the queue) and its audit event; inside the caller's transaction,
    under the queue's row lock."""
    reason = "Changed in the console"
    if restored_from is not None:
        kind_record = (
            Queue.history.filter(history_id=restored_from).first()
            or QueueMembership.history.filter(history_id=restored_from).first()
        )
        reason = restore_reason(kind_record) if kind_record is not None else f"Restored version #{restored_from}"
    wanted = {int(uid): spec for uid, spec in proposal["members"].items()}
    for membership in list(queue.memberships.all()):
        spec = wanted.pop(membership.user_id, None)
        membership._history_user, membership._change_reason = by, reason
        if spec is None:
            membership.delete()
        elif (membership.weight, membership.is_available) != (spec["weight"], spec["is_available"]):
            membership.weight, membership.is_available = spec["weight"], spec["is_available"]
            membership.save()
    for uid, spec in wanted.items():
        membership = QueueMembership(queue=queue, user_id=uid, weight=spec["weight"], is_available=spec["is_available"])
        membership._history_user, membership._change_reason = by, reason
        membership.save()
    for attname, value in _proposal_values(proposal).items():
        setattr(queue, attname, value)
    queue._history_user, queue._change_reason = by, reason
    try:
        with transaction.atomic():
            queue.save()
    except IntegrityError as exc:
        raise QueueChangeError(f"Not changed: {exc}") from None
    audit_record(
        action=AuditAction.CONFIG_RESTORED if restored_from is not None else AuditAction.CONFIG_CHANGED,
        actor=by,
        outcome="restored" if restored_from is not None else APPLIED,
        data={
            "kind": ChangeKind.QUEUE,
            "object_id": queue.pk,
            "queue_id": queue.pk,
            "object": queue.name,
            "restored_from": restored_from,
            "staged_event": staged_id,
            "fields": fields,
            "members": members,
        },
    )


def staged_changes(*, queue: Queue | None = None):
    """Staged queue changes nobody has applied or discarded yet, newest first."""
    staged = AuditEvent.objects.filter(action=AuditAction.CONFIG_CHANGED, outcome=STAGED).select_related("actor")
    if queue is not None:
        staged = staged.filter(data__queue_id=queue.pk)
    settled = set(
        AuditEvent.objects.filter(
            action__in=(AuditAction.CONFIG_CHANGED, AuditAction.CONFIG_RESTORED), data__has_key="staged_event"
        )
        .exclude(data__staged_event=None)
        .values_list("data__staged_event", flat=True)
    )
    return [event for event in staged.order_by("-occurred_at", "-id") if event.pk not in settled]


def staged_get(*, event_id: int) -> tuple[AuditEvent, str]:
    """A staged change and its state: staged, applied or discarded."""
    event = AuditEvent.objects.filter(pk=event_id, action=AuditAction.CONFIG_CHANGED, outcome=STAGED).first()
    if event is None:
        raise QueueChangeError(f"There is no staged change #{event_id}.")
    settled = (
        AuditEvent.objects.filter(data__staged_event=event.pk)
        .filter(action__in=(AuditAction.CONFIG_CHANGED, AuditAction.CONFIG_RESTORED))
        .order_by("id")
        .first()
    )
    if settled is None:
        return event, STAGED
    return event, DISCARDED if settled.outcome == DISCARDED else APPLIED


def _may_settle(event: AuditEvent, by) -> None:
    if not (by and by.is_authenticated and (by.is_superuser or event.actor_id == by.pk)):
        raise PermissionDenied("Only the person who staged this change, or an admin, may apply or discard it.")


def queue_change_confirm(*, event_id: int, by) -> Queue:
    """Apply a staged change, if the queue has not changed since it was staged (its evidence would be stale)."""
    event, _state = staged_get(event_id=event_id)
    _may_settle(event, by)
    data = event.data
    with transaction.atomic():
        queue = Queue.objects.select_for_update().filter(pk=data["queue_id"]).first()
        if queue is None:
            raise QueueChangeError("The queue has been deleted; the staged change cannot apply.")
        _event, state = staged_get(event_id=event_id)  # again under the lock: two confirms apply once
        if state != STAGED:
            raise QueueChangeError(f"This change was already {state}.")
        if _versions_now(queue) != data["base"]:
            raise QueueChangeError(
                f"{queue} changed after this was staged, so its evidence is out of date; discard it and stage it again."
            )
        _apply(
            queue,
            data["proposal"],
            by=by,
            restored_from=data.get("restored_from"),
            fields=data["fields"],
            members=data["members"],
            staged_id=event.pk,
        )
    return queue


def queue_change_discard(*, event_id: int, by) -> None:
    event, state = staged_get(event_id=event_id)
    _may_settle(event, by)
    with transaction.atomic():
        Queue.objects.select_for_update().filter(pk=event.data["queue_id"]).first()
        _event, state = staged_get(event_id=event_id)
        if state != STAGED:
            raise QueueChangeError(f"This change was already {state}.")
        audit_record(
            action=AuditAction.CONFIG_CHANGED,
            actor=by,
            outcome=DISCARDED,
            data={"kind": ChangeKind.QUEUE, "queue_id": event.data["queue_id"], "staged_event": event.pk},
        )


def _shares(strategy: str, members: dict[int, dict]) -> dict[int, float]:
    """Each available member's expected share of the queue's leads."""
    eligible = {uid: spec for uid, spec in members.items() if spec["is_available"]}
    if not eligible:
        return {}
    weighted = strategy == AssignmentStrategy.WEIGHTED_ROUND_ROBIN
    total = sum(spec["weight"] if weighted else 1 for spec in eligible.values())
    return {uid: (spec["weight"] if weighted else 1) / total for uid, spec in eligible.items()}


def replay_picks(
    strategy: str,
    members: dict[int, dict],
    count: int,
    *,
    at: list[dt.datetime] | None = None,
    schedules: dict[int, Schedule | None] | None = None,
) -> list[int | None]:
    """Who the queue's strategy picks for `count` leads in a row, from a fresh rotation: the lowest pass is
    served and moves on by 1/weight (routing/assignment.py), least loaded serves the fewest leads first. Given
    each lead's time and the members' schedules, only those in then (working hours, not on time off) are
    picked; None where nobody was (the lead overflows or follows the away policy). Caps over time are left out,
    the same for both sides compared."""
    eligible = sorted(uid for uid, spec in members.items() if spec["is_available"])
    if not eligible:
        return [None] * count
    weighted = strategy == AssignmentStrategy.WEIGHTED_ROUND_ROBIN
    step = {uid: 1.0 / (members[uid]["weight"] if weighted else 1) for uid in eligible}
    passes, load = dict.fromkeys(eligible, 0.0), dict.fromkeys(eligible, 0)
    least_loaded = strategy == AssignmentStrategy.LEAST_LOADED
    schedules = schedules or {}

    def order(uid):
        return (load[uid], passes[uid], uid) if least_loaded else (passes[uid], uid)

    def is_in(uid, moment) -> bool:
        schedule = schedules.get(uid)
        return schedule is None or not schedule.why_not_in(moment)

    picks = []
    for i in range(count):
        candidates = eligible if at is None else [uid for uid in eligible if is_in(uid, at[i])]
        if not candidates:
            picks.append(None)
            continue
        uid = min(candidates, key=order)
        passes[uid] += step[uid]
        load[uid] += 1
        picks.append(uid)
    return picks


def _nobody_in_goes(values: dict) -> str:
    """Where a lead with nobody in goes, as the queue's settings say (routing/assignment.py)."""
    policy = values["when_everyone_away"]
    if policy == EveryoneAway.HOLD:
        return "held until the first member's hours start"
    if policy == EveryoneAway.EXCEPTION:
        return "an exception (no_eligible_assignee)"
    overflow = values["overflow_queue_id"]
    name = Queue.objects.filter(pk=overflow).values_list("name", flat=True).first() if overflow else None
    return f"the overflow queue {name}" if name else "an exception (no_eligible_assignee): no overflow queue"


def queue_change_evidence(*, queue: Queue, proposal: dict, fields: list[str], days: int = EVIDENCE_DAYS) -> dict:
    """What the change would have done to the queue's leads of the last `days` (at most REPLAYED_AT_MOST, the
    newest): the leads replayed through the strategy with today's members and settings and with the proposed
    ones (`replay_picks`), those whose person differs listed as moved; the leads of people the change removes
    or makes unavailable (they certainly go to someone else); each member's share before and after; who a
    new cap would skip now; and the changed settings the replay does not model."""
    since = timezone.now() - dt.timedelta(days=days)
    leads = Lead.objects.filter(queue=queue, assignee__isnull=False, assigned_at__gte=since)
    rows = list(
        leads.order_by("-assigned_at", "-id").values_list("id", "lead_id", "assignee_id", "assigned_at")[
            :REPLAYED_AT_MOST
        ]
    )
    rows.reverse()  # replayed in the order they were assigned
    total = len(rows)
    actual = Counter(row[2] for row in rows)
    now_members = {m.user_id: {"weight": m.weight, "is_available": m.is_available} for m in queue.memberships.all()}
    new_members = {int(uid): spec for uid, spec in proposal["members"].items()}
    new_values = {**settings_of(queue), **proposal["fields"]}
    new_strategy = _proposal_values(proposal).get("strategy", queue.strategy)
    times = [row[3] for row in rows]
    schedules = schedules_for({*now_members, *new_members}, at=since)
    picks_now = replay_picks(queue.strategy, now_members, total, at=times, schedules=schedules)
    picks_new = replay_picks(new_strategy, new_members, total, at=times, schedules=schedules)
    share_now, share_new = _shares(queue.strategy, now_members), _shares(new_strategy, new_members)
    people = set(actual) | set(now_members) | set(new_members)
    names = dict(get_user_model().objects.filter(pk__in=people).values_list("pk", "username"))

    def name(uid):
        return "(nobody available)" if uid is None else names.get(uid, f"#{uid}")

    moved = [
        {"id": pk, "lead_id": lead_id, "had": name(had), "from": name(before), "to": name(after)}
        for (pk, lead_id, had, _at), before, after in zip(rows, picks_now, picks_new, strict=True)
        if before != after
    ]
    certain = [row for row in rows if row[2] not in share_new]  # removed, or made unavailable
    replayed_new = Counter(picks_new)
    members = [
        {
            "user": name(uid),
            "leads": actual.get(uid, 0),
            "share_now": round(100 * share_now.get(uid, 0.0), 1),
            "share_new": round(100 * share_new.get(uid, 0.0), 1),
            "leads_new": replayed_new.get(uid, 0),
        }
        for uid in sorted(people, key=name)
    ]
    cap = _proposal_values(proposal).get("max_open_per_member", queue.max_open_per_member)
    at_cap = []
    if cap is not None:
        # As routing.assignment.open_lead_counts reads them (not imported: the console's views import this module).
        open_now = dict(
            OpenLeadCount.objects.filter(assignee_id__in=list(new_members))
            .values("assignee_id")
            .annotate(n=Sum("change"))
            .values_list("assignee_id", "n")
        )
        at_cap = sorted(name(uid) for uid in new_members if (open_now.get(uid) or 0) >= cap)
    moved_count = max(len(moved), len(certain))
    moved_share = moved_count / total if total else 0.0
    return {
        "days": days,
        "leads": total,
        "truncated": total == REPLAYED_AT_MOST,
        "members": members,
        "moved_certain": len(certain),
        "moved_estimate": moved_count,
        "moved_share": round(100 * moved_share, 2),
        "needs_rollout_plan": moved_share > MOVED_SHARE_THRESHOLD,
        "moved_leads": moved[-MOVED_LISTED:][::-1],  # the newest first
        "moved_truncated": len(moved) > MOVED_LISTED,
        "cap": cap,
        "at_cap_now": at_cap,
        "not_estimated": [Queue._meta.get_field(name).verbose_name for name in fields if name in NOT_ESTIMATED],
        "nobody_in": {
            "now": picks_now.count(None),
            "new": picks_new.count(None),
            "goes_now": _nobody_in_goes(settings_of(queue)),
            "goes_new": _nobody_in_goes(new_values),
        },
    }
