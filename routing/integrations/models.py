"""The hops around routing: delivery targets and their outbox of events, with a receipt per attempt.

An event is written in the same transaction as the change that caused it (outbox), then sent by a Celery
task; pending events are also swept by beat, so a lost publish delays an event but never loses it."""

import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from audit.history import history_person
from routing.integrations.sealed import SealedTextField

# Never copied into the history tables: secrets (a restore leaves the current ones in place) and the state
# the circuit breaker and secret rotation keep, which is not configuration.
PROVIDER_UNHISTORIED_FIELDS = ["auth_value", "failures_in_a_row", "down_until"]
TARGET_UNHISTORIED_FIELDS = ["secret", "previous_secret", "previous_secret_until"]


class EnrichmentProvider(models.Model):
    """An HTTP endpoint that fills in what capture systems leave out (company size, country, …). The first
    active one is used; with none, enrichment is skipped."""

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField(max_length=500)
    auth_header = models.CharField(
        max_length=100, blank=True, default="Authorization", help_text="Header that carries the credential."
    )
    # Encrypted at rest; the admin sets or replaces it and never shows it (finding 7).
    auth_value = SealedTextField(blank=True, help_text="e.g. 'Bearer sk_live_…'.")
    timeout_seconds = models.FloatField(default=3.0)
    max_attempts = models.PositiveIntegerField(default=4, help_text="Attempts before the lead routes without it.")
    is_active = models.BooleanField(default=True)
    # The circuit breaker (enrichment.py): failed attempts in a row, and while the provider counts as down,
    # leads route at once without asking it.
    failures_in_a_row = models.PositiveIntegerField(default=0, db_default=0, editable=False)
    down_until = models.DateTimeField(null=True, blank=True, editable=False)
    history = HistoricalRecords(get_user=history_person, excluded_fields=PROVIDER_UNHISTORIED_FIELDS)

    def __str__(self):
        return self.name


class EnrichmentStatus(models.TextChoices):
    ENRICHED = "enriched", "Enriched"
    FAILED = "failed", "Enrichment failed"
    INVALID = "invalid", "Provider answered invalid values"


class EnrichmentOutcome(models.TextChoices):
    OK = "ok", "Answered"
    INVALID = "invalid", "Answered invalid values"
    FAILED = "failed", "Failed (error, timeout or refused)"


class EnrichmentReceipt(models.Model):
    """One call to an enrichment provider: what it answered, how long it took, which fields it filled and
    which it got wrong. Success rate and latency per provider are read from these."""

    provider = models.ForeignKey(EnrichmentProvider, on_delete=models.CASCADE, related_name="receipts")
    lead = models.ForeignKey("routing.Lead", on_delete=models.CASCADE, related_name="enrichment_receipts")
    at = models.DateTimeField()
    attempt = models.PositiveIntegerField()
    outcome = models.CharField(max_length=8, choices=EnrichmentOutcome.choices)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField()
    fields_filled = models.JSONField(default=list)
    invalid = models.JSONField(default=dict, help_text="Field → what was wrong with the provider's value.")
    error = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["provider", "at"], name="enrichment_receipt_at_idx")]

    def __str__(self):
        return f"{self.provider} for lead {self.lead_id}: {self.outcome}"


class EventType(models.TextChoices):
    LEAD_ASSIGNED = "lead.assigned", "Lead assigned"
    LEAD_REASSIGNED = "lead.reassigned", "Lead reassigned"
    EXCEPTION_RESOLVED = "exception.resolved", "Exception resolved"


class SignatureScheme(models.TextChoices):
    """How a target's deliveries are signed and headed (routing/integrations/signing.py)."""

    STANDARD = "standard", "Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature)"
    LEGACY = "legacy", "Legacy (X-Handoff-Signature, X-Handoff-Timestamp, X-Handoff-Event, Idempotency-Key)"
    BOTH = "both", "Both (while a receiver moves from legacy to Standard Webhooks)"


