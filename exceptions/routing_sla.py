"""The live routing SLA (a beat task, every minute): a lead still unassigned past its SLA gets an item.

A lead's SLA runs from receipt: its deciding rule version's `sla_minutes` once a rule has decided it, else
HANDOFF_ROUTING_SLO_MINUTES (the global routing SLO). The leads it watches are those waiting with no clock
running on them, i.e. no unresolved exception item of their own:

- `received`: never routed. Where it is stuck: *waiting* (held because everyone in its rule's queue is away,
  until the first member's hours start: routing.availability.waiting; it counts against that rule's SLA),
  *enriching* (an active enrichment provider has not answered for it yet), *broker backlog* (routing tasks
  are queued in the lanes) or *received* (no worker has it: a lost publish, waiting for the re-queue sweeper);
- *held*: in `exception` status, waiting on the same person's unresolved item (routing.accounts.identity)
  with no item of its own.

A lead with its own unresolved item (no matching rule, no eligible assignee, …) is already in front of a
person on that item's acknowledge and resolve clocks, escalated by the SLA sweep: a second item would repeat it.

Each sweep is two set-based statements (PostgreSQL):

1. **Close.** Unresolved `routing_sla_breached` items whose lead is now assigned (by routing, a person's
   re-route or triage, a held lead following its item: whatever wrote the lead) are resolved `rerouted` by
   the system at the assignment's time (at most one sweep late), with their SLA and audit events.
2. **Open.** One INSERT … SELECT finds the breaching leads and writes their items (in the deciding rule's
   queue, else the triage queue), SLA events and audit events. `ON CONFLICT DO NOTHING` against
   `exception_one_unresolved_per_lead_reason`: a second sweep at the same time (a duplicate beat tick) waits
   for the first's rows and then writes nothing for them, and only what was inserted gets events. A
   high-intent lead's item opens escalated at level 2: one notification per contact and queue per sweep (as
   the SLA sweep's), or, with nobody to escalate to, `escalation_problem` says so.
"""

import datetime as dt
import functools
import json
import logging
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditAction
from exceptions import alerts
from exceptions.models import (
    UNRESOLVED_STATUSES,
    AlertChannel,
    ExceptionItem,
    ExceptionReason,
    ExceptionStatus,
    NotificationKind,
    Resolution,
    SlaClock,
    SlaEventKind,
)
from exceptions.notifications import notify_grouped
from exceptions.services import exception_due_times, triage_queue
from routing.dispatch import routing_backlog
from routing.integrations import events as integration_events
from routing.integrations.models import EnrichmentProvider
from routing.models import LeadStatus, Queue, RuleVersion
from routing.queue_owners import escalation_recipient, unreached_problem

logger = logging.getLogger(__name__)

REASON = ExceptionReason.ROUTING_SLA_BREACHED
ROUTING_SLA_CHUNK = 10_000  # items opened per statement (and transaction)
CLOSED_NOTE = "The lead was assigned: it no longer waits."
# format(): the item the lead now has (no matching rule, no eligible assignee, …), whose clocks take over.
HANDED_OVER_NOTE = "The lead has its own item #%s now: that item's clocks take over."


class Stuck:
    """Where a waiting lead is stuck (the audit event's `stuck`)."""

    RECEIVED = "received"
    ENRICHING = "enriching"
    BROKER_BACKLOG = "broker_backlog"
    HELD = "held"
    WAITING = "waiting"  # held for working hours (everyone in the queue away), until `waiting_until`


@dataclass
class RoutingSlaReport:
    opened: int = 0
    escalated: int = 0
    unreached: int = 0  # high-intent items with nobody to escalate to
    closed: int = 0
    statements: int = 0


_UNRESOLVED = ", ".join(f"'{status}'" for status in UNRESOLVED_STATUSES)

