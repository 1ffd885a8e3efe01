"""The SLA sweep (a beat task, every minute): breaches, escalation, reminders, reassignment.

Two steps, each set-based:

1. **Stamp.** One statement per queue (repeated in chunks of SWEEP_CHUNK items) stamps, with this sweep's
   instant, every acknowledge and resolve breach, the escalation level reached and every reminder due, in one
   row version per item. It finds the due rows through partial indexes on clocks not yet stamped, skips rows
   an operator holds (`FOR NO KEY UPDATE … SKIP LOCKED`: an acknowledge in flight is never waited for; the
   next sweep sees it acknowledged, and a late acknowledge stamps its own breach) and commits at once, so an
   operator's acknowledge waits at most for one chunk. In the same transaction it writes one SweepBatch row
   naming the items it stamped (the stamps and their batch commit together).
2. **Record.** The batches become SLA events (one per breach, escalation and reminder: by the sweep, at the
   sweep's instant, with the clock) inserted set-based, and notifications grouped one per person, queue,
   kind and sweep, listing the items (an escalation with no active person to receive it gets none: step 1
   stamped the item's `escalation_problem`, and an UNREACHED event is written); the batches are deleted
   in the same transaction. Its row locks are foreign-key share locks (at commit), which an acknowledge or
   a re-route (FOR NO KEY UPDATE) does not wait for. A crash between the steps loses nothing: the next sweep
   records the batches left (and `sweep_record` claims batches with SKIP LOCKED, so two record steps at once
   never record a batch twice).

A second sweep at the same time finds nothing left to do: stamps are only written where still NULL.
PostgreSQL runs step 1 as one statement per chunk (UPDATE … FROM a locking CTE … RETURNING); other
databases (SQLite, the demo's default) run the same selection and update as two statements.
"""

import datetime as dt
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from exceptions import alerts
from exceptions.incidents import incidents_sweep
from exceptions.models import (
    ExceptionItem,
    ExceptionStatus,
    NotificationKind,
    SlaClock,
    SlaEvent,
    SlaEventKind,
    SweepBatch,
)
from exceptions.notifications import db_time, notify_grouped
from exceptions.sla import add_business_time, subtract_business_time
from routing.assignment import pick_assignee
from routing.models import Queue
from routing.queue_owners import escalation_recipient, unreached_problem

logger = logging.getLogger(__name__)

OPEN, ACKNOWLEDGED, WAITING = ExceptionStatus.OPEN, ExceptionStatus.ACKNOWLEDGED, ExceptionStatus.WAITING
RUNNING_RESOLVE = [OPEN, ACKNOWLEDGED]  # waiting pauses the resolve clock
SWEEP_CHUNK = 10_000  # items per stamp statement (and transaction): what an acknowledge can wait behind at most


@dataclass
class SweepReport:
    ack_breached: int = 0
    resolve_breached: int = 0
    escalated: dict[int, int] = field(default_factory=lambda: {1: 0, 2: 0})
    reminded: int = 0
    reassigned: int = 0
    statements: int = 0  # stamp statements run (chunks over all queues)
    incidents_escalated: int = 0
    unreached: int = 0  # escalations with nobody to receive them (exceptions.unreached)


def sla_sweep(*, now: dt.datetime | None = None, record: bool = True) -> SweepReport:
    """Stamp every queue, hand unacknowledged items on where the queue asks, then (unless `record` is False:
    the beat task records in a follow-up task) write the SLA events and notifications."""
    now = now or timezone.now()
    report = SweepReport()
    # Who each queue escalates to is read here, with the queues (joins, no extra query).
    queues = list(Queue.objects.select_related("owner", "escalation_contact"))
    held = []
    for queue in queues:
        hold = queue.reassign_unacknowledged
        _stamp_queue(queue, now, report, hold_for_reassignment=hold)
        if hold:
            held.append(queue)
    if held:
        # The breach events come before the reassignment in each item's history; then what nobody could
        # take over escalates as usual.
        sweep_record()
        report.reassigned = _reassign_unacknowledged(now)
        for queue in held:
            _stamp_queue(queue, now, report, hold_for_reassignment=False)
    if record:
        sweep_record()
    report.incidents_escalated = incidents_sweep(now=now)
    if report.unreached:
        logger.warning(
            "%d escalation(s) reached nobody: their queues have no active owner or escalation contact "
            "(manage.py check lists them).",
            report.unreached,
        )
    return report


