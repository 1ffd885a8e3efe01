"""An experiment runs a rule's staging version on a deterministic share of the leads the rule concerns, and
production on the rest, until its end (a time, a lead count, or someone stopping it); then its owner decides:
promote the candidate or keep production. One runs at a time, so every enrolled lead differs from production
by one change only."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class ExperimentStatus(models.TextChoices):
    RUNNING = "running", "Running"
    ENDED = "ended", "Ended, awaiting a decision"
    PROMOTED = "promoted", "Candidate promoted"
    KEPT = "kept", "Production kept"


class ExperimentEnd(models.TextChoices):
    STOPPED = "stopped", "Stopped by a person"
    ENDS_AT = "ends_at", "Reached its end time"
    MAX_LEADS = "max_leads", "Reached its lead count"
    SUPERSEDED = "superseded", "The rule's staging or production version changed"


class Arm(models.TextChoices):
    PRODUCTION = "production", "Production"
    CANDIDATE = "candidate", "Candidate"


class Experiment(models.Model):
    rule = models.ForeignKey("routing.Rule", on_delete=models.PROTECT, related_name="experiments")
    # The staging version under test and the production version it is measured against (None: the rule has
    # no production version, so production routes such leads by the other rules).
    candidate = models.ForeignKey("routing.RuleVersion", on_delete=models.PROTECT, related_name="+")
    baseline = models.ForeignKey(
        "routing.RuleVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    percent = models.PositiveSmallIntegerField(help_text="Share of enrolled leads routed by the candidate, 1-99.")
    max_leads = models.PositiveIntegerField(null=True, blank=True, help_text="Ends once this many are enrolled.")
    ends_at = models.DateTimeField(null=True, blank=True)
    # Declared up front: {"route_latency": -50, "manual_touches": -70, "exception_rate": -20, "conversion": 10},
    # each the relative change (percent) of the candidate against production that counts as success.
    criteria = models.JSONField(default=dict, blank=True)
    # Hashed with each lead's origin and lead_id to pick its arm: stable for the lead, unrelated between experiments.
    seed = models.CharField(max_length=32)
    enrolled = models.PositiveIntegerField(default=0, db_default=0)
    status = models.CharField(
        max_length=16, choices=ExperimentStatus.choices, default=ExperimentStatus.RUNNING, db_default="running"
    )
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    end_reason = models.CharField(max_length=16, choices=ExperimentEnd.choices, blank=True, default="")
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decision_note = models.TextField(blank=True, default="")
    # The arms' figures and the criteria's verdicts when the decision was taken (also in the audit event).
    final_figures = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=Q(status="running"), name="experiment_one_running"),
            models.CheckConstraint(condition=Q(percent__gte=1, percent__lte=99), name="experiment_percent_range"),
        ]

    def __str__(self):
        return f"Experiment #{self.pk} on {self.rule_id}"


class ExperimentLead(models.Model):
    """A lead the experiment's rule concerned (production's or the candidate's decision was that rule), the arm
    that routed it, and when. A lead is in at most one experiment."""

    experiment = models.ForeignKey(Experiment, on_delete=models.PROTECT, related_name="leads")
    lead = models.OneToOneField("routing.Lead", on_delete=models.CASCADE, related_name="experiment_arm")
    arm = models.CharField(max_length=16, choices=Arm.choices)
    at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["experiment", "arm"], name="experiment_lead_arm_idx")]

    def __str__(self):
        return f"lead {self.lead_id} in experiment {self.experiment_id} ({self.arm})"
