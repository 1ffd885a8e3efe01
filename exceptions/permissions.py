"""Who may use the console and the exceptions API: ops staff, rule owners and admins, never a capture source."""

from django.contrib.auth import get_user_model
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import transaction
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


def console_access_grant(*, username: str, groups: list[str], email: str = "") -> tuple[object, bool]:
    """Put a person (created if new, without a usable password until `changepassword`) in console groups.
    Returns the user and whether it was created. An unknown group is refused, naming the ones there are."""
    unknown = sorted(set(groups) - set(CONSOLE_GROUPS))
    if unknown:
        raise ValueError(f"No console group {', '.join(unknown)}; use {' or '.join(CONSOLE_GROUPS)}.")
    username = username.strip()
    if not username:
        raise ValueError("Give the person's username.")
    with transaction.atomic():
        user, created = get_user_model().objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()
        if email:
            user.email = email
        user.save()
        user.groups.add(*(Group.objects.get_or_create(name=name)[0] for name in groups))
    return user, created
