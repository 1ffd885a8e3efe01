from django.contrib import admin

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the trail is append-only."""

    list_display = ["occurred_at", "action", "actor_label", "lead", "rule", "rule_version", "outcome"]
    list_filter = ["action", "outcome"]
    list_select_related = ["lead__origin", "rule"]
    search_fields = ["lead__lead_id"]
    date_hierarchy = "occurred_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
