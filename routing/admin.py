from django import forms
from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from routing.conditions import ConditionError, validate_condition
from routing.models import Lead, Queue, QueueMembership, Rule, RuleStage, Source
from routing.rules import rule_save


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "token_prefix", "is_active", "created_at"]
    readonly_fields = ["token_prefix", "created_at"]
    fields = ["name", "is_active", "token_prefix", "created_at"]

    def has_add_permission(self, request):
        return False  # tokens are issued by `manage.py create_source`, which shows the token once


class MembershipInline(admin.TabularInline):
    model = QueueMembership
    extra = 0
    fields = ["user", "is_available", "weight", "rotation_pass"]
    readonly_fields = ["rotation_pass"]
    autocomplete_fields = ["user"]


@admin.register(Queue)
class QueueAdmin(SimpleHistoryAdmin):
    list_display = [
        "name",
        "strategy",
        "ack_sla_minutes",
        "resolve_sla_minutes",
        "max_open_per_member",
        "overflow_queue",
    ]
    search_fields = ["name"]
    inlines = [MembershipInline]


class RuleForm(forms.ModelForm):
    class Meta:
        model = Rule
        fields = [
            "name",
            "description",
            "owner",
            "priority",
            "stage",
            "condition",
            "queue",
            "sla_minutes",
            "inputs",
            "outputs",
            "rollback_plan",
        ]

    def clean(self):
        data = super().clean()
        if data.get("stage") == RuleStage.PRODUCTION and not data.get("owner"):
            raise forms.ValidationError("A production rule needs a named owner.")
        return data

    def clean_condition(self):
        condition = self.cleaned_data["condition"]
        try:
            validate_condition(condition)
        except ConditionError as exc:
            raise forms.ValidationError(str(exc)) from None
        return condition


@admin.register(Rule)
class RuleAdmin(SimpleHistoryAdmin):
    form = RuleForm
    list_display = ["name", "priority", "stage", "queue", "owner", "version", "updated_at"]
    list_filter = ["stage", "queue"]
    search_fields = ["name", "description"]
    readonly_fields = ["version", "created_at", "updated_at"]
    autocomplete_fields = ["owner", "queue"]

    def save_model(self, request, obj, form, change):
        rule_save(rule=obj, by=request.user)


@admin.register(Lead)
class LeadAdmin(SimpleHistoryAdmin):
    list_display = ["id", "lead_id", "origin", "status", "queue", "assignee", "received_at", "assigned_at"]
    list_filter = ["status", "origin", "queue"]
    search_fields = ["lead_id", "email", "company"]
    list_select_related = ["origin", "queue", "assignee"]
    readonly_fields = [f.name for f in Lead._meta.fields]
    date_hierarchy = "received_at"

    def has_add_permission(self, request):
        return False  # leads arrive through the intake API
