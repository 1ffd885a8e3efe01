"""Exceptions raised in the incident tools people already run: PagerDuty (Events API v2), Slack (incoming
webhooks) and ticketing systems (a signed webhook), configured per queue (AlertChannel, in the admin).

What is sent when (README: Incident tools):
- an item opens, an item breaches its SLA, an incident opens: an alert (PagerDuty `trigger`, a Slack message,
  a webhook `alert.triggered`) on every active channel of the queue that asked for that event, at or above its
  minimum severity;
- the item or incident is acknowledged or resolved in Handoff (console, API, bulk, incident actions, or by the
  system): a follow-up (PagerDuty `acknowledge` / `resolve`, a Slack message, `alert.acknowledged` /
  `alert.resolved`) on every channel that was sent an alert about it.

Every function here writes AlertMessage rows (the outbox) inside the caller's transaction: a message exists if
and only if its change committed. exceptions.alert_delivery sends them. One alert per item or incident,
named by a stable dedup key (`handoff-exception-<id>`, `handoff-incident-<id>`).
"""

import contextlib
import contextvars
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from exceptions.models import (
    AlertAction,
    AlertChannel,
    AlertChannelKind,
    AlertEvent,
    AlertMessage,
    AlertSeverity,
    ExceptionIncident,
    ExceptionItem,
)
from routing.bulk import bulk_insert
from routing.dispatch import alerts_enqueue

SEVERITY = {
    AlertEvent.ITEM_OPENED: AlertSeverity.WARNING,
    AlertEvent.ITEM_BREACHED: AlertSeverity.ERROR,
    AlertEvent.INCIDENT_OPENED: AlertSeverity.CRITICAL,
}
SOURCE = "handoff"

# The alert a change came from (a PagerDuty webhook): that channel is not told, about that alert, of the change
# it reported itself. Its other alerts (an incident's items, each paged on their own) are followed up as usual.
_quiet: contextvars.ContextVar[frozenset[tuple[int, str]]] = contextvars.ContextVar("quiet_alerts", default=frozenset())


@contextlib.contextmanager
def alerts_not_echoed_to(channel_ids: Iterable[int], *, dedup_key: str):
    """Changes made inside send no follow-up about `dedup_key` to these channels (they reported it to us)."""
    token = _quiet.set(_quiet.get() | {(channel_id, dedup_key) for channel_id in channel_ids})
    try:
        yield
    finally:
        _quiet.reset(token)


def item_dedup_key(item_id: int) -> str:
    return f"handoff-exception-{item_id}"


def incident_dedup_key(incident_id: int) -> str:
    return f"handoff-incident-{incident_id}"


def console_url(name: str, pk: int) -> str:
    return settings.HANDOFF["CONSOLE_URL"].rstrip("/") + reverse(name, args=[pk])


# --- alerts (triggers) ---------------------------------------------------------------------------------------


def alerts_items_opened(*, items: list[ExceptionItem]) -> list[AlertMessage]:
    """Items just opened (exceptions.services.exceptions_open, once they have gathered into incidents), in its
    transaction. An item that opened into an incident is not paged on its own to a channel that is told of
    incidents: one cause, one page (the incident's). The items before it, which opened the incident, were."""
    return _trigger_items(items, AlertEvent.ITEM_OPENED, skip_in_incidents=True)


def alerts_items_breached(*, item_ids: list[int]) -> list[AlertMessage]:
    """Items the SLA sweep stamped breached (exceptions.sweep.sweep_record), in its transaction."""
    if not item_ids or not _any_channel_for(AlertEvent.ITEM_BREACHED):
        return []
    items = list(ExceptionItem.objects.filter(pk__in=item_ids).select_related("lead", "queue").order_by("pk"))
    return _trigger_items(items, AlertEvent.ITEM_BREACHED)


