"""The SLA sweep (a beat task, every minute): breaches, escalation, reminders, reassignment.

Breaches and escalations are set-based: one UPDATE stamps every item that crossed a line with this
sweep's instant, and one INSERT … SELECT writes their SLA events and notifications from that stamp. So a
sweep over 100,000 items is a handful of statements, and a second sweep at once finds nothing left to do
(the stamps are only written where still NULL; notifications are unique per item and key).
"""

import datetime as dt
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from exceptions.models import (
    ExceptionItem,
    ExceptionStatus,
    NotificationKind,
    SlaClock,
    SlaEvent,
    SlaEventKind,
)
from exceptions.notifications import db_time, notify, notify_stamped
from exceptions.sla import add_business_time, subtract_business_time
from routing.assignment import pick_assignee
from routing.models import Queue

OPEN, ACKNOWLEDGED, WAITING = ExceptionStatus.OPEN, ExceptionStatus.ACKNOWLEDGED, ExceptionStatus.WAITING
RUNNING_RESOLVE = [OPEN, ACKNOWLEDGED]  # waiting pauses the resolve clock


@dataclass
class SweepReport:
    ack_breached: int = 0
    resolve_breached: int = 0
    escalated: dict[int, int] = field(default_factory=lambda: {1: 0, 2: 0})
    reminded: int = 0
    reassigned: int = 0


def sla_sweep(*, now: dt.datetime | None = None) -> SweepReport:
    now = now or timezone.now()
    report = SweepReport()
    with transaction.atomic():
        report.ack_breached = _mark_breaches(SlaClock.ACKNOWLEDGE, now)
        report.resolve_breached = _mark_breaches(SlaClock.RESOLVE, now)
        report.reassigned = _reassign_unacknowledged(now)
        report.escalated = _escalate(now)
        report.reminded = _remind(now)
    return report


def _sla_events_for_stamp(column: str, now: dt.datetime, clock: str, kind: str) -> None:
    """INSERT … SELECT one SLA event for each item this sweep stamped in `column`.

    `clock` is a clock name, or SQL over the item (escalations name the clock that breached); the data
    says the sweep did it and, for escalations, the level reached."""
    quote = connection.ops.quote_name
    clock_sql = clock if clock.startswith("CASE") else "%s"
    if kind == SlaEventKind.ESCALATED:
        data_sql = """'{"by": "sweep", "level": ' || escalation_level || '}'"""
    else:
        data_sql = """'{"by": "sweep"}'"""
    if connection.vendor == "postgresql":
        data_sql = f"CAST({data_sql} AS jsonb)"
    params = ([] if clock_sql != "%s" else [clock]) + [kind, db_time(now), db_time(now)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(SlaEvent._meta.db_table)} (item_id, clock, kind, at, data) "
            f"SELECT id, {clock_sql}, %s, %s, {data_sql} FROM {quote(ExceptionItem._meta.db_table)} "
            f"WHERE {quote(column)} = %s",
            params,
        )


# Breached and still running: a clock stops counting against the item once it is met or paused.
STILL_BREACHED = Q(ack_breached_at__isnull=False, status=OPEN) | Q(
    resolve_breached_at__isnull=False, status__in=RUNNING_RESOLVE
)
BREACHED_CLOCK_SQL = (
    f"CASE WHEN ack_breached_at IS NOT NULL AND status = '{OPEN}' THEN '{SlaClock.ACKNOWLEDGE}' "
    f"ELSE '{SlaClock.RESOLVE}' END"
)


def _mark_breaches(clock: str, now: dt.datetime) -> int:
    if clock == SlaClock.ACKNOWLEDGE:
        count = ExceptionItem.objects.filter(status=OPEN, ack_due_at__lte=now, ack_breached_at__isnull=True).update(
            ack_breached_at=now
        )
        column = "ack_breached_at"
    else:
        count = ExceptionItem.objects.filter(
            status__in=RUNNING_RESOLVE, resolve_due_at__lte=now, resolve_breached_at__isnull=True
        ).update(resolve_breached_at=now)
        column = "resolve_breached_at"
    if count:
        _sla_events_for_stamp(column, now, clock, SlaEventKind.BREACHED)
    return count


def _escalate(now: dt.datetime) -> dict[int, int]:
    """Level 2 for items still breached a further interval after level 1; then level 1 for newly breached
    items (high-intent leads straight to level 2). Events and notifications follow from the stamp."""
    second = _escalate_second(now)
    breached = ExceptionItem.objects.filter(STILL_BREACHED, escalation_level=0)
    threshold = settings.HANDOFF["HIGH_INTENT_THRESHOLD"]
    urgent = breached.filter(lead__intent_score__gt=threshold).update(escalation_level=2, escalated_at=now)
    first = breached.update(escalation_level=1, escalated_at=now)
    if first or urgent or second:
        _sla_events_for_stamp("escalated_at", now, BREACHED_CLOCK_SQL, SlaEventKind.ESCALATED)
        _notify_escalated(now)
    return {1: first, 2: second + urgent}


