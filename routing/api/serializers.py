"""Output shapes of the lead API (input is validated by routing.intake.LeadIn)."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from audit.models import AuditAction
from routing.accounts.identity import person_leads
from routing.integrations.handoff import DeliveryState, lead_deliveries
from routing.models import Lead


def _warnings_field():
    return serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Fields outside the lead's capture schema version that its source keeps under attributes.",
    )


class AcceptedLeadSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    lead_id = serializers.CharField()
    status = serializers.CharField()
    url = serializers.URLField()
    schema_version = serializers.CharField(help_text="The capture schema version the lead was read as.")
    warnings = _warnings_field()


class BatchResultSerializer(serializers.Serializer):
    lead_id = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=["accepted", "duplicate", "invalid"])
    id = serializers.IntegerField(allow_null=True)
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), allow_null=True)
    schema_version = serializers.CharField(help_text="The capture schema version it was read as; '' if none.")
    warnings = _warnings_field()


class BatchResponseSerializer(serializers.Serializer):
    results = BatchResultSerializer(many=True)


class DecisionSerializer(serializers.Serializer):
    rule = serializers.CharField(source="rule.name", allow_null=True, default=None)
    rule_version = serializers.IntegerField(allow_null=True)
    outcome = serializers.CharField()
    decided_at = serializers.DateTimeField(source="occurred_at")
    decided_by = serializers.CharField(source="actor_label")
    queue = serializers.CharField(source="data.queue", allow_null=True, default=None)
    assignee = serializers.CharField(source="data.assignee", allow_null=True, default=None)
    assigned_by = serializers.CharField(
        source="data.assigned_by",
        allow_null=True,
        default=None,
        help_text="Who chose the assignee: account_owner, sticky (the person's owner), queue (its strategy), or"
        " held_item (the lead followed the same person's item: assigned with that item's lead).",
    )
    note = serializers.SerializerMethodField(help_text="Why, in words: the assignee's reason or the exception's.")

    def get_note(self, event) -> str:
        data = event.data or {}
        return data.get("assignee_note") or data.get("detail") or data.get("why") or ""


class LeadExceptionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reason = serializers.CharField()
    status = serializers.CharField()


class LeadAccountSerializer(serializers.Serializer):
    account_id = serializers.CharField(allow_null=True, help_text="The CRM's id; null when nothing matched.")
    name = serializers.CharField(allow_null=True)
    owner = serializers.CharField(allow_null=True)
    territory = serializers.CharField(allow_null=True)
    method = serializers.CharField(help_text="domain, name, close_name, phone, ambiguous or none")
    confidence = serializers.FloatField()
    why = serializers.CharField()


class SamePersonSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    lead_id = serializers.CharField()
    origin = serializers.CharField(source="origin.name")


class HeldBySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reason = serializers.CharField()
    status = serializers.CharField()
    lead = serializers.IntegerField(source="lead_id", help_text="The lead the item is about (the person's first).")


class LeadDeliverySerializer(serializers.Serializer):
    """One outbox event of the lead, as its target has it (routing/integrations/handoff.py)."""

    id = serializers.IntegerField(help_text="The delivery's id (a callback target confirms /deliveries/{id}/ack/).")
    target = serializers.CharField(source="target.name")
    event_type = serializers.CharField()
    state = serializers.ChoiceField(
        choices=DeliveryState.values,
        help_text="pending (not delivered yet), delivered (2xx; a callback target has not confirmed), confirmed, or"
        " dead (dead-lettered, or the receiver reported it failed).",
    )
    attempts = serializers.IntegerField()
    delivered_at = serializers.DateTimeField(allow_null=True)
    confirmed_at = serializers.DateTimeField(allow_null=True)
    receipt = serializers.DictField(
        help_text="The confirmation: the 2xx status code, or the receiver's callback (status, reference, message);"
        " the last error of a dead-lettered delivery; empty while unconfirmed."
    )


class LeadDetailSerializer(serializers.ModelSerializer):
    origin = serializers.CharField(source="origin.name")
    queue = serializers.CharField(source="queue.name", allow_null=True, default=None)
    assignee = serializers.CharField(source="assignee.username", allow_null=True, default=None)
    decisions = serializers.SerializerMethodField()
    exceptions = LeadExceptionSerializer(many=True)
    held_by = HeldBySerializer(
        source="held_by_items",
        many=True,
        help_text="The same person's open or resolved items this lead waited on instead of opening its own.",
    )
    account = serializers.SerializerMethodField()
    identity = serializers.SerializerMethodField()
    waiting_until = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="Held because everyone in its queue is away (the queue holds): routed at this time, when the"
        " first member's working hours start. Null unless held.",
    )
    handed_off_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="When every delivery target subscribed to its assignment confirmed it; null while any is pending.",
    )
    deliveries = serializers.SerializerMethodField()

    class Meta:
        model = Lead
        fields = [
            "id",
            "lead_id",
            "origin",
            "status",
            "queue",
            "assignee",
            "received_at",
            "assigned_at",
            "waiting_until",
            "decisions",
            "exceptions",
            "held_by",
            "account",
            "identity",
            "handed_off_at",
            "deliveries",
        ]

    @extend_schema_field(DecisionSerializer(many=True))
    def get_decisions(self, lead):
        """The rules' decisions, and what happened to the lead when it waited on the same person's item and
        followed that item's resolution (assigned with its lead, or released to route again)."""
        events = [
            e
            for e in lead.audit_events.all()
            if e.action == AuditAction.ROUTING_DECISION
            or (e.action == AuditAction.LEAD_REROUTED and "held_by_item" in (e.data or {}))
        ]
        return DecisionSerializer(events, many=True).data

    @extend_schema_field(LeadDeliverySerializer(many=True))
    def get_deliveries(self, lead):
        """Each event sent to a delivery target about the lead, with its state and receipt, oldest first."""
        events = getattr(lead, "delivery_list", None)
        return LeadDeliverySerializer(lead_deliveries(lead_id=lead.pk) if events is None else events, many=True).data

    @extend_schema_field(LeadAccountSerializer(allow_null=True))
    def get_account(self, lead):
        """The account matched before routing, as routing saw it (null before the lead was routed)."""
        match = getattr(lead, "account_match", None)
        if match is None:
            return None
        view = match.account_view or {}
        return {
            "account_id": view.get("id"),
            "name": view.get("name"),
            "owner": view.get("owner"),
            "territory": view.get("territory"),
            "method": match.method,
            "confidence": match.confidence,
            "why": match.why,
        }

    @extend_schema_field(SamePersonSerializer(many=True))
    def get_identity(self, lead):
        """The other leads of the same person (same normalised email, or a lead_id shared between sources);
        a capture source sees only its own."""
        others = person_leads(lead).select_related("origin")
        if self.context.get("source") is not None:
            others = others.filter(origin=self.context["source"])
        return SamePersonSerializer(others[:50], many=True).data