# Conditions over the item `i` (old values) at the sweep's instant. Booleans in PostgreSQL, 0/1 in SQLite.
_RUNNING = f"i.status IN ('{OPEN}', '{ACKNOWLEDGED}')"
ACK_BREACH = f"(i.status = '{OPEN}' AND i.ack_breached_at IS NULL AND i.ack_due_at <= %(now)s)"
RESOLVE_BREACH = f"({_RUNNING} AND i.resolve_breached_at IS NULL AND i.resolve_due_at <= %(now)s)"
ACK_REMIND = (
    f"(i.status = '{OPEN}' AND i.ack_breached_at IS NULL AND i.ack_reminded_at IS NULL "
    "AND i.ack_due_at > %(now)s AND i.ack_due_at <= %(remind)s)"
)
RESOLVE_REMIND = (
    f"({_RUNNING} AND i.resolve_breached_at IS NULL AND i.resolve_reminded_at IS NULL "
    "AND i.resolve_due_at > %(now)s AND i.resolve_due_at <= %(remind)s)"
)
# Breached and still running once this sweep's stamps are in: a clock stops counting once met or paused.
ACK_STILL_BREACHED = f"(i.status = '{OPEN}' AND (i.ack_breached_at IS NOT NULL OR i.ack_due_at <= %(now)s))"
STILL_BREACHED = (
    f"({ACK_STILL_BREACHED} OR ({_RUNNING} AND (i.resolve_breached_at IS NOT NULL OR i.resolve_due_at <= %(now)s)))"
)
# Queues that hand an unacknowledged item on: a fresh acknowledge breach waits for the reassignment step
# (once per item) before it escalates, unless the resolve clock has breached too.
HELD = (
    f"(%(hold)s AND {ACK_BREACH} AND NOT ({_RUNNING} AND (i.resolve_breached_at IS NOT NULL "
    "OR i.resolve_due_at <= %(now)s)) AND NOT EXISTS (SELECT 1 FROM exceptions_slaevent e "
    f"WHERE e.item_id = i.id AND e.kind = '{SlaEventKind.REASSIGNED}'))"
)
# Level 1 for a breach not escalated yet (level 2 at once for a high-intent lead); level 2 for a level-1
# item still breached a further escalation interval (business time: the queue's cutoff) later.
ESCALATE_TO = (
    f"CASE WHEN NOT {STILL_BREACHED} THEN 0 "
    f"WHEN i.escalation_level = 0 AND NOT {HELD} THEN "
    "CASE WHEN COALESCE((SELECT l.intent_score FROM routing_lead l WHERE l.id = i.lead_id), 0) > %(threshold)s "
    "THEN 2 ELSE 1 END "
    "WHEN i.escalation_level = 1 AND i.escalated_at <= %(cutoff)s THEN 2 ELSE 0 END"
)
# The clock an escalation is about: acknowledge while that breach stands, else resolve.
ESCALATION_CLOCK = f"CASE WHEN {ACK_STILL_BREACHED} THEN '{SlaClock.ACKNOWLEDGE}' ELSE '{SlaClock.RESOLVE}' END"

