"""Notifications about exception items: recorded once per item and key, shown in the console, and sent
by email inside the queue's business hours (held until it opens, so nobody is paged at midnight for a
queue that works 9 to 5)."""

import datetime as dt
from collections import defaultdict

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from exceptions.models import ExceptionItem, Notification, NotificationKind
from exceptions.sla import next_open

SUBJECTS = {
    NotificationKind.REMINDER: "Due soon",
    NotificationKind.ESCALATION_1: "SLA breached",
    NotificationKind.ESCALATION_2: "SLA breached, escalated",
    NotificationKind.REASSIGNED: "Assigned to you",
}


def notify(*, items, key, kind: str, recipient, now: dt.datetime) -> int:
    """Record one notification per item, unless the item already has one with that key.

    `key(item)` and `recipient(item)` are functions of the item (recipient None: the whole queue).
    Delivery is held until the item's queue is open; one INSERT per queue, duplicates skipped."""
    by_queue: dict[int, list[ExceptionItem]] = defaultdict(list)
    for item in items:
        by_queue[item.queue_id].append(item)
    created = 0
    for group in by_queue.values():
        deliver_after = next_open(now, group[0].queue.business_hours())
        rows = Notification.objects.bulk_create(
            [
                Notification(
                    item=item,
                    key=key(item)[:64],
                    kind=kind,
                    recipient=recipient(item),
                    created_at=now,
                    deliver_after=deliver_after,
                )
                for item in group
            ],
            ignore_conflicts=True,
        )
        created += len(rows)
    return created


def _addresses(notification: Notification) -> list[str]:
    if notification.recipient is not None:
        return [notification.recipient.email] if notification.recipient.email else []
    members = notification.item.queue.memberships.filter(is_available=True, user__is_active=True)
    return [m.user.email for m in members.select_related("user") if m.user.email]


def notifications_send_due(*, now: dt.datetime | None = None, limit: int = 1000) -> int:
    """Email what is due, one message per address listing its items; each notification is sent once."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            Notification.objects.filter(sent_at__isnull=True, deliver_after__lte=now)
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("item__lead", "item__queue", "recipient")[:limit]
        )
        if not due:
            return 0
        by_address: dict[str, list[Notification]] = defaultdict(list)
        for notification in due:
            for address in _addresses(notification):
                by_address[address].append(notification)
        for address, notes in by_address.items():
            send_mail(
                subject=f"[Handoff] {len(notes)} exception item(s) need attention",
                message="\n".join(_line(n) for n in notes),
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=[address],
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
