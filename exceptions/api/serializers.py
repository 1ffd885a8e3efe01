from rest_framework import serializers

from exceptions.bulk import BULK_ACTIONS, MAX_BULK_ITEMS
from exceptions.filters import console_people
from exceptions.models import NOTE_REQUIRED, NOTE_REQUIRED_MESSAGE, ExceptionIncident, ExceptionItem, Resolution

# Items are worked in the console: only its people (ops, rule owners, admins) can be given one. A queue member
# who is not one of them holds leads, and is named so, rather than told they do not exist.
NOT_A_CONSOLE_PERSON = (
    "{slug_name}={value} is not a console person: items go to people in the ops or rule_owners group (or an "
    "admin); add them with `.venv/bin/python manage.py grant_console_access {value} --group ops`."
)


class ItemLeadSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    lead_id = serializers.CharField()
    origin = serializers.CharField(source="origin.name")
    status = serializers.CharField()
    email = serializers.CharField(allow_null=True)
    phone = serializers.CharField(allow_null=True)
    company = serializers.CharField(allow_null=True)
    intent_score = serializers.FloatField(allow_null=True)


# What items and incidents both show (exceptions.models.Clocked), after their own fields.
CLOCKED_FIELDS = [
    "queue",
    "status",
    "assignee",
    "opened_at",
    "ack_due_at",
    "resolve_due_at",
    "due_at",
    "acknowledged_at",
    "acknowledged_by",
    "resolved_at",
    "resolved_by",
    "resolution",
    "resolution_note",
    "breached",
    "ack_breached_at",
    "resolve_breached_at",
    "escalation_level",
]


class ClockedSerializer(serializers.ModelSerializer):
    queue = serializers.CharField(source="queue.name")
    assignee = serializers.CharField(source="assignee.username", allow_null=True, default=None)
    acknowledged_by = serializers.CharField(source="acknowledged_by.username", allow_null=True, default=None)
    resolved_by = serializers.CharField(source="resolved_by.username", allow_null=True, default=None)
    breached = serializers.BooleanField(source="is_breached")


class ExceptionItemSerializer(ClockedSerializer):
    lead = ItemLeadSerializer()

    class Meta:
        model = ExceptionItem
        fields = ["id", "lead", "reason", "detail", *CLOCKED_FIELDS, "incident", "version"]


class ResolveSerializer(serializers.Serializer):
    resolution = serializers.ChoiceField(choices=Resolution.choices)
    note = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=2000,
        default="",
        help_text="Required for duplicate, spam and not_a_lead.",
    )

    def validate(self, data):
        if data["resolution"] in NOTE_REQUIRED and not data["note"].strip():
            raise serializers.ValidationError({"note": [NOTE_REQUIRED_MESSAGE]})
        return data


class RerouteSerializer(serializers.Serializer):
    lead = serializers.DictField(
        required=False,
        default=dict,
        help_text='Corrections to the lead before it is routed again, e.g. {"email": "jo@acme.example"}; '
        "validated like intake.",
    )
    version = serializers.IntegerField(
        required=False, min_value=0, max_value=2**31 - 1, help_text="The item version you saw; a newer one is a 409."
    )


class ConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
    item = ExceptionItemSerializer()


class BulkSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=BULK_ACTIONS)
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        required=False,
        max_length=MAX_BULK_ITEMS,
        help_text="The items to act on; or give `filter` instead.",
    )
    filter = serializers.DictField(
        required=False,
        help_text='Every item the list\'s query parameters select, e.g. {"reason": "delivery_failed", "queue": 3}'
        " (without `status`: the unresolved ones).",
    )
    code = serializers.ChoiceField(
        choices=Resolution.choices, required=False, help_text="resolve: the resolution code (required)."
    )
    note = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, default="", help_text="resolve: required."
    )
    assignee = serializers.SlugRelatedField(
        slug_field="username",
        queryset=console_people(),
        required=False,
        help_text="assign: the console person's username (required).",
        error_messages={"does_not_exist": NOT_A_CONSOLE_PERSON},
    )

    def validate(self, data):
        if ("ids" in data) == ("filter" in data):
            raise serializers.ValidationError({"ids": ["Give either ids or filter (the list's query parameters)."]})
        return data


class BulkSkippedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reason = serializers.CharField()


class BulkResultSerializer(serializers.Serializer):
    done = serializers.IntegerField(help_text="Items the action changed, each with its own audit event.")
    skipped = BulkSkippedSerializer(many=True, help_text="The others, each with why.")


class IncidentSerializer(ClockedSerializer):
    due_at = serializers.DateTimeField(allow_null=True, help_text="The clock that runs: acknowledge, then resolve.")
    item_count = serializers.IntegerField(help_text="Items of this cause, resolved or not.")
    unresolved_count = serializers.IntegerField()

    class Meta:
        model = ExceptionIncident
        fields = ["id", "cause", "reason", "title", *CLOCKED_FIELDS, "item_count", "unresolved_count", "version"]


class IncidentAssignSerializer(serializers.Serializer):
    assignee = serializers.SlugRelatedField(
        slug_field="username",
        queryset=console_people(),
        help_text="The console person's username.",
        error_messages={"does_not_exist": NOT_A_CONSOLE_PERSON},
    )


RESOLUTION_CODES = ", ".join(Resolution.values)


class IncidentResolveSerializer(serializers.Serializer):
    code = serializers.ChoiceField(
        choices=Resolution.choices,
        required=False,
        help_text="Recorded on the incident and every item (`resolution`, as the item's resolve calls it, works too).",
        error_messages={"invalid_choice": f'"{{input}}" is not a resolution code: use one of {RESOLUTION_CODES}.'},
    )
    resolution = serializers.ChoiceField(
        choices=Resolution.choices,
        required=False,
        write_only=True,
        help_text="The same as `code`.",
        error_messages={"invalid_choice": f'"{{input}}" is not a resolution code: use one of {RESOLUTION_CODES}.'},
    )
    note = serializers.CharField(max_length=2000, help_text="Required: recorded on every item resolved.")

    def validate(self, data):
        code, alias = data.pop("code", None), data.pop("resolution", None)
        if code and alias and code != alias:
            raise serializers.ValidationError({"code": ["code and resolution differ: give one."]})
        if not (code or alias):
            raise serializers.ValidationError({"code": [f"Give the resolution code: one of {RESOLUTION_CODES}."]})
        return {**data, "code": code or alias}


class IncidentActionResultSerializer(serializers.Serializer):
    incident = IncidentSerializer()
    done = serializers.IntegerField(help_text="Items the action changed, each with its own audit event.")
    skipped = BulkSkippedSerializer(many=True, help_text="The others, each with why.")


class IncidentConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
    incident = IncidentSerializer()
