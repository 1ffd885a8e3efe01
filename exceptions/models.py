"""Exception items: what automation could not settle, waiting for a person under ack/resolve SLAs."""

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q

from routing.integrations.sealed import SealedTextField
from routing.integrations.signing import secret_problem


class ExceptionReason(models.TextChoices):
    MISSING_CONTACT = "missing_contact", "Missing contact info"
    NO_MATCHING_RULE = "no_matching_rule", "No matching rule"
    NO_ELIGIBLE_ASSIGNEE = "no_eligible_assignee", "No eligible assignee"
    ROUTING_FAILED = "routing_failed", "Routing failed"
    ENRICHMENT_FAILED = "enrichment_failed", "Enrichment failed"
    DELIVERY_FAILED = "delivery_failed", "Delivery failed"
    # A lead still unassigned past its deciding rule's SLA, or past HANDOFF_ROUTING_SLO_MINUTES before any rule.
    ROUTING_SLA_BREACHED = "routing_sla_breached", "Routing SLA breached"
    # A provider answered values that fail intake's validation (routing/integrations/enrichment.py).
    ENRICHMENT_INVALID = "enrichment_invalid", "Enrichment answered invalid values"
    # A delivery target did not confirm a lead's handoff within its grace period (routing/integrations/handoff.py).
    HANDOFF_UNCONFIRMED = "handoff_unconfirmed", "Handoff unconfirmed"


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
    FIXED_UPSTREAM = "fixed_upstream", "Fixed upstream"  # the cause was outside (a CRM or vendor outage)


# Codes that say what the lead is rather than what was done: the note says why, for whoever reads it later.
NOTE_REQUIRED = (Resolution.DUPLICATE, Resolution.SPAM, Resolution.NOT_A_LEAD)
NOTE_REQUIRED_MESSAGE = (
    "Give a note: duplicate, spam and not a lead say why (which lead it repeats, what gave it away)."
)

UNRESOLVED_STATUSES = (ExceptionStatus.OPEN, ExceptionStatus.ACKNOWLEDGED, ExceptionStatus.WAITING)
UNRESOLVED = Q(status__in=UNRESOLVED_STATUSES)


class Clocked(models.Model):
    """What items and incidents share: who acknowledged and resolved them and how, their breach stamps (set once
    by the sweep or a late action), their escalation, and a version every change bumps (a stale edit is refused)."""

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
    ack_breached_at = models.DateTimeField(null=True, blank=True)
    resolve_breached_at = models.DateTimeField(null=True, blank=True)
    escalation_level = models.PositiveSmallIntegerField(default=0)
    escalated_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        abstract = True

    @property
    def is_breached(self) -> bool:
        return self.ack_breached_at is not None or self.resolve_breached_at is not None


class ExceptionIncident(Clocked):
    """Items that one cause produced (a CRM outage, an enrichment provider down, a burst of leads from one source
    that no rule matches), handled as one: one clock, one escalation and one notification stream, and resolving
    it resolves its items with its code and note (exceptions.incidents, exceptions.incident_actions). Its
    items keep their own clocks for the SLA reports, but the sweep leaves them to the incident."""

    cause = models.CharField(max_length=200, help_text="What the items share, e.g. delivery_failed:3:HTTP 5xx.")
    reason = models.CharField(max_length=32, choices=ExceptionReason.choices)
    title = models.CharField(max_length=300)
    queue = models.ForeignKey("routing.Queue", on_delete=models.PROTECT, related_name="incidents")
    status = models.CharField(max_length=16, choices=ExceptionStatus.choices, default=ExceptionStatus.OPEN)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="assigned_incidents"
    )
    opened_at = models.DateTimeField(help_text="When its first item opened: the clock starts there.")
    ack_due_at = models.DateTimeField()
    resolve_due_at = models.DateTimeField()
    # Decided when it resolves (exceptions.postmortems): its items' share of the leads captured on the UTC days
    # it spanned, and whether that reached HANDOFF_POSTMORTEM_THRESHOLD. A postmortem never blocks resolving
    # (restoring service comes first, as in PagerDuty and incident.io); the incident is "postmortem due" until
    # one is written, and overdue after postmortem_due_at.
    affected_share = models.FloatField(null=True, blank=True, help_text="0.05 = 5% of the period's leads.")
    postmortem_required = models.BooleanField(default=False, db_default=False)
    postmortem_due_at = models.DateTimeField(null=True, blank=True)
    postmortem = models.TextField(blank=True, default="", db_default="")
    postmortem_written_at = models.DateTimeField(null=True, blank=True)
    postmortem_written_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            # One unresolved incident per cause: items of the same cause join it, whoever opens them.
            models.UniqueConstraint(
                fields=["cause"], condition=~Q(status="resolved"), name="incident_one_unresolved_per_cause"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "opened_at"], name="incident_status_opened_idx"),
            # The incident list's "postmortem due" section and the root-cause report: required, not yet written.
            models.Index(
                fields=["postmortem_due_at"],
                condition=Q(postmortem_required=True, postmortem_written_at__isnull=True),
                name="incident_postmortem_due_idx",
            ),
        ]

    def __str__(self):
        return f"Incident #{self.pk}: {self.title}"

    @property
    def postmortem_due(self) -> bool:
        """Resolved, large enough to need a postmortem, and none written yet."""
        return self.postmortem_required and self.postmortem_written_at is None

    @property
    def owner(self):
        """The incident's owner (its lead, in incident.io's words) is whoever it is assigned to: assigning it
        assigns its items, and the owner answers for its postmortem."""
        return self.assignee

    @property
    def due_at(self):
        """The clock that runs: acknowledge while open, resolve once acknowledged; none once resolved."""
        if self.status == ExceptionStatus.OPEN:
            return self.ack_due_at
        if self.status == ExceptionStatus.ACKNOWLEDGED:
            return self.resolve_due_at
        return None


