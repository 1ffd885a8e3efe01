"""Exception writes: open an item, and every action a person takes on one.

Each action is a conditional UPDATE on the states it is allowed from, checked by row count, so when
two people act at once exactly one wins and the other gets an ExceptionConflict saying what happened.
The change, its audit event and its SLA events are written in one transaction. Every action logs one line
about the item (`exception_id`, and the lead as `lead_pk` and `lead_id`) once it commits, and a conflict one
warning when it is refused: the console, the API and bulk all act through here.
"""

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.http import QueryDict
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from audit.services import audit_event, audit_record
from exceptions import alerts
from exceptions.incidents import Cause, incident_settle, incidents_gather
from exceptions.models import (
    UNRESOLVED,
    UNRESOLVED_STATUSES,
    ExceptionItem,
    ExceptionReason,
    ExceptionStatus,
    Resolution,
    SavedView,
    SlaClock,
    SlaEvent,
    SlaEventKind,
)
from exceptions.sla import add_business_time, business_time_between
from routing.bulk import bulk_insert
from routing.dispatch import Lane, routing_enqueue_on_commit
from routing.integrations import events as integration_events
from routing.integrations.models import OutboxEvent, OutboxStatus
from routing.lead_store import leads_assignment_write
from routing.models import LeadStatus, Queue
from routing.queue_owners import auto_queue_defaults

OPEN, ACKNOWLEDGED, WAITING, RESOLVED = (
    ExceptionStatus.OPEN,
    ExceptionStatus.ACKNOWLEDGED,
    ExceptionStatus.WAITING,
    ExceptionStatus.RESOLVED,
)


class ExceptionConflict(Exception):
    """The item is not in a state that allows the action (someone else acted first, or it changed)."""

    def __init__(self, item: ExceptionItem, message: str):
        self.item = item
        self.message = message
        super().__init__(message)


class InvalidAction(ValueError):
    """The request itself is wrong (unknown resolution, missing reason); nothing was changed."""


logger = logging.getLogger(__name__)


def _log_fields(item: ExceptionItem, *, action: str, by, lead=None) -> dict:
    """The ids a line about an item carries; the capture system's lead id when the lead is at hand (no query)."""
    lead = lead or (item.lead if ExceptionItem.lead.is_cached(item) else None)
    return {
        "exception_id": item.pk,
        "lead_pk": item.lead_id,
        "lead_id": lead.lead_id if lead is not None else None,
        "action": action,
        "by": by.get_username() if by else "the system",
        "status": item.status,
    }


def action_logged(item: ExceptionItem, *, action: str, by, detail: str = "", lead=None, **extra) -> None:
    """One line about an action on the item, written when its transaction commits: an action rolled back (a
    bulk chunk's savepoint, a later step failing) logs nothing."""
    fields = {**_log_fields(item, action=action, by=by, lead=lead), **extra}
    message = f"Item #{item.pk}: {action} by {fields['by']}{detail}."
    transaction.on_commit(lambda: logger.info(message, extra=fields))


def action_refused(conflict: ExceptionConflict, *, action: str, by, lead=None) -> ExceptionConflict:
    """Log a refused action (the API's 409, the console's conflict message) with the item's ids; returns the
    conflict for the caller to raise."""
    fields = _log_fields(conflict.item, action=action, by=by, lead=lead)
    logger.warning(
        "Item #%s: %s by %s refused: %s",
        conflict.item.pk,
        action,
        fields["by"],
        conflict.message,
        extra={**fields, "refused": True},
    )
    return conflict


def triage_queue() -> Queue:
    queue, _ = Queue.objects.get_or_create(name=settings.HANDOFF["TRIAGE_QUEUE"], defaults=auto_queue_defaults())
    return queue


