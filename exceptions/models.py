"""Exception items: what automation could not settle, waiting for a person under ack/resolve SLAs."""

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q


class ExceptionReason(models.TextChoices):
    MISSING_CONTACT = "missing_contact", "Missing contact info"
    NO_MATCHING_RULE = "no_matching_rule", "No matching rule"
    NO_ELIGIBLE_ASSIGNEE = "no_eligible_assignee", "No eligible assignee"
    ROUTING_FAILED = "routing_failed", "Routing failed"
    ENRICHMENT_FAILED = "enrichment_failed", "Enrichment failed"
    DELIVERY_FAILED = "delivery_failed", "Delivery failed"


class ExceptionStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    WAITING = "waiting", "Waiting"
    RESOLVED = "resolved", "Resolved"


class Resolution(models.TextChoices):
    REROUTED = "rerouted", "Re-routed"
    FIXED_DATA = "fixed_data", "Fixed data"
    DUPLICATE = "duplicate", "Duplicate"
    SPAM = "spam", "Spam"
    NOT_A_LEAD = "not_a_lead", "Not a lead"


UNRESOLVED_STATUSES = (ExceptionStatus.OPEN, ExceptionStatus.ACKNOWLEDGED, ExceptionStatus.WAITING)
UNRESOLVED = Q(status__in=UNRESOLVED_STATUSES)


class ExceptionItem(models.Model):
    lead = models.ForeignKey("routing.Lead", on_delete=models.PROTECT, related_name="exceptions")
    reason = models.CharField(max_length=32, choices=ExceptionReason.choices)
    detail = models.TextField(blank=True, help_text="What went wrong, in words an operator can act on.")
    queue = models.ForeignKey("routing.Queue", on_delete=models.PROTECT, related_name="exception_items")
    status = models.CharField(max_length=16, choices=ExceptionStatus.choices, default=ExceptionStatus.OPEN)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="assigned_exceptions"
    )
    opened_at = models.DateTimeField()
    ack_due_at = models.DateTimeField()
    resolve_due_at = models.DateTimeField()
    # The clock that runs now: ack_due_at while open, resolve_due_at once acknowledged; NULL while
    # waiting or resolved. Kept by the services so lists sort by it through an index.
    due_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolution = models.CharField(max_length=16, choices=Resolution.choices, blank=True)
    resolution_note = models.TextField(blank=True)
    # Waiting pauses the resolve clock: the open time left is kept and a new due time is set on resume.
    waiting_since = models.DateTimeField(null=True, blank=True)
    resolve_remaining_seconds = models.IntegerField(null=True, blank=True)
    # Set once by the sweep; cleared when a clock restarts (reopen).
    ack_breached_at = models.DateTimeField(null=True, blank=True)
    resolve_breached_at = models.DateTimeField(null=True, blank=True)
    ack_reminded_at = models.DateTimeField(null=True, blank=True)
    resolve_reminded_at = models.DateTimeField(null=True, blank=True)
    escalation_level = models.PositiveSmallIntegerField(default=0)
    escalated_at = models.DateTimeField(null=True, blank=True)
    # Bumped by every change a person makes; forms carry it so a stale edit is refused, not applied.
    version = models.PositiveIntegerField(default=1)
    # The same person's later leads that came in for the same cause while this item was open: they wait on it
    # (no second item) and follow its resolution (routing.accounts.identity, exceptions.services).
    held_leads = models.ManyToManyField("routing.Lead", blank=True, related_name="held_by_items")

    class Meta:
        constraints = [
            # One unresolved exception per lead and reason: a redelivered routing task cannot open a second.
            models.UniqueConstraint(
                fields=["lead", "reason"], condition=UNRESOLVED, name="exception_one_unresolved_per_lead_reason"
            ),
        ]
        indexes = [
            # Breach sweep and reminders: open items by acknowledge due time.
            models.Index(fields=["ack_due_at"], condition=Q(status="open"), name="exception_open_ack_due_idx"),
            # Breach sweep and reminders: items whose resolve clock runs (not waiting), by resolve due time.
            models.Index(
                fields=["resolve_due_at"],
                condition=Q(status__in=["open", "acknowledged"]),
                name="exception_running_resolve_idx",
            ),
            # Item list (default sort): unresolved items by the due time that runs, per queue and overall.
            models.Index(fields=["queue", "due_at", "id"], condition=UNRESOLVED, name="exception_queue_due_idx"),
            models.Index(fields=["due_at", "id"], condition=UNRESOLVED, name="exception_due_idx"),
            # Escalation level 2: breached items escalated once, by when.
            models.Index(fields=["escalated_at"], condition=Q(escalation_level=1), name="exception_level1_idx"),
        ]

    def __str__(self):
        return f"{self.get_reason_display()} on {self.lead}"

    @property
    def is_breached(self) -> bool:
        return self.ack_breached_at is not None or self.resolve_breached_at is not None


class SlaClock(models.TextChoices):
    ACKNOWLEDGE = "ack", "Acknowledge"
    RESOLVE = "resolve", "Resolve"


class SlaEventKind(models.TextChoices):
    STARTED = "started", "Started"
    PAUSED = "paused", "Paused"
    RESUMED = "resumed", "Resumed"
    FULFILLED = "fulfilled", "Fulfilled"
    BREACHED = "breached", "Breached"
    ESCALATED = "escalated", "Escalated"
    REMINDED = "reminded", "Reminded"
    REASSIGNED = "reassigned", "Reassigned"


class SlaEvent(models.Model):
    """How an item's clocks moved, one row per change, for audit and SLA reports."""

    item = models.ForeignKey(ExceptionItem, on_delete=models.CASCADE, related_name="sla_events")
    clock = models.CharField(max_length=8, choices=SlaClock.choices)
    kind = models.CharField(max_length=12, choices=SlaEventKind.choices)
    at = models.DateTimeField()
    data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["item", "at"], name="sla_event_item_at_idx")]

    def __str__(self):
        return f"{self.clock} {self.kind} at {self.at:%Y-%m-%d %H:%M}"


class NotificationKind(models.TextChoices):
    REMINDER = "reminder", "Reminder"
    ESCALATION_1 = "escalation_1", "Escalation level 1"
    ESCALATION_2 = "escalation_2", "Escalation level 2"
    REASSIGNED = "reassigned", "Reassigned"


class Notification(models.Model):
    """A message about an item to a person, by email and in the console; `key` makes each one unique."""

    item = models.ForeignKey(ExceptionItem, on_delete=models.CASCADE, related_name="notifications")
    key = models.CharField(max_length=64, help_text="What this is about, e.g. escalation_1:ack; sent once per item.")
    kind = models.CharField(max_length=16, choices=NotificationKind.choices)
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )
    created_at = models.DateTimeField()
    deliver_after = models.DateTimeField(help_text="Held until the queue's business hours open.")
    sent_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["item", "key"], name="notification_once_per_item_key")]
        indexes = [
            # send_due_notifications: unsent notifications by delivery time.
            models.Index(
                fields=["deliver_after", "id"], condition=Q(sent_at__isnull=True), name="notification_unsent_idx"
            ),
            models.Index(fields=["recipient", "read_at"], name="notification_recipient_idx"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} about item {self.item_id}"