PLAYBOOK_MAX_CHARS = 4000  # a first responder's page: a few steps, not a manual


class Playbook(models.Model):
    """A first responder's steps for one exception reason, or for one reason in one queue (which then wins over
    the reason's). Versioned: every save writes a new row; the highest version of a (reason, queue) is current,
    and an empty body withdraws it (a queue's override withdrawn shows the reason's again)."""

    reason = models.CharField(max_length=32, choices=ExceptionReason.choices)
    queue = models.ForeignKey(
        "routing.Queue", null=True, blank=True, on_delete=models.CASCADE, related_name="playbooks"
    )
    body = models.TextField(blank=True, max_length=PLAYBOOK_MAX_CHARS)
    version = models.PositiveIntegerField()
    edited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    edited_at = models.DateTimeField()

    class Meta:
        ordering = ["reason", "queue_id", "-version"]
        constraints = [
            # Two admins saving at once: one gets the next version, the other is told (exceptions.playbooks).
            models.UniqueConstraint(
                fields=["reason", "queue", "version"], nulls_distinct=False, name="playbook_one_row_per_version"
            ),
        ]

    def __str__(self):
        where = f" in {self.queue}" if self.queue_id else ""
        return f"Playbook for {self.get_reason_display()}{where}, v{self.version}"


class ExceptionItem(Clocked):
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
    # Waiting pauses the resolve clock: the open time left is kept and a new due time is set on resume.
    waiting_since = models.DateTimeField(null=True, blank=True)
    resolve_remaining_seconds = models.IntegerField(null=True, blank=True)
    # Breach stamps (Clocked) are cleared when a clock restarts (reopen); so are the reminders.
    ack_reminded_at = models.DateTimeField(null=True, blank=True)
    resolve_reminded_at = models.DateTimeField(null=True, blank=True)
    # The same person's later leads that came in for the same cause while this item was open: they wait on it
    # (no second item) and follow its resolution (routing.accounts.identity, exceptions.services).
    held_leads = models.ManyToManyField("routing.Lead", blank=True, related_name="held_by_items")
    # What produced it, when one cause can produce many (exceptions.incidents.Cause); items of one cause
    # gather into an incident.
    cause = models.CharField(max_length=200, blank=True, default="", db_default="")
    incident = models.ForeignKey(
        ExceptionIncident, null=True, blank=True, on_delete=models.PROTECT, related_name="items"
    )
    # Why the last escalation reached nobody (a queue with no owner or escalation contact); "" once one lands.
    escalation_problem = models.CharField(max_length=200, blank=True, default="", db_default="")

    class Meta:
        constraints = [
            # One unresolved exception per lead and reason: a redelivered routing task cannot open a second.
            models.UniqueConstraint(
                fields=["lead", "reason"], condition=UNRESOLVED, name="exception_one_unresolved_per_lead_reason"
            ),
        ]
        indexes = [
            # Gathering into incidents: unresolved items of a cause that no incident holds yet, by age.
            models.Index(
                fields=["cause", "opened_at"],
                condition=UNRESOLVED & Q(incident__isnull=True) & ~Q(cause=""),
                name="exception_ungrouped_cause_idx",
            ),
            # Item list (default sort): unresolved items by the due time that runs, per queue and overall.
            models.Index(fields=["queue", "due_at", "id"], condition=UNRESOLVED, name="exception_queue_due_idx"),
            models.Index(fields=["due_at", "id"], condition=UNRESOLVED, name="exception_due_idx"),
            # Escalation level 2: breached items escalated once, by when.
            models.Index(fields=["escalated_at"], condition=Q(escalation_level=1), name="exception_level1_idx"),
            # The sweep's stamp statement (exceptions.sweep.STAMP_PICK_SQL), one queue at a time: open items whose
            # acknowledge clock has not been stamped breached, by due time (breaches and reminders) ...
            models.Index(
                fields=["queue", "ack_due_at"],
                condition=Q(status="open", ack_breached_at__isnull=True),
                name="exception_ack_unstamped_idx",
            ),
            # ... items whose resolve clock runs and has not been stamped breached, by due time ...
            models.Index(
                fields=["queue", "resolve_due_at"],
                condition=Q(status__in=["open", "acknowledged"], resolve_breached_at__isnull=True),
                name="exception_res_unstamped_idx",
            ),
            # ... and items breached (by a late action, or held for reassignment) but not escalated yet.
            models.Index(
                fields=["queue"],
                condition=Q(escalation_level=0)
                & (
                    Q(status="open", ack_breached_at__isnull=False)
                    | Q(status__in=["open", "acknowledged"], resolve_breached_at__isnull=False)
                ),
                name="exception_unescalated_idx",
            ),
        ]

    def __str__(self):
        return f"{self.get_reason_display()} on {self.lead}"


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
    UNREACHED = "unreached", "Escalation reached nobody"


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
    INCIDENT = "incident", "Incident opened"


