from django.core.management.base import BaseCommand
from django.db import transaction

from exceptions.models import AlertChannel
from routing.integrations.models import DeliveryTarget, EnrichmentProvider

SEALED = [
    (DeliveryTarget, "secret"),
    (DeliveryTarget, "previous_secret"),
    (EnrichmentProvider, "auth_value"),
    (AlertChannel, "routing_key"),
    (AlertChannel, "secret"),
]


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret with the first key in HANDOFF_SECRETS_KEY (key rotation: put the new key "
        "first, keep the old one after it, run this, then remove the old key)."
    )

    @transaction.atomic
    def handle(self, *args, **options):
        count = 0
        for model, field in SEALED:
            # Read with whichever key wrote it, written back with the first (SealedTextField does both).
            for pk, plain in model.objects.values_list("pk", field):
                model.objects.filter(pk=pk).update(**{field: plain})
                count += 1
        self.stdout.write(f"Re-encrypted {count} secret(s) with the first key.")
