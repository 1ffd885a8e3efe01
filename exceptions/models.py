"""Exception items: what automation could not settle, waiting for a person under ack/resolve SLAs."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from audit.history import history_person


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


UNRESOLVED = Q(status__in=[ExceptionStatus.OPEN, ExceptionStatus.ACKNOWLEDGED, ExceptionStatus.WAITING])


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
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords(get_user=history_person)

    class Meta:
        constraints = [
            # One unresolved exception per lead and reason: a redelivered routing task cannot open a second.
            models.UniqueConstraint(
                fields=["lead", "reason"], condition=UNRESOLVED, name="exception_one_unresolved_per_lead_reason"
            ),
        ]
        indexes = [
            # Breach sweep: open items by acknowledge due time.
            models.Index(fields=["ack_due_at"], condition=Q(status="open"), name="exception_open_ack_due_idx"),
            models.Index(fields=["queue", "status"], name="exception_queue_status_idx"),
        ]

    def __str__(self):
        return f"{self.get_reason_display()} on {self.lead}"
