from django import forms
from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from exceptions.models import AlertChannel, AlertEvent, AlertMessage, AlertMessageStatus, ExceptionItem
from routing.integrations.addresses import url_problem


@admin.register(ExceptionItem)
class ExceptionItemAdmin(SimpleHistoryAdmin):
    list_display = ["id", "reason", "status", "queue", "lead", "opened_at", "ack_due_at", "resolve_due_at"]
    list_filter = ["reason", "status", "queue"]
    list_select_related = ["lead__origin", "queue"]
    search_fields = ["lead__lead_id", "lead__email"]
    readonly_fields = [
        "lead",
        "reason",
        "detail",
        "opened_at",
        "ack_due_at",
        "resolve_due_at",
        "acknowledged_at",
        "resolved_at",
    ]


class AlertChannelForm(forms.ModelForm):
    """The routing key and the secret are write-only (docs/security.md, finding 7): the page says whether each
    is set; left blank on a change, the stored value is kept."""

    SECRETS = ("routing_key", "secret")
    events = forms.MultipleChoiceField(choices=AlertEvent.choices, widget=forms.CheckboxSelectMultiple)
    routing_key = forms.CharField(widget=forms.PasswordInput(render_value=False), max_length=200, required=False)
    secret = forms.CharField(widget=forms.PasswordInput(render_value=False), max_length=200, required=False)
    url = forms.URLField(assume_scheme="https", max_length=500, required=False)

    class Meta:
        model = AlertChannel
        fields = [
            "queue",
            "name",
            "kind",
            "url",
            "routing_key",
            "secret",
            "events",
            "min_severity",
            "is_active",
            "max_attempts",
            "timeout_seconds",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.SECRETS:
            field = self.fields[name]
            stored = bool(self.instance.pk and getattr(self.instance, name))
            state = "Set; leave blank to keep it, or type a new one to replace it." if stored else "Not set."
            field.help_text = f"{state} {AlertChannel._meta.get_field(name).help_text}"

    def clean_url(self):
        url = self.cleaned_data["url"]
        problem = url_problem(url) if url else None
        if problem:
            raise forms.ValidationError(problem)
        return url

    def clean(self):
        data = super().clean()
        for name in self.SECRETS:
            if not data.get(name) and self.instance.pk:
                data[name] = getattr(self.instance, name)
        return data


@admin.register(AlertChannel)
class AlertChannelAdmin(admin.ModelAdmin):
    form = AlertChannelForm
    list_display = ["name", "queue", "kind", "events", "min_severity", "is_active", "failed_messages"]
    list_filter = ["kind", "is_active", "queue"]
    list_select_related = ["queue"]

    @admin.display(description="Failed messages")
    def failed_messages(self, obj):
        return obj.messages.filter(status=AlertMessageStatus.FAILED).count()


@admin.register(AlertMessage)
class AlertMessageAdmin(admin.ModelAdmin):
    """What was sent to PagerDuty, Slack and webhooks, and why a message failed (its last answer)."""

    list_display = ["id", "channel", "action", "dedup_key", "status", "attempts", "last_status_code", "last_error"]
    list_filter = ["status", "action", "channel"]
    list_select_related = ["channel"]
    search_fields = ["dedup_key"]
    readonly_fields = [field.name for field in AlertMessage._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