# No unresolved item of the lead's own (of any reason: a routing_sla_breached one included).
_NO_ITEM = (
    f"NOT EXISTS (SELECT 1 FROM exceptions_exceptionitem o WHERE o.lead_id = l.id AND o.status IN ({_UNRESOLVED}))"
)
# The leads waiting with no clock of their own, received at or before %(earliest)s (no SLA is shorter).
# received: along lead_pending_idx; held: from the holding items, along exception_due_idx (unresolved).
_WAITING = f"""
    SELECT l.id, l.lead_id, l.received_at, l.routed_at, l.rule_id, l.rule_version, l.queue_id, l.intent_score,
        l.enrichment_attempts, l.enrich_after, l.requeue_count, l.waiting_until,
        CASE WHEN l.waiting_until IS NOT NULL THEN '{Stuck.WAITING}'
             WHEN %(enriching)s AND l.enrichment_status IS NULL THEN '{Stuck.ENRICHING}'
             WHEN %(backlog)s > 0 THEN '{Stuck.BROKER_BACKLOG}' ELSE '{Stuck.RECEIVED}' END AS stuck,
        NULL::bigint AS held_by
    FROM routing_lead l
    WHERE l.status = '{LeadStatus.RECEIVED}' AND l.received_at <= %(earliest)s AND {_NO_ITEM}
    UNION ALL
    SELECT l.id, l.lead_id, l.received_at, l.routed_at, l.rule_id, l.rule_version, l.queue_id, l.intent_score,
        l.enrichment_attempts, l.enrich_after, l.requeue_count, NULL::timestamptz, '{Stuck.HELD}', h.item_id
    FROM (
        SELECT h.lead_id, min(h.exceptionitem_id) AS item_id
        FROM exceptions_exceptionitem hi
        JOIN exceptions_exceptionitem_held_leads h ON h.exceptionitem_id = hi.id
        WHERE hi.status IN ({_UNRESOLVED})
        GROUP BY h.lead_id
    ) h
    JOIN routing_lead l ON l.id = h.lead_id
    WHERE l.status = '{LeadStatus.EXCEPTION}' AND l.received_at <= %(earliest)s AND {_NO_ITEM}
"""

_UTC = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')"
_WHERE_STUCK = f"""CASE d.stuck
    WHEN '{Stuck.WAITING}' THEN format('Waiting for working hours until %%s UTC: everyone in its queue is away.',
        {_UTC.format("d.waiting_until")})
    WHEN '{Stuck.ENRICHING}' THEN format('Stuck enriching: %%s attempt(s) so far%%s.', d.enrichment_attempts,
        CASE WHEN d.enrich_after IS NULL THEN '' ELSE ', next at ' || {_UTC.format("d.enrich_after")} || ' UTC' END)
    WHEN '{Stuck.BROKER_BACKLOG}' THEN format(
        'Stuck in the broker backlog: %%s routing task(s) queued in the lanes.', %(backlog)s)
    WHEN '{Stuck.HELD}' THEN format('Held since %%s UTC: it waits on item #%%s of the same person.',
        {_UTC.format("COALESCE(d.routed_at, d.received_at)")}, d.held_by)
    ELSE format('Stuck received: no routing worker has it%%s.',
        CASE WHEN d.requeue_count > 0 THEN format(' (published again %%s time(s))', d.requeue_count) ELSE '' END)
    END"""
_DETAIL = f"""format('Not assigned %%s min after it was received (%%s UTC), past %%s. %%s',
    floor(extract(epoch FROM %(now)s - d.received_at) / 60)::int, {_UTC.format("d.received_at")},
    CASE WHEN d.by_rule THEN format('the %%s-minute SLA of rule %%s (v%%s)', d.sla_minutes, d.rule_name,
        d.rule_version) ELSE format('the %%s-minute routing SLO (no rule has decided it)', d.sla_minutes) END,
    {_WHERE_STUCK})"""

