"""Notifications about exception items: recorded once per item and key, shown in the console, and sent
by email inside the queue's business hours (held until it opens, so nobody is paged at midnight for a
queue that works 9 to 5)."""

import datetime as dt
import logging
from collections import defaultdict

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from exceptions.models import ExceptionItem, Notification, NotificationKind
from exceptions.sla import next_open
from routing.models import Queue, QueueMembership

logger = logging.getLogger(__name__)

SUBJECTS = {
    NotificationKind.REMINDER: "Due soon",
    NotificationKind.ESCALATION_1: "SLA breached",
    NotificationKind.ESCALATION_2: "SLA breached, escalated",
    NotificationKind.REASSIGNED: "Assigned to you",
}


def notify(*, items, key, kind: str, recipient, now: dt.datetime) -> int:
    """Record one notification per item (a few items: reassignment), unless it already has that key.

    `key(item)` and `recipient(item)` are functions of the item (recipient None: the whole queue).
    Delivery is held until the item's queue is open."""
    rows = [
        Notification(
            item=item,
            key=key(item)[:64],
            kind=kind,
            recipient=recipient(item),
            created_at=now,
            deliver_after=next_open(now, item.queue.business_hours()),
        )
        for item in items
    ]
    return len(Notification.objects.bulk_create(rows, ignore_conflicts=True))


def notify_stamped(
    *, stamp: str, now: dt.datetime, kind: str, key_sql: str, recipient_sql: str, where: str = ""
) -> int:
    """Record a notification for every item this sweep stamped (`stamp` = now), set-based: one
    INSERT … SELECT per queue (each queue's business hours set its delivery time), duplicates skipped.

    `key_sql` and `recipient_sql` are SQL expressions over the item `i` and its queue `q`."""
    quote = connection.ops.quote_name
    table, items, queues = (quote(m._meta.db_table) for m in (Notification, ExceptionItem, Queue))
    created = 0
    queue_ids = ExceptionItem.objects.filter(**{stamp: now}).values_list("queue_id", flat=True).distinct()
    for queue in Queue.objects.filter(pk__in=list(queue_ids)):
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (item_id, {quote('key')}, kind, recipient_id, created_at, deliver_after) "
                f"SELECT i.id, {key_sql}, %s, {recipient_sql}, %s, %s "
                f"FROM {items} i JOIN {queues} q ON q.id = i.queue_id "
                f"WHERE i.{quote(stamp)} = %s AND i.queue_id = %s {where} "
                f"ON CONFLICT (item_id, {quote('key')}) DO NOTHING",
                [kind, *map(db_time, (now, next_open(now, queue.business_hours()), now)), queue.pk],
            )
            created += cursor.rowcount
    return created


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


def notifications_send_due(*, now: dt.datetime | None = None, limit: int = 1000) -> int:
    """Email what is due, one message per address listing its items; each notification is sent once."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            Notification.objects.filter(sent_at__isnull=True, deliver_after__lte=now)
            .order_by("deliver_after", "id")  # oldest first, along notification_unsent_idx
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("item__lead", "item__queue", "recipient")[:limit]
        )
        if not due:
            return 0
        by_address: dict[str, list[Notification]] = defaultdict(list)
        queues = _queue_addresses({n.item.queue_id for n in due if n.recipient is None})
        unreachable: list[int] = []
        for notification in due:
            if notification.recipient is not None:
                addresses = [notification.recipient.email] if notification.recipient.email else []
            else:  # addressed to the queue: its available members
                addresses = queues[notification.item.queue_id]
            if not addresses:
                logger.warning(
                    "Notification %s about item %s has nobody to email; it stays in the console only.",
                    notification.pk,
                    notification.item_id,
                )
            for address in addresses:
                by_address[address].append(notification)
        for address, notes in by_address.items():
            send_mail(
                subject=f"[Handoff] {len(notes)} exception item(s) need attention",
                message="\n".join(_line(n) for n in notes),
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=[address],
            )
        if unreachable:
            logger.warning(
                "%d notifications have nobody to email (items %s…); they stay in the console only.",
                len(unreachable),
                ", ".join(map(str, unreachable[:5])),
            )
        Notification.objects.filter(pk__in=[n.pk for n in due]).update(sent_at=now)
    return len(due)


def _line(notification: Notification) -> str:
    item = notification.item
    url = settings.HANDOFF["CONSOLE_URL"].rstrip("/") + reverse("console:item", args=[item.pk])
    return (
        f"{SUBJECTS[notification.kind]}: #{item.pk} {item.get_reason_display()} on lead {item.lead.lead_id} "
        f"in {item.queue.name} (ack due {item.ack_due_at:%Y-%m-%d %H:%M} UTC, "
        f"resolve due {item.resolve_due_at:%Y-%m-%d %H:%M} UTC) {url}"
    )
