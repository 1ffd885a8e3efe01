"""Who may use the console and the exceptions API: ops staff, rule owners and admins, never a capture source."""

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from rest_framework import permissions

CONSOLE_GROUPS = ("ops", "rule_owners")


def has_console_access(user) -> bool:
    if not getattr(user, "is_authenticated", False) or not hasattr(user, "groups"):
        return False  # anonymous, or a capture source's principal
    if not user.is_active:
        return False
    if user.is_superuser:
        user.console_groups = set(CONSOLE_GROUPS)
        return True
    # Kept on the user for the page's navigation (each role sees its own work first), so it costs no query.
    user.console_groups = set(user.groups.filter(name__in=CONSOLE_GROUPS).values_list("name", flat=True))
    return bool(user.console_groups)


class ConsoleAccessMixin(LoginRequiredMixin):
    """Login for every screen; a signed-in person outside the console's groups gets 403."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not has_console_access(request.user):
            raise PermissionDenied("Your account is not in the ops or rule_owners group; ask an admin for access.")
        return super().dispatch(request, *args, **kwargs)


class IsConsoleUser(permissions.BasePermission):
    message = "This needs a console account in the ops or rule_owners group (capture-source tokens cannot use it)."

    def has_permission(self, request, view):
        return has_console_access(request.user)