def alert_incident_opened(*, incident: ExceptionIncident) -> list[AlertMessage]:
    """An incident just opened (exceptions.incidents), in its transaction."""
    channels = _channels(AlertEvent.INCIDENT_OPENED, {incident.queue_id})
    summary = f"Incident #{incident.pk}: {incident.title} ({incident.queue.name})"
    alert = _Alert(
        dedup_key=incident_dedup_key(incident.pk),
        event=AlertEvent.INCIDENT_OPENED,
        summary=summary,
        url=console_url("console:incident", incident.pk),
        details={
            "incident_id": incident.pk,
            "cause": incident.cause,
            "reason": incident.reason,
            "queue": incident.queue.name,
            "opened_at": incident.opened_at,
            "ack_due_at": incident.ack_due_at,
            "resolve_due_at": incident.resolve_due_at,
        },
        queue=incident.queue.name,
        group=incident.reason,
    )
    rows = [_trigger(channel, alert, incident=incident) for channel in channels.get(incident.queue_id, [])]
    return _write(rows)


def _trigger_items(items: list[ExceptionItem], event: str, *, skip_in_incidents: bool = False) -> list[AlertMessage]:
    channels = _channels(event, {item.queue_id for item in items})
    in_incidents = set()
    if skip_in_incidents and channels:
        in_incidents = set(
            ExceptionItem.objects.filter(pk__in=[item.pk for item in items], incident__isnull=False).values_list(
                "pk", flat=True
            )
        )
    rows = []
    for item in items:
        wanted = channels.get(item.queue_id)
        if item.pk in in_incidents:
            wanted = [channel for channel in wanted or () if AlertEvent.INCIDENT_OPENED not in channel.events]
        if not wanted:
            continue
        alert = _item_alert(item, event)
        rows += [_trigger(channel, alert, item=item) for channel in wanted]
    return _write(rows)


def _item_alert(item: ExceptionItem, event: str) -> "_Alert":
    what = "SLA breached" if event == AlertEvent.ITEM_BREACHED else "Exception"
    summary = f"{what}: {item.get_reason_display()} for lead {item.lead.lead_id} in {item.queue.name}"
    return _Alert(
        dedup_key=item_dedup_key(item.pk),
        event=event,
        summary=summary,
        url=console_url("console:item", item.pk),
        details={
            "exception_id": item.pk,
            "lead_id": item.lead.lead_id,
            "reason": item.reason,
            "detail": item.detail,
            "queue": item.queue.name,
            "opened_at": item.opened_at,
            "ack_due_at": item.ack_due_at,
            "resolve_due_at": item.resolve_due_at,
        },
        queue=item.queue.name,
        group=item.reason,
    )


class _Alert:
    def __init__(self, *, dedup_key, event, summary, url, details, queue, group):
        self.dedup_key, self.event, self.summary, self.url = dedup_key, event, summary[:1000], url
        self.details, self.queue, self.group = details, queue, group
        self.severity = SEVERITY[event]


def _any_channel_for(event: str) -> bool:
    return any(event in (channel.events or []) for channel in AlertChannel.objects.filter(is_active=True))


def _channels(event: str, queue_ids: set[int]) -> dict[int, list[AlertChannel]]:
    """Active channels of these queues that want `event` at its severity, by queue (one query)."""
    by_queue = defaultdict(list)
    if not queue_ids:
        return by_queue
    for channel in AlertChannel.objects.filter(is_active=True, queue__in=queue_ids).order_by("pk"):
        if event in (channel.events or []) and SEVERITY[event] >= channel.min_severity:
            by_queue[channel.queue_id].append(channel)
    return by_queue


def _trigger(channel: AlertChannel, alert: _Alert, *, item=None, incident=None) -> AlertMessage:
    now = timezone.now()
    if channel.kind == AlertChannelKind.PAGERDUTY:
        body = {
            "event_action": "trigger",
            "dedup_key": alert.dedup_key,
            "payload": {
                "summary": alert.summary,
                "source": SOURCE,
                "severity": alert.severity.label,
                "timestamp": now,
                "component": alert.queue,
                "group": alert.group,
                "class": alert.event,
                "custom_details": alert.details,
            },
            "links": [{"href": alert.url, "text": "Open in Handoff"}],
            "client": "Handoff",
            "client_url": alert.url,
        }
    elif channel.kind == AlertChannelKind.SLACK:
        body = _slack(f":rotating_light: {alert.summary}", alert.url)
    else:
        body = _webhook(
            "alert.triggered",
            alert.dedup_key,
            now,
            summary=alert.summary,
            url=alert.url,
            event=alert.event,
            severity=alert.severity.label,
            details=alert.details,
        )
    return _message(
        channel,
        alert.dedup_key,
        AlertAction.TRIGGER,
        body,
        now,
        item_id=item.pk if item else None,
        incident_id=incident.pk if incident else None,
    )