# The breaching leads (the first %(limit)s by receipt) and, in the same statement, their items, SLA events
# and audit events. `q` carries each queue's due times for this instant (business hours, computed in Python)
# and who its level-2 escalation goes to.
OPEN_SQL = f"""
WITH q AS (
    SELECT * FROM jsonb_to_recordset(%(queues)s::jsonb)
        AS q(id bigint, name text, ack_due timestamptz, resolve_due timestamptz, contact integer, problem text)
), due AS MATERIALIZED (
    SELECT w.*, COALESCE(v.sla_minutes, %(slo)s) AS sla_minutes, v.sla_minutes IS NOT NULL AS by_rule,
        v.name AS rule_name, v.owner_id AS rule_owner_id,
        COALESCE(w.queue_id, v.queue_id, %(triage)s) AS item_queue,
        COALESCE(w.intent_score, 0) > %(threshold)s AS high
    FROM ({_WAITING}) w
    LEFT JOIN routing_ruleversion v ON v.rule_id = w.rule_id AND v.number = w.rule_version
    WHERE w.received_at + make_interval(mins => COALESCE(v.sla_minutes, %(slo)s)) <= %(now)s
    ORDER BY w.received_at, w.id
    LIMIT %(limit)s
), ins AS (
    INSERT INTO exceptions_exceptionitem (lead_id, reason, detail, queue_id, status, opened_at, ack_due_at,
        resolve_due_at, due_at, resolution, resolution_note, escalation_level, escalated_at, escalation_problem,
        cause, version)
    SELECT d.id, '{REASON}', {_DETAIL}, q.id, '{ExceptionStatus.OPEN}', %(now)s, q.ack_due, q.resolve_due,
        q.ack_due, '', '', CASE WHEN d.high THEN 2 ELSE 0 END, CASE WHEN d.high THEN %(now)s::timestamptz END,
        CASE WHEN d.high AND q.contact IS NULL THEN q.problem ELSE '' END,
        '', 1
    FROM due d JOIN q ON q.id = d.item_queue
    ORDER BY d.id
    ON CONFLICT DO NOTHING
    RETURNING id, lead_id, queue_id, detail, ack_due_at, resolve_due_at, escalation_level, escalation_problem
), sla AS (
    INSERT INTO exceptions_slaevent (item_id, clock, kind, at, data)
    SELECT ins.id, e.clock, e.kind, %(now)s, e.data
    FROM ins CROSS JOIN LATERAL (VALUES
        ('{SlaClock.ACKNOWLEDGE}', '{SlaEventKind.STARTED}', '{{}}'::jsonb, true),
        ('{SlaClock.RESOLVE}', '{SlaEventKind.STARTED}', '{{}}'::jsonb, true),
        ('{SlaClock.ACKNOWLEDGE}', '{SlaEventKind.ESCALATED}', '{{"by": "routing SLA", "level": 2}}'::jsonb,
            ins.escalation_level = 2),
        ('{SlaClock.ACKNOWLEDGE}', '{SlaEventKind.UNREACHED}',
            jsonb_build_object('by', 'routing SLA', 'level', 2, 'why', ins.escalation_problem),
            ins.escalation_problem <> '')
    ) AS e(clock, kind, data, wanted)
    WHERE e.wanted
    RETURNING 1
), audit AS (
    INSERT INTO audit_auditevent (action, occurred_at, actor_label, lead_id, exception_id, rule_id, rule_version,
        rule_owner_id, inputs, outcome, data)
    SELECT '{AuditAction.EXCEPTION_OPENED}', %(now)s, 'engine', ins.lead_id, ins.id,
        CASE WHEN d.by_rule THEN d.rule_id END, CASE WHEN d.by_rule THEN d.rule_version END,
        CASE WHEN d.by_rule THEN d.rule_owner_id END, '{{}}'::jsonb, '{REASON}',
        jsonb_build_object('queue', q.name, 'detail', ins.detail, 'ack_due_at', ins.ack_due_at,
            'resolve_due_at', ins.resolve_due_at, 'stuck', d.stuck, 'since', d.received_at,
            'sla_minutes', d.sla_minutes, 'sla_from', CASE WHEN d.by_rule THEN 'rule' ELSE 'routing SLO' END,
            'held_by_item', d.held_by, 'waiting_until', d.waiting_until, 'intent_score', d.intent_score,
            'escalated', ins.escalation_level = 2)
    FROM ins JOIN due d ON d.id = ins.lead_id JOIN q ON q.id = ins.queue_id
    RETURNING 1
)
SELECT ins.id, ins.queue_id, ins.escalation_level, ins.escalation_problem <> '', (SELECT count(*) FROM due)
FROM ins ORDER BY ins.id
"""