class Notification(models.Model):
    """A message to a person (or, with no recipient, a queue's members), by email and in the console.

    The sweep groups its notifications: one per person, queue, kind and sweep, listing the items (`item_ids`,
    the first NOTIFICATION_LISTED_ITEMS of them; `item_count` says how many in all). `item` is set when the
    notification is about one item (a reassignment, or a sweep that found one). `key` makes each unique."""

    item = models.ForeignKey(
        ExceptionItem, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )
    queue = models.ForeignKey("routing.Queue", on_delete=models.CASCADE, related_name="notifications")
    incident = models.ForeignKey(
        ExceptionIncident, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )
    item_ids = models.JSONField(default=list, blank=True, help_text="The items listed (the first few of a group).")
    item_count = models.PositiveIntegerField(default=1, help_text="How many items this is about.")
    key = models.CharField(max_length=64, help_text="What this is about, e.g. escalation_1:<sweep>:<recipient>.")
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
        constraints = [
            models.UniqueConstraint(fields=["item", "key"], name="notification_once_per_item_key"),
            # A group about many items: once per queue and key (the key names the sweep and the recipient).
            models.UniqueConstraint(
                fields=["queue", "key"], condition=Q(item__isnull=True), name="notification_once_per_queue_key"
            ),
        ]
        indexes = [
            # send_due_notifications: unsent notifications by delivery time.
            models.Index(
                fields=["deliver_after", "id"], condition=Q(sent_at__isnull=True), name="notification_unsent_idx"
            ),
            models.Index(fields=["recipient", "read_at"], name="notification_recipient_idx"),
        ]

    def __str__(self):
        if self.item_id is not None:
            return f"{self.get_kind_display()} about item {self.item_id}"
        return f"{self.get_kind_display()} about {self.item_count} items"

    @property
    def more_items(self) -> int:
        """How many items the notification is about beyond those it lists."""
        return max(self.item_count - len(self.item_ids), 0)


NOTIFICATION_LISTED_ITEMS = 25  # a grouped notification lists this many items; the rest is a count


class SweepBatch(models.Model):
    """What one stamp statement of the SLA sweep stamped (item ids by breach, escalation and reminder),
    written in the same transaction as the stamps. The sweep's record step turns batches into SLA events
    and grouped notifications and deletes them in one transaction, so a crash between the two steps loses
    nothing: the next sweep records what is left."""

    at = models.DateTimeField(help_text="The sweep's instant, the value of the stamps.")
    queue = models.ForeignKey("routing.Queue", on_delete=models.CASCADE, related_name="+")
    stamps = models.JSONField(default=dict)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"sweep batch {self.pk} at {self.at:%Y-%m-%d %H:%M:%S}"


class SavedView(models.Model):
    """A person's named item-list filter (the list's query string), shown with its count on the list."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views")
    name = models.CharField(max_length=60)
    query = models.CharField(max_length=2000, blank=True, help_text="The item list's query string.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="saved_view_name_per_user")]

    def __str__(self):
        return self.name


class AlertChannelKind(models.TextChoices):
    PAGERDUTY = "pagerduty", "PagerDuty (Events API v2)"
    SLACK = "slack", "Slack (incoming webhook)"
    WEBHOOK = "webhook", "Signed webhook (a ticketing system)"


class AlertEvent(models.TextChoices):
    """What a channel can be told about: each opens an alert (a PagerDuty trigger, a Slack message, a webhook
    `alert.triggered`); acknowledging and resolving in Handoff follow up on the alerts that were opened."""

    ITEM_OPENED = "item.opened", "Item opened"
    ITEM_BREACHED = "item.breached", "Item breached its SLA"
    INCIDENT_OPENED = "incident.opened", "Incident opened"


class AlertSeverity(models.IntegerChoices):
    """PagerDuty's severities, in order; a channel sends alerts at or above its minimum."""

    INFO = 1, "info"
    WARNING = 2, "warning"
    ERROR = 3, "error"
    CRITICAL = 4, "critical"


