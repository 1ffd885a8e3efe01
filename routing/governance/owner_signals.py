"""A rule owner's account deactivated, by any path that saves the user (the Django admin, the shell, a
script; the project has no deactivation service to hook instead): their rules' backup owners, or the admins,
get an OWNER_DEACTIVATED notice in the same transaction. A queryset `.update(is_active=False)` sends no
signal and so no notice; the rules list and checklist still flag the rule, and promotion stays blocked."""

from django.contrib.auth import get_user_model
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver
from simple_history.models import HistoricalRecords

from audit.history import history_person
from routing.governance.notices import owner_deactivated_notices

User = get_user_model()


@receiver(pre_save, sender=User, dispatch_uid="rule_owner_deactivation_before")
def _remember_active(sender, instance, update_fields=None, **kwargs):
    # Only a save that may switch is_active off asks the database what it was (a login's last_login save
    # and every save of an active account cost nothing).
    instance._was_active = False
    if instance.pk is None or instance.is_active:
        return
    if update_fields is not None and "is_active" not in update_fields:
        return
    instance._was_active = sender.objects.filter(pk=instance.pk, is_active=True).exists()


@receiver(post_save, sender=User, dispatch_uid="rule_owner_deactivation_after")
def _owner_deactivated(sender, instance, created=False, **kwargs):
    if created or not getattr(instance, "_was_active", False):
        return
    instance._was_active = False
    by = history_person(getattr(HistoricalRecords.context, "request", None))  # the admin, in a request
    owner_deactivated_notices(user=instance, by=by if by is not None and by.pk != instance.pk else None)