def exception_due_times(*, queue: Queue, start: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    hours = queue.business_hours()
    return (
        add_business_time(start, dt.timedelta(minutes=queue.ack_sla_minutes), hours),
        add_business_time(start, dt.timedelta(minutes=queue.resolve_sla_minutes), hours),
    )


def _sla_events(item: ExceptionItem, at: dt.datetime, *pairs: tuple[str, str], **data) -> None:
    SlaEvent.objects.bulk_create(
        [SlaEvent(item=item, clock=clock, kind=kind, at=at, data=data) for clock, kind in pairs]
    )


def exception_open(
    *,
    lead,
    reason: str,
    detail: str = "",
    queue: Queue | None = None,
    at: dt.datetime | None = None,
    cause: Cause | None = None,
) -> ExceptionItem:
    """Open an exception for the lead, or return the unresolved one it already has for this reason."""
    (item,) = exceptions_open(
        openings=[Opening(lead=lead, reason=reason, detail=detail, queue=queue, cause=cause)], at=at
    )
    return item


@dataclass(frozen=True)
class Opening:
    lead: object
    reason: str
    detail: str = ""
    queue: Queue | None = None  # None: the triage queue
    cause: Cause | None = None  # what produced it, when one cause can produce many (exceptions.incidents)


def exceptions_open(*, openings: list[Opening], at: dt.datetime | None = None) -> list[ExceptionItem]:
    """`exception_open` for many leads at once (a routing batch): one read of the items they already have,
    then the new items, their SLA events and their audit events written in bulk. One item per opening, in
    order."""
    opened_at = at or timezone.now()
    current = {
        (item.lead_id, item.reason): item
        for item in ExceptionItem.objects.filter(
            UNRESOLVED, lead__in=[o.lead.pk for o in openings], reason__in={o.reason for o in openings}
        )
    }
    due_by_queue: dict[int, tuple[dt.datetime, dt.datetime]] = {}
    triage: Queue | None = None
    new: list[ExceptionItem] = []
    causes: dict[str, str] = {}  # of the new items: key -> title
    items = []
    for opening in openings:
        item = current.get((opening.lead.pk, opening.reason))
        if item is None:
            if opening.queue is None and triage is None:
                triage = triage_queue()
            queue = opening.queue or triage
            if queue.pk not in due_by_queue:
                due_by_queue[queue.pk] = exception_due_times(queue=queue, start=opened_at)
            ack_due_at, resolve_due_at = due_by_queue[queue.pk]
            item = ExceptionItem(
                lead=opening.lead,
                reason=opening.reason,
                detail=opening.detail,
                queue=queue,
                opened_at=opened_at,
                ack_due_at=ack_due_at,
                resolve_due_at=resolve_due_at,
                due_at=ack_due_at,
                cause=opening.cause.key if opening.cause else "",
            )
            current[(opening.lead.pk, opening.reason)] = item
            new.append(item)
            if opening.cause:
                causes[opening.cause.key] = opening.cause.title
        items.append(item)
    if not new:
        return items
    bulk_insert(new)
    started = ((SlaClock.ACKNOWLEDGE, SlaEventKind.STARTED), (SlaClock.RESOLVE, SlaEventKind.STARTED))
    bulk_insert(
        [SlaEvent(item=item, clock=clock, kind=kind, at=opened_at, data={}) for item in new for clock, kind in started]
    )
    bulk_insert(
        [
            audit_event(
                action=AuditAction.EXCEPTION_OPENED,
                lead=item.lead,
                exception=item,
                outcome=item.reason,
                at=opened_at,
                data={
                    "queue": item.queue.name,
                    "detail": item.detail,
                    "ack_due_at": item.ack_due_at,
                    "resolve_due_at": item.resolve_due_at,
                },
            )
            for item in new
        ]
    )
    incidents_gather(causes=causes, at=opened_at)
    alerts.alerts_items_opened(items=new)  # PagerDuty, Slack, webhooks of the queue (exceptions.alerts)
    return items


def describe_state(item: ExceptionItem) -> str:
    """What an item's state is and who put it there, for conflict messages."""

    def who(user):
        return user.get_full_name() or user.get_username() if user else "the system"

    if item.status == RESOLVED:
        return (
            f"already resolved ({item.get_resolution_display()}) by {who(item.resolved_by)} "
            f"at {item.resolved_at:%Y-%m-%d %H:%M} UTC"
        )
    if item.status == ACKNOWLEDGED:
        return f"already acknowledged by {who(item.acknowledged_by)} at {item.acknowledged_at:%Y-%m-%d %H:%M} UTC"
    if item.status == WAITING:
        return f"waiting since {item.waiting_since:%Y-%m-%d %H:%M} UTC"
    return "open"


def _apply(
    item: ExceptionItem,
    *,
    allowed: Iterable[str],
    changes: dict,
    by,
    action: str,
    verb: str,
    expected_version: int | None = None,
    data: dict | None = None,
) -> ExceptionItem:
    """The one write path for actions: conditional update, conflict on no row, audit event."""
    rows = ExceptionItem.objects.filter(pk=item.pk, status__in=list(allowed))
    if expected_version is not None:
        rows = rows.filter(version=expected_version)
    updated = rows.update(**changes, version=F("version") + 1)
    fresh = ExceptionItem.objects.select_related("lead", "queue", "assignee", "acknowledged_by", "resolved_by").get(
        pk=item.pk
    )
    if updated != 1:
        if fresh.status in allowed and expected_version is not None:
            conflict = ExceptionConflict(fresh, f"Item #{fresh.pk} changed since you opened it; reload and try again.")
        else:
            conflict = ExceptionConflict(fresh, f"Cannot {verb} item #{fresh.pk}: it is {describe_state(fresh)}.")
        raise action_refused(conflict, action=action, by=by)
    audit_record(action=action, actor=by, lead=fresh.lead, exception=fresh, outcome=fresh.status, data=data or {})
    action_logged(fresh, action=action, by=by)
    return fresh


def acknowledger_claims(by):
    """The assignee an acknowledge writes: an unassigned item becomes the acknowledger's, unless the acknowledger
    is an account that cannot sign in (PagerDuty's, exceptions.alert_inbound): an item nobody can work must
    stay unassigned for a person to take."""
    return Coalesce(F("assignee"), Value(by.pk)) if by.is_active else F("assignee")


@transaction.atomic
def exception_acknowledge(*, item: ExceptionItem, by, note: str = "") -> ExceptionItem:
    """`note`: why, for the audit trail (an acknowledge that came from PagerDuty names who acknowledged there)."""
    now = timezone.now()
    fresh = _apply(
        item,
        allowed=[OPEN],
        changes={
            "status": ACKNOWLEDGED,
            "acknowledged_at": now,
            "acknowledged_by": by,
            "assignee": acknowledger_claims(by),
            "due_at": F("resolve_due_at"),
            "ack_breached_at": _breached_if_late("ack", now),
        },
        by=by,
        action=AuditAction.EXCEPTION_ACKNOWLEDGED,
        verb="acknowledge",
        data={"note": note} if note else None,
    )
    _late_breach_events(fresh, now, clocks=[SlaClock.ACKNOWLEDGE])
    _sla_events(fresh, now, (SlaClock.ACKNOWLEDGE, SlaEventKind.FULFILLED), within_sla=now <= fresh.ack_due_at)
    alerts.alerts_items_acknowledged(item_ids=[fresh.pk], by=by, note=note)
    return fresh


def _breached_if_late(clock: str, now: dt.datetime):
    """The breach stamp an action writes when it comes after the due time and before any sweep noticed: the
    sweep runs once a minute, and a late action must not count as met. (A paused resolve clock is not late, and
    the acknowledge clock stopped once the item was acknowledged: a resolve after its due time is no breach.)"""
    running = ~Q(status=WAITING) if clock == "resolve" else Q(status=OPEN)
    late = When(running, **{f"{clock}_due_at__lt": now, f"{clock}_breached_at__isnull": True}, then=Value(now))
    return Case(late, default=F(f"{clock}_breached_at"))


def _late_breach_events(item: ExceptionItem, now: dt.datetime, *, clocks: list[str]) -> None:
    stamps = {SlaClock.ACKNOWLEDGE: item.ack_breached_at, SlaClock.RESOLVE: item.resolve_breached_at}
    late = [(clock, SlaEventKind.BREACHED) for clock in clocks if stamps[clock] == now]
    if late:
        _sla_events(item, now, *late, by="late action")


@transaction.atomic
def exception_assign(*, item: ExceptionItem, to, by, expected_version: int | None = None) -> ExceptionItem:
    if to is not None and not to.is_active:
        raise InvalidAction(f"{to.get_username()} is not an active account.")
    before = item.assignee.get_username() if item.assignee else None
    return _apply(
        item,
        allowed=UNRESOLVED_STATUSES,
        changes={"assignee": to},
        by=by,
        action=AuditAction.EXCEPTION_ASSIGNED,
        verb="assign",
        expected_version=expected_version,
        data={"before": before, "after": to.get_username() if to else None},
    )


@transaction.atomic
def exception_resolve(*, item: ExceptionItem, by, resolution: str, note: str = "") -> ExceptionItem:
    if resolution not in Resolution.values:
        raise InvalidAction(f"Unknown resolution {resolution!r}; use one of {', '.join(Resolution.values)}.")
    now = timezone.now()
    was_acknowledged = item.acknowledged_at is not None
    fresh = _apply(
        item,
        allowed=UNRESOLVED_STATUSES,
        changes={
            "status": RESOLVED,
            "resolved_at": now,
            "resolved_by": by,
            "resolution": resolution,
            "resolution_note": note,
            "waiting_since": None,
            "due_at": None,
            "acknowledged_at": Coalesce(F("acknowledged_at"), Value(now)),
            # by None: the system resolved it (an outage over); nobody acknowledged it.
            "acknowledged_by": Coalesce(F("acknowledged_by"), Value(by.pk)) if by else F("acknowledged_by"),
            "ack_breached_at": _breached_if_late("ack", now),
            "resolve_breached_at": _breached_if_late("resolve", now),
        },
        by=by,
        action=AuditAction.EXCEPTION_RESOLVED,
        verb="resolve",
        data={"resolution": resolution, "note": note},
    )
    _late_breach_events(fresh, now, clocks=[SlaClock.ACKNOWLEDGE, SlaClock.RESOLVE])
    if not was_acknowledged and fresh.acknowledged_at == now:
        _sla_events(fresh, now, (SlaClock.ACKNOWLEDGE, SlaEventKind.FULFILLED), within_sla=now <= fresh.ack_due_at)
    if item.status == WAITING:  # the clock was paused: met if time was left when it stopped
        in_time = (item.resolve_remaining_seconds or 0) > 0
    else:
        in_time = now <= fresh.resolve_due_at
    _sla_events(fresh, now, (SlaClock.RESOLVE, SlaEventKind.FULFILLED), within_sla=in_time)
    integration_events.exception_resolved(item=fresh)
    alerts.alerts_items_resolved(item_ids=[fresh.pk], by=by, note=note)
    _held_leads_follow(fresh, by=by, resolution=resolution, note=note, at=now)
    if fresh.incident_id is not None:
        incident_settle(incident_id=fresh.incident_id, by=by, resolution=resolution, note=note, at=now)
    return fresh


def delivery_failure_settled(*, lead_id: int, event_id: int) -> list[ExceptionItem]:
    """A dead-lettered event was delivered after all (a replay): the delivery_failed items its dead letter
    opened are resolved `fixed_upstream` by the system, each audited, unless another dead event of the same
    item is still undelivered. Returns the items resolved."""
    dead_letters = AuditEvent.objects.filter(action=AuditAction.DELIVERY_DEAD_LETTERED, lead_id=lead_id)
    item_ids = set(dead_letters.filter(data__event_id=event_id).values_list("exception_id", flat=True)) - {None}
    resolved = []
    for item in ExceptionItem.objects.filter(UNRESOLVED, pk__in=item_ids, reason=ExceptionReason.DELIVERY_FAILED):
        events = dead_letters.filter(exception_id=item.pk).values_list("data__event_id", flat=True)
        if OutboxEvent.objects.filter(pk__in=list(events)).exclude(status=OutboxStatus.DELIVERED).exists():
            continue  # the item stands for another failed event too
        note = f"Event {event_id} was delivered on a replay: the failure is fixed upstream."
        try:
            with transaction.atomic():
                resolved.append(exception_resolve(item=item, by=None, resolution=Resolution.FIXED_UPSTREAM, note=note))
        except ExceptionConflict:
            continue  # someone resolved it meanwhile
    return resolved


# Resolutions that send the item's lead on (routed, its data fixed, or the outage behind it over). The
# others (duplicate, spam, not a lead) say what the person's leads are: the leads the item held are closed with it.
RELEASING_RESOLUTIONS = (Resolution.REROUTED, Resolution.FIXED_DATA, Resolution.FIXED_UPSTREAM)


def _held_leads_follow(item: ExceptionItem, *, by, resolution: str, note: str, at: dt.datetime) -> None:
    """The same person's leads that waited on this item follow its resolution, each with its own audit event:
    the person's owner takes them if the item's lead is now assigned; they route again by the rules if its
    data was fixed but it needs other attention; otherwise they are closed with the item."""
    held = list(
        item.held_leads.select_for_update(no_key=True, of=("self",))
        .filter(status=LeadStatus.EXCEPTION)
        .select_related("origin")
        .order_by("id")
    )
    if not held:
        return
    trail = {"held_by_item": item.pk, "resolution": resolution}
    settled = item.lead
    settled.refresh_from_db(fields=["status", "queue", "assignee"])
    if resolution in RELEASING_RESOLUTIONS and settled.status == LeadStatus.ASSIGNED:
        for lead in held:
            lead.status, lead.assigned_at = LeadStatus.ASSIGNED, at
            lead.queue, lead.assignee = settled.queue, settled.assignee
        leads_assignment_write(held, ["status", "queue", "assignee", "assigned_at"], at=at)
        assignee = settled.assignee.get_username() if settled.assignee else None
        owner = {
            "with_lead": settled.lead_id,
            "queue": settled.queue.name,
            "assignee": assignee,
            "assigned_by": "held_item",
            "assignee_note": f"followed item #{item.pk}: the same person's lead {settled.lead_id} went to"
            f" {assignee or 'nobody'} in {settled.queue.name}",
        }
        events = [_held_event(lead, item, by, at, outcome="assigned", data={**trail, **owner}) for lead in held]
        integration_events.leads_assigned([(lead, None) for lead in held])  # a person decided, not a rule
    elif resolution in RELEASING_RESOLUTIONS:
        for lead in held:
            lead.status = LeadStatus.RECEIVED
        leads_assignment_write(held, ["status"], at=at)
        released = {**trail, "detail": f"released by item #{item.pk} ({resolution}): routed again by the rules"}
        events = [_held_event(lead, item, by, at, outcome="released", data=released) for lead in held]
        routing_enqueue_on_commit([lead.pk for lead in held], lane=Lane.LIVE)
    else:
        events = [
            _held_event(lead, item, by, at, outcome=resolution, data={**trail, "note": note}, closed=True)
            for lead in held
        ]
    bulk_insert(events)


def _held_event(lead, item, by, at, *, outcome: str, data: dict, closed: bool = False) -> AuditEvent:
    action = AuditAction.EXCEPTION_RESOLVED if closed else AuditAction.LEAD_REROUTED
    return audit_event(action=action, actor=by, lead=lead, exception=item, outcome=outcome, at=at, data=data)


@transaction.atomic
def exception_reopen(*, item: ExceptionItem, by) -> ExceptionItem:
    """Back to open with fresh clocks, as if it had just arrived."""
    now = timezone.now()
    ack_due_at, resolve_due_at = exception_due_times(queue=item.queue, start=now)
    cleared = dict.fromkeys(
        [
            "acknowledged_at",
            "acknowledged_by",
            "resolved_at",
            "resolved_by",
            "waiting_since",
            "resolve_remaining_seconds",
            "ack_breached_at",
            "resolve_breached_at",
            "ack_reminded_at",
            "resolve_reminded_at",
            "escalated_at",
        ],
    )
    try:
        with transaction.atomic():
            fresh = _apply(
                item,
                allowed=[RESOLVED],
                changes={
                    **cleared,
                    "status": OPEN,
                    "incident": None,  # its own clock again: the incident it was part of is over
                    "resolution": "",
                    "resolution_note": "",
                    "escalation_level": 0,
                    "ack_due_at": ack_due_at,
                    "resolve_due_at": resolve_due_at,
                    "due_at": ack_due_at,
                },
                by=by,
                action=AuditAction.EXCEPTION_REOPENED,
                verb="reopen",
            )
    except IntegrityError:
        other = ExceptionItem.objects.filter(UNRESOLVED, lead=item.lead_id, reason=item.reason).first()
        conflict = ExceptionConflict(
            item, f"Cannot reopen item #{item.pk}: the lead already has an open {item.reason} item #{other.pk}."
        )
        raise action_refused(conflict, action=AuditAction.EXCEPTION_REOPENED, by=by) from None
    _sla_events(fresh, now, (SlaClock.ACKNOWLEDGE, SlaEventKind.STARTED), (SlaClock.RESOLVE, SlaEventKind.STARTED))
    return fresh


@transaction.atomic
def exception_mark_waiting(*, item: ExceptionItem, by, note: str = "") -> ExceptionItem:
    """Pause the resolve clock (waiting on the customer or another team); the open time left is kept."""
    now = timezone.now()
    remaining = business_time_between(now, item.resolve_due_at, item.queue.business_hours())
    fresh = _apply(
        item,
        allowed=[OPEN, ACKNOWLEDGED],
        changes={
            "status": WAITING,
            "waiting_since": now,
            "due_at": None,
            "resolve_remaining_seconds": int(remaining.total_seconds()),
            "acknowledged_at": Coalesce(F("acknowledged_at"), Value(now)),
            "acknowledged_by": Coalesce(F("acknowledged_by"), Value(by.pk)),
        },
        by=by,
        action=AuditAction.EXCEPTION_WAITING,
        verb="set to waiting",
        data={"note": note, "resolve_time_left_seconds": int(remaining.total_seconds())},
    )
    if item.status == OPEN:  # waiting on someone means someone has the item: that acknowledges it
        _sla_events(fresh, now, (SlaClock.ACKNOWLEDGE, SlaEventKind.FULFILLED), within_sla=now <= fresh.ack_due_at)
    _sla_events(fresh, now, (SlaClock.RESOLVE, SlaEventKind.PAUSED), remaining_seconds=int(remaining.total_seconds()))
    return fresh


@transaction.atomic
def exception_resume(*, item: ExceptionItem, by) -> ExceptionItem:
    """Restart the resolve clock with the open time that was left when waiting began."""
    now = timezone.now()
    left = dt.timedelta(seconds=item.resolve_remaining_seconds or 0)
    resolve_due_at = add_business_time(now, left, item.queue.business_hours())
    fresh = _apply(
        item,
        allowed=[WAITING],
        changes={
            "status": ACKNOWLEDGED,
            "waiting_since": None,
            "resolve_remaining_seconds": None,
            "resolve_due_at": resolve_due_at,
            "due_at": resolve_due_at,
            # a new due time: it earns its own reminder, and it is breached only if missed again
            "resolve_reminded_at": None,
            "resolve_breached_at": None,
        },
        by=by,
        action=AuditAction.EXCEPTION_RESUMED,
        verb="resume",
        data={"resolve_due_at": resolve_due_at},
    )
    _sla_events(fresh, now, (SlaClock.RESOLVE, SlaEventKind.RESUMED), resolve_due_at=resolve_due_at)
    return fresh


@transaction.atomic
def exceptions_bulk_acknowledge(*, item_ids: list[int], by) -> tuple[list[int], list[str]]:
    """Acknowledge every open item of the list; returns (acknowledged ids, messages for the others)."""
    now = timezone.now()
    open_ids = list(
        ExceptionItem.objects.filter(pk__in=item_ids, status=OPEN)
        .select_for_update(skip_locked=True)
        .values_list("pk", flat=True)
    )
    ExceptionItem.objects.filter(pk__in=open_ids, status=OPEN).update(
        status=ACKNOWLEDGED,
        acknowledged_at=now,
        acknowledged_by=by,
        assignee=acknowledger_claims(by),
        due_at=F("resolve_due_at"),
        ack_breached_at=_breached_if_late("ack", now),  # a late acknowledge is a breach, in bulk too
        version=F("version") + 1,
    )
    items = list(
        ExceptionItem.objects.filter(pk__in=open_ids).only("pk", "lead_id", "ack_due_at", "ack_breached_at", "status")
    )
    _bulk_trail(items, by=by, action=AuditAction.EXCEPTION_ACKNOWLEDGED, at=now, data={"bulk": True})
    alerts.alerts_items_acknowledged(item_ids=open_ids, by=by)
    for item in items:
        action_logged(item, action=AuditAction.EXCEPTION_ACKNOWLEDGED, by=by, detail=" (bulk)", bulk=True)
    SlaEvent.objects.bulk_create(
        SlaEvent(item=i, clock=SlaClock.ACKNOWLEDGE, kind=SlaEventKind.BREACHED, at=now, data={"by": "late action"})
        for i in items
        if i.ack_breached_at == now
    )
    SlaEvent.objects.bulk_create(
        SlaEvent(
            item=i,
            clock=SlaClock.ACKNOWLEDGE,
            kind=SlaEventKind.FULFILLED,
            at=now,
            data={"within_sla": now <= i.ack_due_at},
        )
        for i in items
    )
    skipped = [
        f"Item #{other.pk} was not acknowledged: it is {skipped_state(other, [OPEN])}."
        for other in ExceptionItem.objects.filter(pk__in=set(item_ids) - set(open_ids)).select_related(
            "acknowledged_by", "resolved_by"
        )
    ]
    return open_ids, skipped


@transaction.atomic
def exceptions_bulk_assign(*, item_ids: list[int], to, by) -> tuple[list[int], list[str]]:
    if not to.is_active:
        raise InvalidAction(f"{to.get_username()} is not an active account.")
    now = timezone.now()
    targets = list(
        ExceptionItem.objects.filter(UNRESOLVED, pk__in=item_ids)
        .select_for_update(skip_locked=True, of=("self",))
        .select_related("assignee")
    )
    ExceptionItem.objects.filter(pk__in=[i.pk for i in targets]).update(assignee=to, version=F("version") + 1)
    for item in targets:
        item.before = item.assignee.get_username() if item.assignee else None
    AuditEvent.objects.bulk_create(
        _trail_event(
            item,
            by=by,
            action=AuditAction.EXCEPTION_ASSIGNED,
            at=now,
            data={"before": item.before, "after": to.get_username(), "bulk": True},
        )
        for item in targets
    )
    for item in targets:
        detail = f" (bulk): {item.before or 'nobody'} → {to.get_username()}"
        action_logged(item, action=AuditAction.EXCEPTION_ASSIGNED, by=by, detail=detail, bulk=True)
    done = {i.pk for i in targets}
    skipped = [
        f"Item #{other.pk} was not assigned: it is {skipped_state(other, UNRESOLVED_STATUSES)}."
        for other in ExceptionItem.objects.filter(pk__in=set(item_ids) - done).select_related("resolved_by")
    ]
    return sorted(done), skipped


def skipped_state(item: ExceptionItem, allowed) -> str:
    if item.status in allowed:  # skipped because someone else's change held its row at that moment
        return "being changed by someone else right now; try again"
    return describe_state(item)


def _trail_event(item, *, by, action, at, data) -> AuditEvent:
    return AuditEvent(
        action=action,
        occurred_at=at,
        actor=by,
        actor_label=by.get_username(),
        lead_id=item.lead_id,
        exception_id=item.pk,
        outcome=getattr(item, "status", ""),
        data=data,
    )


def _bulk_trail(items, *, by, action, at, data) -> None:
    AuditEvent.objects.bulk_create(_trail_event(i, by=by, action=action, at=at, data=data) for i in items)


MAX_SAVED_VIEWS = 10


def saved_view_save(*, user, name: str, query: str) -> SavedView:
    """Save (or replace, by name) one of the person's list views; at most MAX_SAVED_VIEWS each."""
    name = " ".join((name or "").split())
    if not name:
        raise InvalidAction("Give the view a name.")
    if len(name) > 60:
        raise InvalidAction("A view's name has at most 60 characters.")
    query = QueryDict(query or "", mutable=True)
    query.pop("page", None)
    if SavedView.objects.filter(user=user).exclude(name=name).count() >= MAX_SAVED_VIEWS:
        raise InvalidAction(f"You have {MAX_SAVED_VIEWS} saved views already; delete one first.")
    view, _ = SavedView.objects.update_or_create(user=user, name=name, defaults={"query": query.urlencode()[:2000]})
    return view


def saved_view_delete(*, user, pk: int) -> bool:
    return SavedView.objects.filter(user=user, pk=pk).delete()[0] > 0