def _escalate_second(now: dt.datetime) -> int:
    """Level 1 items still breached a further interval (business time) later: one indexed UPDATE per queue."""
    count = 0
    for queue in Queue.objects.all():
        cutoff = subtract_business_time(
            now, dt.timedelta(minutes=queue.escalation_interval_minutes), queue.business_hours()
        )
        count += ExceptionItem.objects.filter(
            STILL_BREACHED, queue=queue, escalation_level=1, escalated_at__lte=cutoff
        ).update(escalation_level=2, escalated_at=now)
    return count


def _notify_escalated(now: dt.datetime) -> None:
    """Level 1 goes to the queue's owner, level 2 to its escalation contact (else the owner); no one: the queue."""
    for level, kind, recipient in (
        (1, NotificationKind.ESCALATION_1, "q.owner_id"),
        (2, NotificationKind.ESCALATION_2, "COALESCE(q.escalation_contact_id, q.owner_id)"),
    ):
        # key: one per level and escalation, so a reopened item that breaches again is escalated again
        notify_stamped(
            stamp="escalated_at",
            now=now,
            kind=kind,
            key_sql=f"'{kind}:' || {_timestamp_text('i.escalated_at')}",
            recipient_sql=recipient,
            where=f"AND i.escalation_level = {level}",
        )


def _remind(now: dt.datetime) -> int:
    """A reminder shortly before each due time, to the assignee or, when nobody has the item, the queue."""
    lead_time = dt.timedelta(minutes=settings.HANDOFF["REMINDER_MINUTES"])
    count = 0
    for clock, statuses, due, stamp in (
        (SlaClock.ACKNOWLEDGE, [OPEN], "ack_due_at", "ack_reminded_at"),
        (SlaClock.RESOLVE, RUNNING_RESOLVE, "resolve_due_at", "resolve_reminded_at"),
    ):
        stamped = ExceptionItem.objects.filter(
            status__in=statuses, **{f"{due}__gt": now, f"{due}__lte": now + lead_time, f"{stamp}__isnull": True}
        ).update(**{stamp: now})
        if not stamped:
            continue
        count += stamped
        _sla_events_for_stamp(stamp, now, clock, SlaEventKind.REMINDED)
        # key: one reminder per clock and due time (a resumed or reopened clock earns a new one)
        notify_stamped(
            stamp=stamp,
            now=now,
            kind=NotificationKind.REMINDER,
            recipient_sql="i.assignee_id",
            key_sql=f"'reminder:{clock}:' || {_timestamp_text('i.' + due)}",
        )
    return count


def _timestamp_text(column: str) -> str:
    if connection.vendor == "postgresql":
        return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
    return f"strftime('%%Y-%%m-%%dT%%H:%%M:%%S', {column})"  # %% survives the placeholder substitution


def _reassign_unacknowledged(now: dt.datetime) -> int:
    """Queues that ask for it: an item whose acknowledge time just ran out goes to the next available member,
    who gets a fresh acknowledge window (the breach stays in the SLA events). Once only: if the new person
    misses it too, it escalates."""
    items = (
        ExceptionItem.objects.filter(status=OPEN, ack_breached_at=now, queue__reassign_unacknowledged=True)
        .exclude(sla_events__kind=SlaEventKind.REASSIGNED)
        .select_related("queue", "assignee", "lead")
    )
    count = 0
    for item in items:
        pick = pick_assignee(queue_id=item.queue_id, exclude_user_id=item.assignee_id, follow_overflow=False)
        if pick.assignee is None:
            continue
        ack_due_at = add_business_time(
            now, dt.timedelta(minutes=item.queue.ack_sla_minutes), item.queue.business_hours()
        )
        ExceptionItem.objects.filter(pk=item.pk, status=OPEN).update(
            assignee=pick.assignee,
            ack_due_at=ack_due_at,
            due_at=ack_due_at,
            ack_breached_at=None,
            ack_reminded_at=None,
            version=F("version") + 1,
        )
        handover = {
            "from": item.assignee.get_username() if item.assignee else None,
            "to": pick.assignee.get_username(),
            "ack_due_at": ack_due_at,
        }
        SlaEvent.objects.create(
            item=item, clock=SlaClock.ACKNOWLEDGE, kind=SlaEventKind.REASSIGNED, at=now, data=handover
        )
        audit_record(
            action=AuditAction.EXCEPTION_REASSIGNED,
            lead=item.lead,
            exception=item,
            at=now,
            outcome="reassigned",
            data={**handover, "why": "acknowledge time ran out"},
        )
        new_assignee = pick.assignee
        notify(
            items=[item],
            key=lambda _: f"reassigned:{now.isoformat()}",
            kind=NotificationKind.REASSIGNED,
            recipient=lambda _, to=new_assignee: to,
            now=now,
        )
        count += 1
    return count
