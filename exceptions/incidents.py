"""Incidents: items that one cause produced, gathered so that one outage is handled once.

A cause is what the items share: the delivery target and the class of its error (a CRM answering 503, or
refusing connections), the enrichment provider, or the capture source whose leads no rule matches. When
INCIDENT_MIN_ITEMS unresolved items of one cause have opened within INCIDENT_WINDOW_MINUTES, an incident opens
with the first one's clock; later items of the cause join it while it is unresolved. The SLA sweep then leaves
its items alone and sweeps the incident instead (`incidents_sweep`): one breach, one escalation and one
notification for the outage, not one per lead. When its last item is resolved (a replay delivered everything,
or people resolved them one by one) the incident resolves itself.

The actions people take on an incident (acknowledge, assign, resolve: fanned out to its items) are in
exceptions.incident_actions.
"""

import datetime as dt
import re
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Max, Q
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_event, audit_record
from exceptions import alerts
from exceptions.models import (
    NOTIFICATION_LISTED_ITEMS,
    UNRESOLVED,
    ExceptionIncident,
    ExceptionItem,
    ExceptionReason,
    ExceptionStatus,
    Notification,
    NotificationKind,
    SlaClock,
    SlaEvent,
    SlaEventKind,
)
from exceptions.postmortems import incident_postmortem_assess
from exceptions.sla import add_business_time, next_open, subtract_business_time
from routing.bulk import bulk_insert
from routing.models import Lead
from routing.queue_owners import escalation_recipient, unreached_problem

RESOLVED = ExceptionStatus.RESOLVED


@dataclass(frozen=True)
class Cause:
    """What produced an item, when one cause can produce many: `key` groups, `title` names it for people."""

    key: str
    title: str


def delivery_cause(*, target_id: int, target_name: str, error: str) -> Cause:
    kind = error_class(error)
    return Cause(f"{ExceptionReason.DELIVERY_FAILED}:{target_id}:{kind}", f"Deliveries to {target_name} fail: {kind}")


def enrichment_cause() -> Cause:
    # One provider is active at a time: its failures are one cause.
    return Cause(str(ExceptionReason.ENRICHMENT_FAILED), "Enrichment fails for high-intent leads")


def enrichment_incident_open() -> ExceptionIncident | None:
    """The open enrichment incident (the provider below its success target, or its failures gathered), if any:
    while one is open, no lead waits for the provider and every failed enrichment goes to a person."""
    return (
        ExceptionIncident.objects.filter(cause=enrichment_cause().key).exclude(status=ExceptionStatus.RESOLVED).first()
    )


def no_rule_cause(*, source_id: int | None, source_name: str) -> Cause:
    return Cause(
        f"{ExceptionReason.NO_MATCHING_RULE}:{source_id or 'none'}",
        f"No production rule matches leads from {source_name}",
    )


_HTTP_STATUS = re.compile(r"^HTTP ([0-9])[0-9]{2}\b")


def error_class(error: str) -> str:
    """The class of a delivery error, coarse enough that one outage is one class: `HTTP 5xx` whether the far end
    says 502 or 503, `timeout`, `refused` (an address we may not reach), else the exception's name."""
    status = _HTTP_STATUS.match(error)
    if status:
        return f"HTTP {status.group(1)}xx"
    if error.startswith("timeout"):
        return "timeout"
    if error.startswith("refused"):
        return "refused"
    name = error.split(":", 1)[0].strip()
    return name[:60] if name and " " not in name else "unreachable"


def _window() -> dt.timedelta:
    return dt.timedelta(minutes=settings.HANDOFF["INCIDENT_WINDOW_MINUTES"])


def incidents_gather(*, causes: dict[str, str], at: dt.datetime) -> None:
    """Attach the unresolved items of these causes (key: title) that no incident holds to their cause's
    incident, opening one where INCIDENT_MIN_ITEMS of them opened within the window. Called where items open,
    in their transaction. Two workers at once: the unique constraint lets one incident open; the other joins it."""
    if not causes:
        return
    if connection.vendor == "postgresql":
        # One gatherer per cause at a time, until its transaction ends (in key order, so two never wait on each
        # other): two routing workers opening items of one outage neither both fall short of the threshold
        # nor lock each other's items in turn.
        with connection.cursor() as cursor:
            for cause in sorted(causes):
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"incident:{cause}"])
    current = {i.cause: i for i in ExceptionIncident.objects.filter(cause__in=causes).exclude(status=RESOLVED)}
    for cause, title in sorted(causes.items()):
        incident, opened = current.get(cause), False
        loose = ExceptionItem.objects.filter(UNRESOLVED, cause=cause, incident__isnull=True)
        if incident is None:
            recent = loose.filter(opened_at__gte=at - _window())
            first = recent.order_by("opened_at", "id").select_related("queue").first()
            if first is None or recent.count() < settings.HANDOFF["INCIDENT_MIN_ITEMS"]:
                continue
            incident, opened = _incident_open(first, title, at)
        joining = loose.filter(opened_at__gte=incident.opened_at - _window())
        if incident.status == ExceptionStatus.ACKNOWLEDGED:
            _join_acknowledged(incident, list(joining.values_list("pk", "lead_id", "ack_due_at")), at)
        else:
            owner = {"assignee": incident.assignee_id} if incident.assignee_id else {}  # whoever took it takes them
            joining.update(incident=incident, **owner, version=F("version") + 1)
        if opened:  # once its items are in: the notification lists them
            incident_notify(incident, NotificationKind.INCIDENT, recipient_id=None, at=at)


