from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from exceptions.models import ExceptionItem


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