# The unresolved items whose lead is now assigned, resolved at the assignment's time (never before the item
# opened, never after now), with the breach a late resolve stamps (as exceptions.services._breached_if_late).
# Rows an operator holds are skipped: the next sweep closes them, or the operator resolves them first.
CLOSE_SQL = f"""
WITH gone AS MATERIALIZED (
    -- Items whose lead no longer waits received: one pass over those leads (along lead_pending_idx) ...
    SELECT i.id, i.lead_id FROM exceptions_exceptionitem i
    WHERE i.reason = '{REASON}' AND i.status IN ({_UNRESOLVED}) AND NOT EXISTS (
        SELECT 1 FROM routing_lead r WHERE r.id = i.lead_id AND r.status = '{LeadStatus.RECEIVED}'
            AND r.received_at <= %(now)s
    )
), t AS (
    -- ... then those items and leads by primary key: never a scan of every lead ever assigned. A lead that
    -- got an item of its own meanwhile (no matching rule, …) is handed over to that item's clocks.
    SELECT i.id, i.status AS old_status, i.acknowledged_at AS old_acknowledged_at,
        LEAST(%(now)s, GREATEST(COALESCE(o.opened_at, l.assigned_at), i.opened_at)) AS at, o.id AS handed_to
    FROM exceptions_exceptionitem i
    JOIN routing_lead l ON l.id = i.lead_id
    LEFT JOIN LATERAL (
        SELECT o.id, o.opened_at FROM exceptions_exceptionitem o
        WHERE o.lead_id = l.id AND o.reason <> '{REASON}' AND o.status IN ({_UNRESOLVED})
        ORDER BY o.id LIMIT 1
    ) o ON l.status <> '{LeadStatus.ASSIGNED}'
    WHERE i.id = ANY(ARRAY(SELECT id FROM gone)) AND l.id = ANY(ARRAY(SELECT lead_id FROM gone))
        AND i.reason = '{REASON}' AND i.status IN ({_UNRESOLVED})
        AND (l.status = '{LeadStatus.ASSIGNED}' OR o.id IS NOT NULL)
    FOR NO KEY UPDATE OF i SKIP LOCKED
), closed AS (
    UPDATE exceptions_exceptionitem i SET
        status = '{ExceptionStatus.RESOLVED}', resolved_at = t.at,
        resolution = CASE WHEN t.handed_to IS NULL THEN '{Resolution.REROUTED}' ELSE '{Resolution.DUPLICATE}' END,
        resolution_note = CASE WHEN t.handed_to IS NULL THEN %(note)s
            ELSE format(%(handed_note)s, t.handed_to) END,
        due_at = NULL, waiting_since = NULL,
        acknowledged_at = COALESCE(i.acknowledged_at, t.at),
        ack_breached_at = CASE WHEN i.status = '{ExceptionStatus.OPEN}' AND i.ack_due_at < t.at
            AND i.ack_breached_at IS NULL THEN t.at ELSE i.ack_breached_at END,
        resolve_breached_at = CASE WHEN i.status <> '{ExceptionStatus.WAITING}' AND i.resolve_due_at < t.at
            AND i.resolve_breached_at IS NULL THEN t.at ELSE i.resolve_breached_at END,
        version = i.version + 1
    FROM t WHERE i.id = t.id
    RETURNING i.id, i.lead_id, t.at, t.old_status, t.old_acknowledged_at, i.ack_due_at, i.resolve_due_at,
        i.resolve_remaining_seconds, i.ack_breached_at, i.resolve_breached_at, i.resolution, i.resolution_note
), sla AS (
    INSERT INTO exceptions_slaevent (item_id, clock, kind, at, data)
    SELECT c.id, e.clock, e.kind, c.at, e.data
    FROM closed c CROSS JOIN LATERAL (VALUES
        (1, '{SlaClock.ACKNOWLEDGE}', '{SlaEventKind.BREACHED}', '{{"by": "late action"}}'::jsonb,
            c.ack_breached_at = c.at AND c.old_status = '{ExceptionStatus.OPEN}'),
        (2, '{SlaClock.RESOLVE}', '{SlaEventKind.BREACHED}', '{{"by": "late action"}}'::jsonb,
            c.resolve_breached_at = c.at),
        (3, '{SlaClock.ACKNOWLEDGE}', '{SlaEventKind.FULFILLED}',
            jsonb_build_object('within_sla', c.at <= c.ack_due_at), c.old_acknowledged_at IS NULL),
        (4, '{SlaClock.RESOLVE}', '{SlaEventKind.FULFILLED}', jsonb_build_object('within_sla',
            CASE WHEN c.old_status = '{ExceptionStatus.WAITING}' THEN COALESCE(c.resolve_remaining_seconds, 0) > 0
                 ELSE c.at <= c.resolve_due_at END), true)
    ) AS e(n, clock, kind, data, wanted)
    WHERE e.wanted
    ORDER BY c.id, e.n
    RETURNING 1
), audit AS (
    INSERT INTO audit_auditevent (action, occurred_at, actor_label, lead_id, exception_id, inputs, outcome, data)
    SELECT '{AuditAction.EXCEPTION_RESOLVED}', c.at, 'engine', c.lead_id, c.id, '{{}}'::jsonb,
        '{ExceptionStatus.RESOLVED}',
        jsonb_build_object('resolution', c.resolution, 'note', c.resolution_note, 'by', 'routing SLA')
    FROM closed c
    RETURNING 1
)
SELECT id FROM closed ORDER BY id
"""