def _join_acknowledged(incident: ExceptionIncident, rows: list[tuple], at: dt.datetime) -> None:
    """Items joining an incident someone has acknowledged take its state, as alerts merged into an acknowledged
    page do: acknowledged (on the incident's behalf, audited as such), with its assignee, the resolve clock
    running."""
    if not rows:
        return
    ids = [pk for pk, _, _ in rows]
    ExceptionItem.objects.filter(pk__in=ids).update(
        incident=incident,
        status=ExceptionStatus.ACKNOWLEDGED,
        acknowledged_at=at,
        acknowledged_by=incident.acknowledged_by_id,
        assignee=incident.assignee_id,
        due_at=F("resolve_due_at"),
        version=F("version") + 1,
    )
    why = {"incident": incident.pk, "why": f"joined incident #{incident.pk}, already acknowledged"}
    alerts.alerts_items_acknowledged(item_ids=ids, by=None, note=why["why"])
    bulk_insert(
        [
            audit_event(
                action=AuditAction.EXCEPTION_ACKNOWLEDGED,
                lead=Lead(pk=lead_id),
                exception=ExceptionItem(pk=pk),
                incident=incident,
                outcome=ExceptionStatus.ACKNOWLEDGED,
                at=at,
                data=why,
            )
            for pk, lead_id, _ in rows
        ]
    )
    bulk_insert(
        [
            SlaEvent(
                item_id=pk,
                clock=SlaClock.ACKNOWLEDGE,
                kind=SlaEventKind.FULFILLED,
                at=at,
                data={"within_sla": at <= due},
            )
            for pk, _, due in rows
        ]
    )


def _incident_open(first: ExceptionItem, title: str, at: dt.datetime) -> tuple[ExceptionIncident, bool]:
    """The cause's incident, its clock from its first item's opening, and True; or the one another worker just
    opened, and False."""
    hours = first.queue.business_hours()
    try:
        with transaction.atomic():
            incident = ExceptionIncident.objects.create(
                cause=first.cause,
                reason=first.reason,
                title=title[:300],
                queue=first.queue,
                opened_at=first.opened_at,
                ack_due_at=add_business_time(first.opened_at, dt.timedelta(minutes=first.queue.ack_sla_minutes), hours),
                resolve_due_at=add_business_time(
                    first.opened_at, dt.timedelta(minutes=first.queue.resolve_sla_minutes), hours
                ),
            )
    except IntegrityError:
        return ExceptionIncident.objects.exclude(status=RESOLVED).get(cause=first.cause), False
    audit_record(
        action=AuditAction.ITEM_INCIDENT_OPENED,
        incident=incident,
        outcome="open",
        at=at,
        data={"cause": incident.cause, "title": incident.title, "queue": first.queue.name},
    )
    alerts.alert_incident_opened(incident=incident)
    return incident, True


def incident_settle(*, incident_id: int, by, resolution: str, note: str, at: dt.datetime) -> bool:
    """The incident's last item was just resolved: the incident is resolved too, with that item's code and note
    (a replay that delivered everything resolves the outage). False if it still has items, or is resolved."""
    if ExceptionItem.objects.filter(UNRESOLVED, incident=incident_id).exists():
        return False
    settled = ExceptionIncident.objects.filter(pk=incident_id).exclude(status=RESOLVED)
    changes = {
        "status": RESOLVED,
        "resolved_at": at,
        "resolved_by": by,
        "resolution": resolution,
        "resolution_note": note,
        "version": F("version") + 1,
    }
    if not settled.update(**changes):
        return False
    audit_record(
        action=AuditAction.ITEM_INCIDENT_RESOLVED,
        actor=by,
        incident=ExceptionIncident(pk=incident_id),
        outcome=resolution,
        at=at,
        data={"resolution": resolution, "note": note, "why": "its last item was resolved"},
    )
    alerts.alert_incident_resolved(incident_id=incident_id, by=by, note=note)
    incident_postmortem_assess(incident_id=incident_id, at=at)
    return True


