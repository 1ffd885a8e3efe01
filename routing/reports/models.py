"""Stored reports: reconciliations (daily parity, CRM attribution) with the incidents they open, and the
daily anomaly report (yesterday against the trailing 14 days)."""

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class ReportKind(models.TextChoices):
    PARITY = "parity", "Daily parity"
    ATTRIBUTION = "attribution", "Attribution (CRM export)"


class ReportManager(models.Manager):
    def get_queryset(self):
        # A kept CRM export is up to HANDOFF["ATTRIBUTION_MAX_BYTES"]: never read unless asked for by name
        # (routing.reports.attribution reads it with values_list).
        return super().get_queryset().defer("crm_export")


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
    crm_export = models.BinaryField(
        null=True,
        editable=False,
        help_text="Attribution: the uploaded CRM export, kept on the latest upload only (the next one clears it), "
        "so that Run now reconciles it again without it being uploaded again.",
    )

    objects = ReportManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["kind", "created_at"], name="report_kind_created_idx")]
        base_manager_name = "objects"

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
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Who answers for it, its postmortem included (acknowledging it makes the acknowledger owner).",
    )
    # Decided when it resolves (routing.reports.incidents): its report's worst discrepancy share, and whether that
    # reached HANDOFF_POSTMORTEM_THRESHOLD (exceptions.postmortems, as for the exception queues' incidents).
    # Resolving is never blocked; it is "postmortem due" until one is written, overdue after postmortem_due_at.
    affected_share = models.FloatField(null=True, blank=True, help_text="The report's variance: 0.05 = 5%.")
    postmortem_required = models.BooleanField(default=False, db_default=False)
    postmortem_due_at = models.DateTimeField(null=True, blank=True)
    postmortem = models.TextField(blank=True, default="", db_default="")
    postmortem_written_at = models.DateTimeField(null=True, blank=True)
    postmortem_written_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-opened_at", "-id"]
        indexes = [
            # The reconciliation page's "postmortem due" section and the root-cause report: required, not written.
            models.Index(
                fields=["postmortem_due_at"],
                condition=models.Q(postmortem_required=True, postmortem_written_at__isnull=True),
                name="recon_postmortem_due_idx",
            ),
        ]

    def __str__(self):
        return self.title

    @property
    def postmortem_due(self) -> bool:
        """Resolved, large enough to need a postmortem, and none written yet."""
        return self.postmortem_required and self.postmortem_written_at is None


class AnomalyReport(models.Model):
    day = models.DateField(unique=True, help_text="The UTC day examined (yesterday, when beat runs it).")
    created_at = models.DateTimeField()
    data = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    flagged = models.PositiveIntegerField(default=0, help_text="How many measures moved beyond the band.")

    class Meta:
        ordering = ["-day"]

    def __str__(self):
        return f"Anomaly report {self.day:%Y-%m-%d} ({self.flagged} flagged)"
