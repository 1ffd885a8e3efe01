"""Cache invalidation only: any rule write, by any path (services, admin, factories, shell), moves the rule
set generation in its own transaction, so workers recompile the rules they route with."""

from django.db.models import F
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from routing.models import Rule, RuleSetGeneration


@receiver(post_save, sender=Rule)
@receiver(post_delete, sender=Rule)
def rules_changed(**kwargs):
    if not RuleSetGeneration.objects.filter(pk=1).update(value=F("value") + 1):
        RuleSetGeneration.objects.get_or_create(pk=1, defaults={"value": 1})