def incidents_sweep(*, now: dt.datetime | None = None) -> int:
    """The SLA sweep for incidents (a handful at a time, so one row each): stamp a breached clock once, escalate
    once to level 1 (the queue's owner) and once more to level 2 (the escalation contact) if it stays breached
    an escalation interval, each with one notification and an audit event. Returns how many it escalated."""
    now = now or timezone.now()
    escalated = 0
    running = ExceptionIncident.objects.exclude(status=RESOLVED).select_related(
        "queue__owner", "queue__escalation_contact"
    )
    for incident in running.filter(Q(ack_due_at__lte=now) | Q(resolve_due_at__lte=now)):
        escalated += _sweep_one(incident, now)
    return escalated


def _sweep_one(incident: ExceptionIncident, now: dt.datetime) -> int:
    rows = ExceptionIncident.objects.filter(pk=incident.pk, version=incident.version).exclude(status=RESOLVED)
    ack_late = incident.status == ExceptionStatus.OPEN and incident.ack_due_at <= now
    resolve_late = incident.resolve_due_at <= now
    stamps = {}
    if ack_late and incident.ack_breached_at is None:
        stamps["ack_breached_at"] = now
    if resolve_late and incident.resolve_breached_at is None:
        stamps["resolve_breached_at"] = now
    level = 0
    queue = incident.queue
    if (ack_late or resolve_late) and incident.escalation_level == 0:
        level = 1
    elif incident.escalation_level == 1 and (ack_late or resolve_late):
        cutoff = subtract_business_time(
            now, dt.timedelta(minutes=queue.escalation_interval_minutes), queue.business_hours()
        )
        level = 2 if incident.escalated_at <= cutoff else 0
    if level:
        stamps.update(escalation_level=level, escalated_at=now)
    if not stamps:
        return 0
    with transaction.atomic():
        if not rows.update(**stamps, version=F("version") + 1):
            return 0  # someone acted on it meanwhile: the next sweep looks again
        if not level:
            return 0
        clock = "acknowledge" if ack_late else "resolve"
        audit_record(
            action=AuditAction.ITEM_INCIDENT_ESCALATED,
            incident=incident,
            outcome=f"level {level}",
            at=now,
            data={"level": level, "clock": clock, "by": "sweep"},
        )
        kind = NotificationKind.ESCALATION_1 if level == 1 else NotificationKind.ESCALATION_2
        recipient = escalation_recipient(queue, level)
        # Nobody to receive it: the incident's items carry the error (as the SLA sweep's items), no notification.
        problem = unreached_problem(queue, level) if recipient is None else ""
        items = ExceptionItem.objects.filter(incident=incident)
        items.exclude(escalation_problem=problem).update(escalation_problem=problem)
        if recipient is None:
            data = {"by": "sweep", "level": level, "why": problem, "incident": incident.pk}
            sla_clock = SlaClock.ACKNOWLEDGE if ack_late else SlaClock.RESOLVE
            SlaEvent.objects.bulk_create(
                SlaEvent(item_id=pk, clock=sla_clock, kind=SlaEventKind.UNREACHED, at=now, data=data)
                for pk in items.values_list("pk", flat=True)
            )
        else:
            incident_notify(incident, kind, recipient_id=recipient, at=now)
    return 1


def incident_notify(incident: ExceptionIncident, kind: str, *, recipient_id: int | None, at: dt.datetime) -> None:
    """One notification about the incident (its items listed, the first few), once per kind."""
    items = ExceptionItem.objects.filter(incident=incident)
    ids = list(items.order_by("id").values_list("pk", flat=True)[:NOTIFICATION_LISTED_ITEMS])
    Notification.objects.get_or_create(
        queue=incident.queue,
        key=f"incident:{incident.pk}:{kind}",
        item=None,
        defaults={
            "incident": incident,
            "item_ids": ids,
            "item_count": max(items.count(), len(ids)),
            "kind": kind,
            "recipient_id": recipient_id,
            "created_at": at,
            "deliver_after": next_open(at, incident.queue.business_hours()),
        },
    )


def incident_item_counts(incident_ids) -> dict[int, dict]:
    """Per incident: how many items, how many unresolved, and when its latest item opened (one query)."""
    rows = (
        ExceptionItem.objects.filter(incident__in=list(incident_ids))
        .values("incident")
        .annotate(total=Count("id"), unresolved=Count("id", filter=UNRESOLVED), latest=Max("opened_at"))
    )
    return {row["incident"]: row for row in rows}
