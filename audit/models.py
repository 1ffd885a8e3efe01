"""The audit trail: append-only events for every routing decision and every human action."""

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class AuditAction(models.TextChoices):
    ROUTING_DECISION = "routing.decision", "Routing decision"
    EXCEPTION_OPENED = "exception.opened", "Exception opened"
    EXCEPTION_ACKNOWLEDGED = "exception.acknowledged", "Exception acknowledged"
    EXCEPTION_ASSIGNED = "exception.assigned", "Exception assigned"
    EXCEPTION_RESOLVED = "exception.resolved", "Exception resolved"
    EXCEPTION_REOPENED = "exception.reopened", "Exception reopened"
    EXCEPTION_WAITING = "exception.waiting", "Exception set to waiting"
    EXCEPTION_RESUMED = "exception.resumed", "Exception resumed"
    EXCEPTION_ESCALATED = "exception.escalated", "Exception escalated"
    EXCEPTION_REASSIGNED = "exception.reassigned", "Exception reassigned by the SLA sweep"
    LEAD_EDITED = "lead.edited", "Lead data edited"
    LEAD_REROUTED = "lead.rerouted", "Lead re-routed"
    LEAD_OVERRIDE = "lead.override", "Lead assigned manually (override)"
    RULE_SAVED = "rule.saved", "Rule draft saved"
    RULE_PROMOTED = "rule.promoted", "Rule promoted"
    RULE_ROLLED_BACK = "rule.rolled_back", "Rule rolled back"
    RULE_FORCED = "rule.forced", "Rule forced into production"
    RULE_SIGNED_OFF = "rule.signed_off", "Rule signed off"
    RULES_REPLAYED = "rules.replayed", "Rules replayed"
    DELIVERY_DEAD_LETTERED = "delivery.dead_lettered", "Delivery dead-lettered"
    DELIVERY_REPLAYED = "delivery.replayed", "Dead letter replayed"
    INCIDENT_ACKNOWLEDGED = "incident.acknowledged", "Incident acknowledged"
    INCIDENT_RESOLVED = "incident.resolved", "Incident resolved"
    RULES_IMPORTED = "rules.imported", "Rules imported"
    SOURCE_CREATED = "source.created", "Capture source created"
    ACCOUNT_SAVED = "account.saved", "Account saved"
    ACCOUNT_DELETED = "account.deleted", "Account deleted"
    ACCOUNTS_IMPORTED = "accounts.imported", "Accounts imported"
    REPORT_RUN = "report.run", "Report run by hand"
    ITEM_INCIDENT_OPENED = "item_incident.opened", "Incident opened (items of one cause)"
    ITEM_INCIDENT_ACKNOWLEDGED = "item_incident.acknowledged", "Incident acknowledged (items of one cause)"
    ITEM_INCIDENT_ASSIGNED = "item_incident.assigned", "Incident assigned (items of one cause)"
    ITEM_INCIDENT_ESCALATED = "item_incident.escalated", "Incident escalated (items of one cause)"
    ITEM_INCIDENT_RESOLVED = "item_incident.resolved", "Incident resolved (items of one cause)"
    LEAD_CREDITED_BACK = "lead.credited_back", "Turn credited back (a lead was taken from its assignee)"
    AVAILABILITY_CHANGED = "availability.changed", "Working hours or time off changed"
    INTAKE_REPLAYED = "intake.replayed", "Rejected post fixed and replayed"
    INTAKE_DISMISSED = "intake.dismissed", "Rejected post dismissed"
    SCHEMA_VERSION_REGISTERED = "schema.registered", "Capture schema version registered"
    HANDOFF_CONFIRMED = "handoff.confirmed", "Handoff confirmed by every target"
    PERSON_ERASED = "person.erased", "Person's personal data erased"
    PLAYBOOK_SAVED = "playbook.saved", "Playbook saved"
    INCIDENT_POSTMORTEM = "incident.postmortem", "Incident postmortem written"
    CONFIG_CHANGED = "config.changed", "Integration or queue settings changed"
    CONFIG_RESTORED = "config.restored", "Integration or queue settings restored"
    EXPERIMENT_STARTED = "experiment.started", "Experiment started"
    EXPERIMENT_ENDED = "experiment.ended", "Experiment ended"
    EXPERIMENT_DECIDED = "experiment.decided", "Experiment decided (candidate promoted or production kept)"


class AppendOnlyError(Exception):
    pass


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("Audit events are append-only.")

    def delete(self):
        raise AppendOnlyError("Audit events are append-only.")


class AuditEvent(models.Model):
    """One thing that happened. On PostgreSQL a trigger also refuses UPDATE and DELETE (migration 0002)."""

    ENGINE = "engine"

    action = models.CharField(max_length=40, choices=AuditAction.choices)
    occurred_at = models.DateTimeField(db_index=True)
    # Who decided or acted: a person, or nobody (the engine or the system).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=150, help_text="'engine', or the person's username.")
    lead = models.ForeignKey(
        "routing.Lead", null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    exception = models.ForeignKey(
        "exceptions.ExceptionItem", null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    incident = models.ForeignKey(
        "exceptions.ExceptionIncident", null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    rule = models.ForeignKey("routing.Rule", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    rule_version = models.PositiveIntegerField(null=True, blank=True)
    rule_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    inputs = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder, help_text="What the decision read.")
    outcome = models.CharField(max_length=64, blank=True)
    data = models.JSONField(
        default=dict, blank=True, encoder=DjangoJSONEncoder, help_text="Details: target, before/after, reasons."
    )

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["occurred_at", "id"]
        indexes = [models.Index(fields=["lead", "action"], name="audit_lead_action_idx")]

    def __str__(self):
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.action} by {self.actor_label}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise AppendOnlyError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Audit events are append-only.")


class Override(models.Model):
    """A person assigned a lead by hand: counted against the rule (and version) that had decided."""

    lead = models.ForeignKey("routing.Lead", on_delete=models.PROTECT, related_name="overrides")
    rule = models.ForeignKey("routing.Rule", null=True, blank=True, on_delete=models.PROTECT, related_name="overrides")
    rule_version = models.PositiveIntegerField(null=True, blank=True)
    from_queue = models.ForeignKey("routing.Queue", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    from_assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_queue = models.ForeignKey("routing.Queue", on_delete=models.PROTECT, related_name="+")
    to_assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="overrides_made")
    at = models.DateTimeField(db_index=True)
    reason = models.TextField()

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["rule", "at"], name="override_rule_at_idx")]

    def __str__(self):
        return f"Override of {self.lead} by {self.by} at {self.at:%Y-%m-%d %H:%M}"