def _slack(text: str, url: str) -> dict:
    """`text` carries what others wrote (a lead's fields from a capture system, a person's note): escaped as Slack
    asks, so `<!channel>` or `<https://…|Open in Handoff>` in it shows as typed instead of paging the channel or
    forging a link. Only the link to Handoff is markup."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {
        "text": f"{text} <{url}|Open in Handoff>",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{text}\n<{url}|Open in Handoff>"}},
        ],
    }


def _webhook(event_type: str, dedup_key: str, at: dt.datetime, **data) -> dict:
    return {"type": event_type, "occurred_at": at, "data": {"dedup_key": dedup_key, **data}}


def _message(channel, dedup_key, action, body, now, *, item_id=None, incident_id=None) -> AlertMessage:
    return AlertMessage(
        channel=channel,
        dedup_key=dedup_key,
        action=action,
        item_id=item_id,
        incident_id=incident_id,
        body=body,
        created_at=now,
        next_attempt_at=now,
    )


def _write(rows: list[AlertMessage]) -> list[AlertMessage]:
    if not rows:
        return []
    messages = bulk_insert(rows)
    ids = [message.pk for message in messages]
    transaction.on_commit(lambda: alerts_enqueue(ids))
    return messages


# --- follow-ups (acknowledge, resolve) ---------------------------------------------------------------------


def alerts_items_acknowledged(*, item_ids: list[int], by, note: str = "") -> list[AlertMessage]:
    return _follow({item_dedup_key(i): ("item", i) for i in item_ids}, AlertAction.ACKNOWLEDGE, by, note)


def alerts_items_resolved(*, item_ids: list[int], by, note: str = "") -> list[AlertMessage]:
    return _follow({item_dedup_key(i): ("item", i) for i in item_ids}, AlertAction.RESOLVE, by, note)


def alert_incident_acknowledged(*, incident_id: int, by, note: str = "") -> list[AlertMessage]:
    return _follow({incident_dedup_key(incident_id): ("incident", incident_id)}, AlertAction.ACKNOWLEDGE, by, note)


def alert_incident_resolved(*, incident_id: int, by, note: str = "") -> list[AlertMessage]:
    return _follow({incident_dedup_key(incident_id): ("incident", incident_id)}, AlertAction.RESOLVE, by, note)


def _follow(keys: dict[str, tuple[str, int]], action: str, by, note: str) -> list[AlertMessage]:
    """A follow-up on every active channel that was sent an alert about these keys (one query when none was),
    except the channel the change came from."""
    if not keys:
        return []
    sent = (
        AlertMessage.objects.filter(dedup_key__in=list(keys), action=AlertAction.TRIGGER, channel__is_active=True)
        .values_list("dedup_key", "channel")
        .distinct()
    )
    quiet = _quiet.get()
    pairs = sorted(pair for pair in set(sent) if (pair[1], pair[0]) not in quiet)
    if not pairs:
        return []
    channels = AlertChannel.objects.in_bulk({channel_id for _, channel_id in pairs})
    now = timezone.now()
    who = by.get_full_name() or by.get_username() if by is not None else "the system"
    done = "acknowledged" if action == AlertAction.ACKNOWLEDGE else "resolved"
    rows = []
    for dedup_key, channel_id in pairs:
        channel = channels[channel_id]
        kind, pk = keys[dedup_key]
        name = "console:item" if kind == "item" else "console:incident"
        url = console_url(name, pk)
        label = f"Item #{pk}" if kind == "item" else f"Incident #{pk}"
        if channel.kind == AlertChannelKind.PAGERDUTY:
            body = {"event_action": action, "dedup_key": dedup_key}
        elif channel.kind == AlertChannelKind.SLACK:
            mark = ":eyes:" if action == AlertAction.ACKNOWLEDGE else ":white_check_mark:"
            body = _slack(f"{mark} {label} {done} by {who}{f': {note}' if note else ''}", url)
        else:
            body = _webhook(f"alert.{done}", dedup_key, now, url=url, by=who, note=note)
        link = {"item_id": pk} if kind == "item" else {"incident_id": pk}
        rows.append(_message(channel, dedup_key, action, body, now, **link))
    return _write(rows)