# The rows of one queue with something to stamp, and what (an incident's items are swept as the incident,
# exceptions.incidents). The WHERE only admits rows the update changes (so repeating it until a chunk comes
# back short ends), each disjunct along a partial index: exception_ack_unstamped_idx,
# exception_res_unstamped_idx, exception_level1_idx, exception_unescalated_idx.
STAMP_PICK_SQL = f"""
    SELECT i.id, i.assignee_id,
        {ACK_BREACH} AS ack_breach, {RESOLVE_BREACH} AS resolve_breach,
        {ACK_REMIND} AS ack_remind, {RESOLVE_REMIND} AS resolve_remind,
        {ESCALATE_TO} AS escalate_to, {ESCALATION_CLOCK} AS escalation_clock
    FROM exceptions_exceptionitem i
    WHERE i.queue_id = %(queue)s AND i.incident_id IS NULL AND (
        (i.status = '{OPEN}' AND i.ack_breached_at IS NULL AND i.ack_due_at <= %(remind)s
            AND (i.ack_due_at <= %(now)s OR i.ack_reminded_at IS NULL))
        OR ({_RUNNING} AND i.resolve_breached_at IS NULL AND i.resolve_due_at <= %(remind)s
            AND (i.resolve_due_at <= %(now)s OR i.resolve_reminded_at IS NULL))
        OR (i.escalation_level = 1 AND i.escalated_at <= %(cutoff)s AND {STILL_BREACHED})
        OR (i.escalation_level = 0 AND ((i.status = '{OPEN}' AND i.ack_breached_at IS NOT NULL)
            OR ({_RUNNING} AND i.resolve_breached_at IS NOT NULL)) AND NOT {HELD})
    ) {{extra}}
    LIMIT %(limit)s {{lock}}
"""
STAMP_SET_SQL = """
    ack_breached_at = CASE WHEN p.ack_breach THEN %(now)s ELSE t.ack_breached_at END,
    resolve_breached_at = CASE WHEN p.resolve_breach THEN %(now)s ELSE t.resolve_breached_at END,
    ack_reminded_at = CASE WHEN p.ack_remind THEN %(now)s ELSE t.ack_reminded_at END,
    resolve_reminded_at = CASE WHEN p.resolve_remind THEN %(now)s ELSE t.resolve_reminded_at END,
    escalation_level = CASE WHEN p.escalate_to > 0 THEN p.escalate_to ELSE t.escalation_level END,
    escalated_at = CASE WHEN p.escalate_to > 0 THEN %(now)s ELSE t.escalated_at END,
    escalation_problem = CASE WHEN p.escalate_to = 1 THEN %(problem1)s WHEN p.escalate_to = 2 THEN %(problem2)s
        ELSE t.escalation_problem END
"""
STAMP_COLUMNS = (
    "p.id, p.assignee_id, p.ack_breach, p.resolve_breach, p.ack_remind, p.resolve_remind, p.escalate_to, "
    "p.escalation_clock"
)


def _stamp_queue(queue: Queue, now: dt.datetime, report: SweepReport, *, hold_for_reassignment: bool) -> None:
    """Stamp one queue's due items, SWEEP_CHUNK at a time, each chunk in its own short transaction."""
    params = {
        "now": db_time(now),
        "remind": db_time(now + dt.timedelta(minutes=settings.HANDOFF["REMINDER_MINUTES"])),
        "cutoff": db_time(
            subtract_business_time(now, dt.timedelta(minutes=queue.escalation_interval_minutes), queue.business_hours())
        ),
        "threshold": settings.HANDOFF["HIGH_INTENT_THRESHOLD"],
        "hold": hold_for_reassignment,
        "queue": queue.pk,
        "limit": SWEEP_CHUNK,
    }
    # An escalation with nobody to receive it is not sent: the item says why ("" clears an earlier problem
    # once an escalation lands), and the record step writes an UNREACHED event instead of a notification.
    recipients = {level: escalation_recipient(queue, level) for level in (1, 2)}
    for level, recipient in recipients.items():
        params[f"problem{level}"] = unreached_problem(queue, level) if recipient is None else ""
    while True:
        with transaction.atomic():
            rows = _stamp_chunk(params)
            report.statements += 1
            if rows:
                stamps = _batch_stamps(rows, report, recipients=recipients, params=params)
                SweepBatch.objects.create(at=now, queue=queue, stamps=stamps)
        if len(rows) < SWEEP_CHUNK:
            return