def routing_sla_sweep(*, now: dt.datetime | None = None) -> RoutingSlaReport:
    """Close the items of leads assigned since the last sweep, then open one for each lead newly past its SLA
    (ROUTING_SLA_CHUNK per statement, each chunk its own transaction). A constant number of queries however
    many leads wait or breach."""
    now = now or timezone.now()
    report = RoutingSlaReport()
    if connection.vendor != "postgresql":
        _warn_unsupported()
        return report
    report.closed = _close(now)
    report.statements += 1
    params = _open_params(now)
    while True:
        with transaction.atomic():
            rows = _open_chunk(params, report)
            report.statements += 1
        if not rows or rows[0][4] < ROUTING_SLA_CHUNK:
            return report


@functools.cache
def _warn_unsupported() -> None:
    """Once per process: the demo's SQLite runs beat every minute."""
    logger.warning("The routing SLA sweep needs PostgreSQL; it does nothing on %s.", connection.vendor)


def _close(now: dt.datetime) -> int:
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(CLOSE_SQL, {"now": now, "note": CLOSED_NOTE, "handed_note": HANDED_OVER_NOTE})
            ids = [row[0] for row in cursor.fetchall()]
        if ids:
            items = list(
                ExceptionItem.objects.filter(pk__in=ids).select_related("lead__origin", "queue").order_by("pk")
            )
            for item in items:
                item.resolved_by = None  # the system: no query for it
            integration_events.exceptions_resolved(items=items)  # delivery targets, one write
            alerts.alerts_items_resolved(item_ids=ids, by=None, note=CLOSED_NOTE)  # PagerDuty, Slack, webhooks
    return len(ids)


def _open_params(now: dt.datetime) -> dict:
    """What the open statement needs to know from outside the lead rows: each queue's due times for an item
    opened now and its level-2 recipient, the triage queue, the enrichment provider, the broker's backlog."""
    triage = triage_queue()
    queues, loaded = [], {}
    for queue in Queue.objects.select_related("owner", "escalation_contact"):
        loaded[queue.pk] = queue
        ack_due, resolve_due = exception_due_times(queue=queue, start=now)
        contact = escalation_recipient(queue, 2)  # as the SLA sweep's level 2: the contact, else the owner
        queues.append(
            {
                "id": queue.pk,
                "name": queue.name,
                "ack_due": ack_due.isoformat(),
                "resolve_due": resolve_due.isoformat(),
                "contact": contact,
                "problem": "" if contact else unreached_problem(queue, 2),
            }
        )
    # A slowest rule can never make a lead breach earlier than the quickest SLA of any version.
    slo = settings.HANDOFF["ROUTING_SLO_MINUTES"]
    quickest = RuleVersion.objects.order_by("sla_minutes").values_list("sla_minutes", flat=True).first()
    shortest = min(slo, quickest) if quickest is not None else slo
    return {
        "now": now,
        "earliest": now - dt.timedelta(minutes=shortest),
        "slo": slo,
        "triage": triage.pk,
        "threshold": settings.HANDOFF["HIGH_INTENT_THRESHOLD"],
        "enriching": EnrichmentProvider.objects.filter(is_active=True).exists(),
        "backlog": routing_backlog() or 0,  # unknown (broker down) is not a backlog the lead is stuck in
        "queues": json.dumps(queues),
        "recipients": {q["id"]: q["contact"] for q in queues},
        "queue_objects": loaded,  # (not SQL parameters: what the notifications need)
        "limit": ROUTING_SLA_CHUNK,
    }


def _open_chunk(params: dict, report: RoutingSlaReport) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(OPEN_SQL, params)
        rows = cursor.fetchall()
    if not rows:
        return rows
    ids = [row[0] for row in rows]
    report.opened += len(rows)
    escalated: dict[int, list[int]] = defaultdict(list)
    for item_id, queue_id, level, unreached, _ in rows:
        if level == 2 and not unreached:
            escalated[queue_id].append(item_id)
        report.unreached += unreached
    report.escalated += sum(map(len, escalated.values()))
    queues, recipients = params["queue_objects"], params["recipients"]
    # One notification per escalation contact and queue for this sweep, as the SLA sweep's level 2.
    notify_grouped(
        groups={(queues[q], NotificationKind.ESCALATION_2, recipients[q]): ids for q, ids in escalated.items()},
        now=params["now"],
    )
    # PagerDuty, Slack, webhooks of the queues (exceptions.alerts): the items are read only if one has a channel.
    if AlertChannel.objects.filter(is_active=True, queue__in={row[1] for row in rows}).exists():
        items = ExceptionItem.objects.filter(pk__in=ids).select_related("lead", "queue").order_by("pk")
        alerts.alerts_items_opened(items=list(items))
    return rows
