"""Notifications about exception items, grouped one per person, queue, kind and sweep (listing the items;
`item` is set when there is one); shown in the console, and sent by email inside the queue's
business hours (held until it opens, so nobody is paged at midnight for a queue that works 9 to 5)."""

import datetime as dt
import logging
from collections import defaultdict

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from config.mail import send_batch
from exceptions.models import NOTIFICATION_LISTED_ITEMS, ExceptionItem, Notification, NotificationKind
from exceptions.sla import next_open
from routing.models import Queue, QueueMembership

logger = logging.getLogger(__name__)

SUBJECTS = {
    NotificationKind.REMINDER: "Due soon",
    NotificationKind.ESCALATION_1: "SLA breached",
    NotificationKind.ESCALATION_2: "SLA breached, escalated",
    NotificationKind.REASSIGNED: "Assigned to you",
    NotificationKind.INCIDENT: "Incident opened",
}


def notify_grouped(*, groups: dict[tuple[Queue, str, int | None], list[int]], now: dt.datetime) -> int:
    """One notification per (queue, kind, recipient) group of the sweep at `now` (recipient None: the queue's
    members) about the group's items: it lists the first NOTIFICATION_LISTED_ITEMS and counts the rest. A
    group the same sweep already notified (a queue that reassigns records twice) adds its items to that
    notification. Delivery waits for the queue to open. Three queries, however many groups."""
    stamp = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    keyed = {
        (queue.pk, f"{kind}:{stamp}:{recipient or 'queue'}"): (queue, kind, recipient, ids)
        for (queue, kind, recipient), ids in groups.items()
        if ids
    }
    existing = {
        (n.queue_id, n.key): n
        for n in Notification.objects.select_for_update().filter(
            queue__in={queue_id for queue_id, _ in keyed}, key__in={key for _, key in keyed}
        )
    }
    new, merged = [], []
    opens: dict[int, dt.datetime] = {}
    for (queue_id, key), (queue, kind, recipient, ids) in keyed.items():
        note = existing.get((queue_id, key))
        if note is not None:
            note.item = None
            note.item_count += len(ids)
            note.item_ids = (note.item_ids + ids)[:NOTIFICATION_LISTED_ITEMS]
            merged.append(note)
            continue
        if queue_id not in opens:
            opens[queue_id] = next_open(now, queue.business_hours())
        new.append(
            Notification(
                item_id=ids[0] if len(ids) == 1 else None,
                queue=queue,
                item_ids=ids[:NOTIFICATION_LISTED_ITEMS],
                item_count=len(ids),
                key=key,
                kind=kind,
                recipient_id=recipient,
                created_at=now,
                deliver_after=opens[queue_id],
            )
        )
    Notification.objects.bulk_create(new)
    Notification.objects.bulk_update(merged, ["item", "item_count", "item_ids"])
    return len(new) + len(merged)


def db_time(value: dt.datetime):
    """A datetime as the backend stores it (SQLite compares text), for raw SQL parameters."""
    return connection.ops.adapt_datetimefield_value(value)


def _queue_addresses(queue_ids) -> dict[int, list[str]]:
    """Email addresses of each queue's available members: one query for the whole batch."""
    addresses: dict[int, list[str]] = defaultdict(list)
    for queue_id, email in (
        QueueMembership.objects.filter(queue_id__in=queue_ids, is_available=True, user__is_active=True)
        .exclude(user__email="")
        .values_list("queue_id", "user__email")
    ):
        addresses[queue_id].append(email)
    return addresses


# Notifications one run of notifications_send_due takes (a row lock each while their mail goes out).
NOTIFICATION_BATCH = 1000