class DeliveryTarget(models.Model):
    """An execution system (CRM, engagement tool, analytics) that receives signed JSON events."""

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField(max_length=500)
    # Encrypted at rest; the admin sets, generates or replaces it and shows a new one once (finding 7).
    secret = SealedTextField(help_text="Shared signing secret, whsec_<base64>; the receiver verifies with it.")
    # Targets that existed before Standard Webhooks keep the legacy headers (migration 0026).
    signature_scheme = models.CharField(
        max_length=16,
        choices=SignatureScheme.choices,
        default=SignatureScheme.STANDARD,
        db_default=SignatureScheme.STANDARD,  # also for rows written with SQL or by older code
    )
    # The secret before the last replacement keeps signing alongside the new one until `previous_secret_until`
    # (standard scheme: two signatures), so a receiver can switch secrets without refusing deliveries.
    previous_secret = SealedTextField(blank=True, editable=False, db_default="")
    previous_secret_until = models.DateTimeField(null=True, blank=True, editable=False)
    events = models.JSONField(default=list, help_text=f"Event types it receives: {', '.join(EventType.values)}.")
    is_active = models.BooleanField(default=True)
    max_attempts = models.PositiveIntegerField(default=8, help_text="Attempts before the event is dead-lettered.")
    timeout_seconds = models.FloatField(default=10.0)
    # Handoff confirmation (routing/integrations/handoff.py): a 2xx is the receipt, unless the receiver works
    # asynchronously and confirms each event itself (POST /api/v1/deliveries/{id}/ack/, signed with its secret).
    confirms_by_callback = models.BooleanField(
        default=False, db_default=False, help_text="The receiver confirms each event by calling back."
    )
    confirm_within_minutes = models.PositiveIntegerField(
        default=15, db_default=15, help_text="After this long unconfirmed, the handoff opens handoff_unconfirmed."
    )
    history = HistoricalRecords(get_user=history_person, excluded_fields=TARGET_UNHISTORIED_FIELDS)

    def __str__(self):
        return self.name

    def signing_secrets(self, at) -> list[str]:
        """The secrets a standard signature is made with at `at`: the current one, then the previous one while
        its overlap lasts."""
        if self.previous_secret and self.previous_secret_until and at < self.previous_secret_until:
            return [self.secret, self.previous_secret]
        return [self.secret]

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
    # Sent as webhook-id (legacy: Idempotency-Key): the same on every attempt and replay, so a receiver can drop
    # repeats.
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=OutboxStatus.choices, default=OutboxStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    dead_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    replays = models.PositiveIntegerField(default=0, help_text="Times a person sent it back from the dead letters.")
    # The receiver's confirmation: at delivery (a 2xx) or, for a callback target, when it called back.
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirmation = models.JSONField(
        default=dict, db_default={}, blank=True, help_text="The receipt: status code or callback body."
    )
    unconfirmed_at = models.DateTimeField(null=True, blank=True, help_text="When handoff_unconfirmed was opened.")

    class Meta:
        indexes = [
            # deliveries_due: pending events whose next attempt has come, oldest first.
            models.Index(
                fields=["next_attempt_at"], condition=Q(status=OutboxStatus.PENDING), name="outbox_pending_due_idx"
            ),
            # The dead-letter screen: dead events by target, newest first.
            models.Index(fields=["target", "dead_at"], condition=Q(status=OutboxStatus.DEAD), name="outbox_dead_idx"),
            # The unconfirmed-handoff sweep: events not confirmed and not flagged yet (a few in a healthy outbox).
            models.Index(
                fields=["created_at"],
                condition=Q(
                    confirmed_at__isnull=True,
                    unconfirmed_at__isnull=True,
                    status__in=[OutboxStatus.PENDING, OutboxStatus.DELIVERED],
                ),
                name="outbox_unconfirmed_idx",
            ),
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
        # /metrics counts the attempts since the last settled hour by `at` (built concurrently: migration 0010).
        indexes = [models.Index(fields=["at"], name="delivery_attempt_at_idx")]

    def __str__(self):
        return f"attempt {self.number} of event {self.event_id}: {self.status_code or self.error}"
