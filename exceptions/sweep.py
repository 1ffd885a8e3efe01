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

from exceptions.models import (
    ExceptionItem,
    ExceptionStatus,
    NotificationKind,
    SlaClock,
    SlaEvent,
    SlaEventKind,
)
from exceptions.notifications import notify
from exceptions.sla import add_business_time
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


def _sla_events_for_stamp(column: str, now: dt.datetime, clock: str, kind: str, extra_where: str = "") -> None:
    """INSERT … SELECT one SLA event for each item this sweep stamped in `column`."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(SlaEvent._meta.db_table)} (item_id, clock, kind, at, data) "
            f"SELECT id, %s, %s, %s, %s FROM {quote(ExceptionItem._meta.db_table)} "
            f"WHERE {quote(column)} = %s {extra_where}",
            [clock, kind, now, '{"by": "sweep"}', now],
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
    breached = ExceptionItem.objects.filter(
        Q(ack_breached_at__isnull=False) | Q(resolve_breached_at__isnull=False),
        status__in=[OPEN, ACKNOWLEDGED, WAITING],
        escalation_level=0,
    )
    threshold = settings.HANDOFF["HIGH_INTENT_THRESHOLD"]
    urgent = breached.filter(lead__intent_score__gt=threshold).update(escalation_level=2, escalated_at=now)
    first = breached.update(escalation_level=1, escalated_at=now)
    if first or urgent or second:
        _sla_events_for_stamp("escalated_at", now, SlaClock.RESOLVE, SlaEventKind.ESCALATED)
        _notify_escalated(now)
    return {1: first, 2: second + urgent}


def _escalate_second(now: dt.datetime) -> int:
    due_ids = []
    for queue in Queue.objects.filter(exception_items__escalation_level=1).distinct():
        interval = dt.timedelta(minutes=queue.escalation_interval_minutes)
        hours = queue.business_hours()
        level_1 = ExceptionItem.objects.filter(
            queue=queue, escalation_level=1, status__in=[OPEN, ACKNOWLEDGED, WAITING]
        )
        if hours is None:
            due_ids += list(level_1.filter(escalated_at__lte=now - interval).values_list("pk", flat=True))
        else:
            due_ids += [
                pk
                for pk, at in level_1.values_list("pk", "escalated_at")
                if add_business_time(at, interval, hours) <= now
            ]
    if not due_ids:
        return 0
    return ExceptionItem.objects.filter(pk__in=due_ids, escalation_level=1).update(escalation_level=2, escalated_at=now)


def _notify_escalated(now: dt.datetime) -> None:
    escalated = ExceptionItem.objects.filter(escalated_at=now).select_related(
        "queue__owner", "queue__escalation_contact"
    )
    for level, kind in ((1, NotificationKind.ESCALATION_1), (2, NotificationKind.ESCALATION_2)):
        notify(
            items=[item for item in escalated if item.escalation_level == level],
            key=lambda item, kind=kind: kind,
            kind=kind,
            recipient=lambda item, level=level: (
                item.queue.owner if level == 1 else (item.queue.escalation_contact or item.queue.owner)
            ),
            now=now,
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
        notify(
            items=ExceptionItem.objects.filter(**{stamp: now}).select_related("queue", "assignee"),
            key=lambda item, clock=clock, due=due: f"reminder:{clock}:{getattr(item, due).isoformat()}",
            kind=NotificationKind.REMINDER,
            recipient=lambda item: item.assignee,
            now=now,
        )
    return count


def _reassign_unacknowledged(now: dt.datetime) -> int:
    """Queues that ask for it: an item whose acknowledge time just ran out goes to the next available member."""
    items = ExceptionItem.objects.filter(
        status=OPEN, ack_breached_at=now, queue__reassign_unacknowledged=True
    ).select_related("queue", "assignee")
    count = 0
    for item in items:
        pick = pick_assignee(queue_id=item.queue_id, exclude_user_id=item.assignee_id, follow_overflow=False)
        if pick.assignee is None:
            continue
        ExceptionItem.objects.filter(pk=item.pk, status=OPEN).update(assignee=pick.assignee, version=F("version") + 1)
        SlaEvent.objects.create(
            item=item,
            clock=SlaClock.ACKNOWLEDGE,
            kind=SlaEventKind.REASSIGNED,
            at=now,
            data={"from": item.assignee.get_username() if item.assignee else None, "to": pick.assignee.get_username()},
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
