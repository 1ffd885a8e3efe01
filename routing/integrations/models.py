"""The hops around routing: delivery targets and their outbox of events, with a receipt per attempt.

An event is written in the same transaction as the change that caused it (outbox), then sent by a Celery
task; pending events are also swept by beat, so a lost publish delays an event but never loses it."""

import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q


class EnrichmentProvider(models.Model):
    """An HTTP endpoint that fills in what capture systems leave out (company size, country, …). The first
    active one is used; with none, enrichment is skipped."""

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField(max_length=500)
    auth_header = models.CharField(
        max_length=100, blank=True, default="Authorization", help_text="Header that carries the credential."
    )
    auth_value = models.CharField(max_length=500, blank=True, help_text="e.g. 'Bearer sk_live_…'.")
    timeout_seconds = models.FloatField(default=3.0)
    max_attempts = models.PositiveIntegerField(default=4, help_text="Attempts before the lead routes without it.")
    is_active = models.BooleanField(default=True)

    def __str__(self):
        return self.name


class EnrichmentStatus(models.TextChoices):
    ENRICHED = "enriched", "Enriched"
    FAILED = "failed", "Enrichment failed"


class EventType(models.TextChoices):
    LEAD_ASSIGNED = "lead.assigned", "Lead assigned"
    LEAD_REASSIGNED = "lead.reassigned", "Lead reassigned"
    EXCEPTION_RESOLVED = "exception.resolved", "Exception resolved"


class DeliveryTarget(models.Model):
    """An execution system (CRM, engagement tool, analytics) that receives signed JSON events."""

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField(max_length=500)
    secret = models.CharField(
        max_length=200, help_text="Shared secret for the X-Handoff-Signature HMAC; the receiver verifies with it."
    )
    events = models.JSONField(default=list, help_text=f"Event types it receives: {', '.join(EventType.values)}.")
    is_active = models.BooleanField(default=True)
    max_attempts = models.PositiveIntegerField(default=8, help_text="Attempts before the event is dead-lettered.")
    timeout_seconds = models.FloatField(default=10.0)

    def __str__(self):
        return self.name

    def clean(self):
        from django.core.exceptions import ValidationError

        unknown = set(self.events) - set(EventType.values) if isinstance(self.events, list) else {"(not a list)"}
        if unknown:
            raise ValidationError({"events": f"Unknown event types {sorted(unknown)}; use {EventType.values}."})


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    DEAD = "dead", "Dead-lettered"


class OutboxEvent(models.Model):
    target = models.ForeignKey(DeliveryTarget, on_delete=models.PROTECT, related_name="events_out")
    event_type = models.CharField(max_length=32, choices=EventType.choices)
    lead = models.ForeignKey("routing.Lead", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    # Sent as Idempotency-Key: the same on every attempt and replay, so a receiver can drop repeats.
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=OutboxStatus.choices, default=OutboxStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    dead_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    replays = models.PositiveIntegerField(default=0, help_text="Times a person sent it back from the dead letters.")

    class Meta:
        indexes = [
            # deliveries_due: pending events whose next attempt has come, oldest first.
            models.Index(
                fields=["next_attempt_at"], condition=Q(status=OutboxStatus.PENDING), name="outbox_pending_due_idx"
            ),
            # The dead-letter screen: dead events by target, newest first.
            models.Index(fields=["target", "dead_at"], condition=Q(status=OutboxStatus.DEAD), name="outbox_dead_idx"),
        ]

    def __str__(self):
        return f"{self.event_type} → {self.target} ({self.status})"


class DeliveryAttempt(models.Model):
    """The receipt of one attempt: what the target answered (or why nothing came back), and how fast."""

    event = models.ForeignKey(OutboxEvent, on_delete=models.CASCADE, related_name="receipts")
    number = models.PositiveIntegerField()
    at = models.DateTimeField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField()
    error = models.TextField(blank=True)
    retry_after_seconds = models.PositiveIntegerField(null=True, blank=True)
    replay = models.BooleanField(default=False, help_text="Made after a person replayed the dead letter.")

    class Meta:
        ordering = ["event", "number"]
        constraints = [models.UniqueConstraint(fields=["event", "number"], name="delivery_attempt_unique_number")]

    def __str__(self):
        return f"attempt {self.number} of event {self.event_id}: {self.status_code or self.error}"


class ReportKind(models.TextChoices):
    PARITY = "parity", "Daily parity"
    ATTRIBUTION = "attribution", "Attribution (CRM export)"


class ReconciliationReport(models.Model):
    """A stored reconciliation: the daily parity of captured, routed and delivered leads per origin, or a
    CRM attribution export compared with our assignments. Kept for the console and the weekly checklist."""

    kind = models.CharField(max_length=16, choices=ReportKind.choices)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="None: beat.",
    )
    source_name = models.CharField(max_length=255, blank=True, help_text="The uploaded file's name, if any.")
    data = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    variance = models.FloatField(default=0.0, help_text="The worst discrepancy found, as a share (0.02 = 2%).")
    flagged = models.BooleanField(default=False, help_text="A discrepancy above the configured threshold.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["kind", "created_at"], name="report_kind_created_idx")]

    def __str__(self):
        return f"{self.get_kind_display()} {self.period_start:%Y-%m-%d}"


class IncidentStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class Incident(models.Model):
    """A system-level problem no single lead owns (a parity gap between captured, routed and delivered):
    the system owner is notified, and someone acknowledges and resolves it in the console."""

    report = models.ForeignKey(ReconciliationReport, on_delete=models.PROTECT, related_name="incidents")
    title = models.CharField(max_length=300)
    detail = models.TextField()
    status = models.CharField(max_length=16, choices=IncidentStatus.choices, default=IncidentStatus.OPEN)
    opened_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]

    def __str__(self):
        return self.title