def notifications_send_due(*, now: dt.datetime | None = None, limit: int = NOTIFICATION_BATCH) -> int:
    """Email what is due, one message per address listing its notifications (a grouped one with its items,
    up to NOTIFICATION_LISTED_ITEMS, and how many more); each notification is sent once. Returns how many
    were sent: one the mail server did not take stays due (config.mail.send_batch)."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            Notification.objects.filter(sent_at__isnull=True, deliver_after__lte=now)
            .order_by("deliver_after", "id")  # oldest first, along notification_unsent_idx
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("queue", "recipient", "incident")[:limit]
        )
        if not due:
            return 0
        items = ExceptionItem.objects.select_related("lead", "queue").in_bulk(
            {item_id for n in due for item_id in n.item_ids}
        )
        by_address: dict[str, list[Notification]] = defaultdict(list)
        queues = _queue_addresses({n.queue_id for n in due if n.recipient is None})
        for notification in due:
            if notification.recipient is not None:
                addresses = [notification.recipient.email] if notification.recipient.email else []
            else:  # addressed to the queue: its available members
                addresses = queues[notification.queue_id]
            if not addresses:
                logger.warning(
                    "Notification %s about %d item(s) of queue %s has nobody to email; it stays in the console only.",
                    notification.pk,
                    notification.item_count,
                    notification.queue_id,
                )
            for address in addresses:
                by_address[address].append(notification)
        messages = {
            address: EmailMessage(
                subject=f"[Handoff] {sum(n.item_count for n in notes)} exception item(s) need attention",
                body="\n".join(_lines(n, items) for n in notes),
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=[address],
            )
            for address, notes in by_address.items()
        }
        # The mail server down is one warning for the batch, not a traceback a minute: the notifications wait
        # in the console and are tried again at the next run (beat, every minute).
        unreached = send_batch(
            messages,
            what="notification message(s)",
            then="they stay pending and are tried again at the next run.",
            logger=logger,
        )
        # A notification is sent once every address it goes to has it; the rest stay due for the next run.
        waiting = {n.pk for address in unreached for n in by_address[address]}
        sent = [n.pk for n in due if n.pk not in waiting]
        Notification.objects.filter(pk__in=sent).update(sent_at=now)
    return len(sent)


def _console_url(path: str) -> str:
    return settings.HANDOFF["CONSOLE_URL"].rstrip("/") + path


def _lines(notification: Notification, items: dict[int, ExceptionItem]) -> str:
    """One line for a notification about one item; for a group, a heading, a line per listed item, and how
    many more (with a link to the queue's breached items)."""
    subject = SUBJECTS[notification.kind]
    if notification.incident is not None:  # one line for the outage, however many items
        incident = notification.incident
        url = _console_url(reverse("console:incident", args=[incident.pk]))
        return (
            f"{subject}: incident #{incident.pk} in {notification.queue.name}: {incident.title} "
            f"({notification.item_count} item(s) so far) {url}"
        )
    if notification.key.startswith("leads:"):  # leads re-routed by a remediation (routing/governance/remediate.py)
        taken = notification.key.split(":")[2] == "from"
        how = "taken from you and re-routed" if taken else "re-routed to you"
        return f"Leads reassigned: {notification.item_count} lead(s) in {notification.queue.name} {how}."
    listed = [items[i] for i in notification.item_ids if i in items]
    if notification.item_count == 1 and listed:
        return f"{subject}: {_item_line(listed[0])}"
    lines = [f"{subject}: {notification.item_count} items in {notification.queue.name}"]
    lines += [f"  {_item_line(item)}" for item in listed]
    more = notification.item_count - len(listed)
    if more > 0:
        list_url = _console_url(reverse("console:items")) + f"?queue={notification.queue_id}"
        if notification.kind != NotificationKind.REMINDER:
            list_url += "&breached=true"
        lines.append(f"  … and {more} more: {list_url}")
    return "\n".join(lines)


def _item_line(item: ExceptionItem) -> str:
    url = _console_url(reverse("console:item", args=[item.pk]))
    return (
        f"#{item.pk} {item.get_reason_display()} on lead {item.lead.lead_id} "
        f"in {item.queue.name} (ack due {item.ack_due_at:%Y-%m-%d %H:%M} UTC, "
        f"resolve due {item.resolve_due_at:%Y-%m-%d %H:%M} UTC) {url}"
    )