def _stamp_chunk(params: dict) -> list[tuple]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            pick = STAMP_PICK_SQL.format(extra="", lock="FOR NO KEY UPDATE OF i SKIP LOCKED")
            cursor.execute(
                f"WITH p AS ({pick}) UPDATE exceptions_exceptionitem AS t SET {STAMP_SET_SQL} "
                # the id list first: the rows are found by primary key, however many the planner expects
                f"FROM p WHERE t.id = ANY(ARRAY(SELECT id FROM p)) AND t.id = p.id RETURNING {STAMP_COLUMNS}",
                params,
            )
            return cursor.fetchall()
        # Portable: pick, then update those rows from the same selection. A write first, so this transaction
        # is SQLite's one writer before it reads: nobody acts on the rows between the pick and the update.
        cursor.execute("UPDATE exceptions_exceptionitem SET id = id WHERE 1 = 0")
        cursor.execute(STAMP_PICK_SQL.format(extra="", lock=""), params)
        rows = cursor.fetchall()
        if rows:
            ids = {**params, "ids": json.dumps([row[0] for row in rows]), "limit": len(rows)}
            pick = STAMP_PICK_SQL.format(extra="AND i.id IN (SELECT value FROM json_each(%(ids)s))", lock="")
            cursor.execute(
                f"UPDATE exceptions_exceptionitem AS t SET {STAMP_SET_SQL} FROM ({pick}) AS p WHERE t.id = p.id",
                ids,
            )
        return rows


def _batch_stamps(rows: list[tuple], report: SweepReport, *, recipients: dict[int, int | None], params: dict) -> dict:
    """What a chunk stamped, by kind (the batch's JSON), counted into the report; with who each escalation
    level goes to, and the escalations that reached nobody (item, level, clock, why)."""
    stamps: dict = {"ack_breached": [], "resolve_breached": [], "escalated": [], "reminded": [], "unreached": []}
    stamps["recipients"] = {str(level): recipient for level, recipient in recipients.items()}
    for item_id, assignee_id, ack_breach, resolve_breach, ack_remind, resolve_remind, level, clock in rows:
        if ack_breach:
            stamps["ack_breached"].append(item_id)
        if resolve_breach:
            stamps["resolve_breached"].append(item_id)
        if level:
            stamps["escalated"].append([item_id, level, clock])
            report.escalated[level] += 1
            if recipients[level] is None:
                stamps["unreached"].append([item_id, level, clock, params[f"problem{level}"]])
                report.unreached += 1
        if ack_remind:
            stamps["reminded"].append([item_id, SlaClock.ACKNOWLEDGE, assignee_id])
        if resolve_remind:
            stamps["reminded"].append([item_id, SlaClock.RESOLVE, assignee_id])
    report.ack_breached += len(stamps["ack_breached"])
    report.resolve_breached += len(stamps["resolve_breached"])
    report.reminded += len(stamps["reminded"])
    return stamps


def sweep_record() -> int:
    """Turn the sweep batches waiting into SLA events and grouped notifications, set-based, and delete them,
    in one transaction. Returns how many batches it recorded. Batches another record step holds are skipped."""
    with transaction.atomic():
        # of=self: lock the batches only, never their queues (a queue locked FOR UPDATE would hold back every
        # commit whose foreign key names it: new items, routed leads).
        batches = list(
            SweepBatch.objects.select_for_update(skip_locked=True, of=("self",)).select_related("queue").order_by("id")
        )
        if not batches:
            return 0
        by_sweep: dict[dt.datetime, list[SweepBatch]] = defaultdict(list)
        for batch in batches:
            by_sweep[batch.at].append(batch)
        for at, sweep_batches in by_sweep.items():
            _record_events(at, sweep_batches)
            _record_notifications(at, sweep_batches)
        breached = {i for b in batches for i in b.stamps["ack_breached"] + b.stamps["resolve_breached"]}
        alerts.alerts_items_breached(item_ids=sorted(breached))  # PagerDuty, Slack, webhooks (exceptions.alerts)
        SweepBatch.objects.filter(pk__in=[b.pk for b in batches]).delete()
    return len(batches)