class AlertChannel(models.Model):
    """Where a queue's exceptions are also raised: a PagerDuty service, a Slack channel, or a ticketing system
    (exceptions.alerts writes the messages, exceptions.alert_delivery sends them)."""

    queue = models.ForeignKey("routing.Queue", on_delete=models.CASCADE, related_name="alert_channels")
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=AlertChannelKind.choices)
    url = models.URLField(
        max_length=500,
        blank=True,
        help_text="Slack: the incoming webhook URL. Webhook: the receiver's URL. PagerDuty: leave empty for "
        "https://events.pagerduty.com/v2/enqueue.",
    )
    # Encrypted at rest (routing.integrations.sealed); the admin sets or replaces them and never shows them.
    routing_key = SealedTextField(blank=True, help_text="PagerDuty: the service integration's routing key.")
    secret = SealedTextField(
        blank=True,
        help_text="Webhook: the Standard Webhooks signing secret (whsec_…). PagerDuty: the signing secret of the v3 "
        "webhook subscription that calls /api/v1/integrations/pagerduty/ back.",
    )
    events = models.JSONField(default=list, help_text=f"What opens an alert: {', '.join(AlertEvent.values)}.")
    min_severity = models.PositiveSmallIntegerField(
        choices=AlertSeverity.choices,
        default=AlertSeverity.INFO,
        help_text="Alerts below this are not sent (item opened: warning; breached: error; incident: critical).",
    )
    is_active = models.BooleanField(default=True)
    max_attempts = models.PositiveIntegerField(default=8, help_text="Attempts before a message counts as failed.")
    timeout_seconds = models.FloatField(default=10.0)

    class Meta:
        ordering = ["queue", "name"]

    def __str__(self):
        return f"{self.name} ({self.get_kind_display()})"

    def clean(self):
        from django.core.exceptions import ValidationError

        unknown = set(self.events) - set(AlertEvent.values) if isinstance(self.events, list) else {"(not a list)"}
        problems = {}
        if unknown:
            problems["events"] = f"Unknown events {sorted(unknown)}; use {AlertEvent.values}."
        if self.kind == AlertChannelKind.PAGERDUTY and not self.routing_key:
            problems["routing_key"] = "PagerDuty needs the routing key of the service's Events API v2 integration."
        if self.kind in (AlertChannelKind.SLACK, AlertChannelKind.WEBHOOK) and not self.url:
            problems["url"] = "Give the URL to post to."
        if self.kind == AlertChannelKind.WEBHOOK and not self.secret:
            problems["secret"] = "A webhook is signed: give the secret the receiver verifies with."
        elif self.kind == AlertChannelKind.WEBHOOK and secret_problem(self.secret):
            problems["secret"] = secret_problem(self.secret)  # signed as Standard Webhooks: a whsec_ secret
        if problems:
            raise ValidationError(problems)


class AlertAction(models.TextChoices):
    TRIGGER = "trigger", "Trigger"
    ACKNOWLEDGE = "acknowledge", "Acknowledge"
    RESOLVE = "resolve", "Resolve"


class AlertMessageStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class AlertMessage(models.Model):
    """The outbox of alerting: one row per message to one channel, written in the transaction of the change it
    reports and sent by a Celery task on the deliveries lane. Messages of one alert (`dedup_key`) are sent in
    the order they were written: a resolve never overtakes its trigger."""

    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE, related_name="messages")
    dedup_key = models.CharField(max_length=64, help_text="handoff-exception-<id> or handoff-incident-<id>.")
    action = models.CharField(max_length=16, choices=AlertAction.choices)
    item = models.ForeignKey(ExceptionItem, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    incident = models.ForeignKey(ExceptionIncident, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    body = models.JSONField(encoder=DjangoJSONEncoder, help_text="What is sent (PagerDuty's routing key added then).")
    created_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=AlertMessageStatus.choices, default=AlertMessageStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # alerts_due: pending messages whose next attempt has come.
            models.Index(
                fields=["next_attempt_at"], condition=Q(status="pending"), name="alert_message_pending_due_idx"
            ),
            # Following up (acknowledge, resolve) the alerts a trigger opened; and the order within one alert.
            models.Index(fields=["dedup_key", "channel", "id"], name="alert_message_dedup_idx"),
        ]

    def __str__(self):
        return f"{self.action} {self.dedup_key} → {self.channel} ({self.status})"