def _record_events(at: dt.datetime, batches: list[SweepBatch]) -> None:
    """One SLA event per breach, escalation and reminder, in that order (an item's history reads breach,
    then escalation): by the sweep, at its instant, naming the clock."""
    groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)  # (clock, kind, data) -> item ids
    sweep = json.dumps({"by": "sweep"})
    for batch in batches:
        groups[(SlaClock.ACKNOWLEDGE, SlaEventKind.BREACHED, sweep)] += batch.stamps["ack_breached"]
        groups[(SlaClock.RESOLVE, SlaEventKind.BREACHED, sweep)] += batch.stamps["resolve_breached"]
    for batch in batches:
        for item_id, level, clock in batch.stamps["escalated"]:
            groups[(clock, SlaEventKind.ESCALATED, json.dumps({"by": "sweep", "level": level}))].append(item_id)
    for batch in batches:  # after its escalation, in the item's history
        for item_id, level, clock, why in batch.stamps.get("unreached", []):
            data = json.dumps({"by": "sweep", "level": level, "why": why})
            groups[(clock, SlaEventKind.UNREACHED, data)].append(item_id)
    for batch in batches:
        for item_id, clock, _ in batch.stamps["reminded"]:
            groups[(clock, SlaEventKind.REMINDED, sweep)].append(item_id)
    for (clock, kind, data), ids in groups.items():
        if not ids:
            continue
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO exceptions_slaevent (item_id, clock, kind, at, data) "
                    "SELECT unnest(%s::bigint[]), %s, %s, %s, %s::jsonb",
                    [ids, clock, kind, at, data],
                )
        else:
            SlaEvent.objects.bulk_create(
                [SlaEvent(item_id=i, clock=clock, kind=kind, at=at, data=json.loads(data)) for i in ids],
                batch_size=500,
            )


def _record_notifications(at: dt.datetime, batches: list[SweepBatch]) -> None:
    """One notification per person, queue, kind and sweep, listing the items: level 1 to the queue's owner,
    level 2 to its escalation contact (else the owner), as the stamp step found them (active people only);
    none for an escalation that reached nobody. Reminders to the assignee (none: the whole queue)."""
    groups: dict[tuple[Queue, str, int | None], list[int]] = defaultdict(list)
    queues: dict[int, Queue] = {}
    kinds = {1: NotificationKind.ESCALATION_1, 2: NotificationKind.ESCALATION_2}
    for batch in batches:
        queue = queues.setdefault(batch.queue_id, batch.queue)
        # A batch written before recipients were recorded: the queue's people as they are now.
        legacy = {"1": queue.owner_id, "2": queue.escalation_contact_id or queue.owner_id}
        recipients = batch.stamps.get("recipients", legacy)
        unreached = {row[0] for row in batch.stamps.get("unreached", [])}
        for item_id, level, _ in batch.stamps["escalated"]:
            if item_id not in unreached:
                groups[(queue, kinds[level], recipients[str(level)])].append(item_id)
        for item_id, _, assignee_id in batch.stamps["reminded"]:
            groups[(queue, NotificationKind.REMINDER, assignee_id)].append(item_id)
    notify_grouped(groups=groups, now=at)


def _reassign_unacknowledged(now: dt.datetime) -> int:
    """Queues that ask for it: an item whose acknowledge time just ran out goes to the next available member,
    who gets a fresh acknowledge window (the breach stays in the SLA events). Once only: if the new person
    misses it too, it escalates. Item by item (each its own transaction); the new assignees are notified
    once each per queue at the end, listing their items."""
    items = (
        ExceptionItem.objects.filter(status=OPEN, ack_breached_at=now, queue__reassign_unacknowledged=True)
        .exclude(sla_events__kind=SlaEventKind.REASSIGNED)
        .select_related("queue", "assignee", "lead")
    )
    count = 0
    handed: dict[tuple[Queue, str, int | None], list[int]] = defaultdict(list)
    for item in items:
        pick = pick_assignee(queue_id=item.queue_id, exclude_user_id=item.assignee_id, follow_overflow=False)
        if pick.assignee is None:
            continue
        ack_due_at = add_business_time(
            now, dt.timedelta(minutes=item.queue.ack_sla_minutes), item.queue.business_hours()
        )
        with transaction.atomic():
            moved = ExceptionItem.objects.filter(pk=item.pk, status=OPEN, escalation_level=0).update(
                assignee=pick.assignee,
                ack_due_at=ack_due_at,
                due_at=ack_due_at,
                ack_breached_at=None,
                ack_reminded_at=None,
                version=F("version") + 1,
            )
            if not moved:  # acknowledged (or escalated) meanwhile
                continue
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
        handed[(item.queue, NotificationKind.REASSIGNED, pick.assignee.pk)].append(item.pk)
        count += 1
    # One notification per new assignee and queue, listing the items handed over.
    notify_grouped(groups=handed, now=now)
    return count
