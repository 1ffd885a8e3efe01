"""Delivery secrets and enrichment credentials encrypted at rest (issue 15, finding 7). The columns become
text (a Fernet token is longer than the secret), the values already stored are encrypted with the first key
in HANDOFF_SECRETS_KEY, and the fields then read and write through the key."""

from django.db import migrations, models

import routing.integrations.sealed
from routing.integrations.sealed import seal, unseal

SEALED = [("DeliveryTarget", "secret"), ("EnrichmentProvider", "auth_value")]


def encrypt_stored(apps, schema_editor):
    for model_name, field in SEALED:
        model = apps.get_model("routing", model_name)
        for pk, value in model.objects.values_list("pk", field):
            model.objects.filter(pk=pk).update(**{field: seal(value)})


def decrypt_stored(apps, schema_editor):
    for model_name, field in SEALED:
        model = apps.get_model("routing", model_name)
        for pk, value in model.objects.values_list("pk", field):
            model.objects.filter(pk=pk).update(**{field: unseal(value)})


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0016_account_close_name_keys"),
    ]

    operations = [
        # 1. Plain text columns, wide enough for the ciphertext.
        migrations.AlterField(
            model_name="deliverytarget",
            name="secret",
            field=models.TextField(
                help_text="Shared secret for the X-Handoff-Signature HMAC; the receiver verifies with it."
            ),
        ),
        migrations.AlterField(
            model_name="enrichmentprovider",
            name="auth_value",
            field=models.TextField(blank=True, help_text="e.g. 'Bearer sk_live_…'."),
        ),
        # 2. Encrypt what is there (the historical fields above are plain, so they read and write raw values).
        migrations.RunPython(encrypt_stored, decrypt_stored),
        # 3. From now on the fields encrypt and decrypt (no change to the columns).
        migrations.AlterField(
            model_name="deliverytarget",
            name="secret",
            field=routing.integrations.sealed.SealedTextField(
                help_text="Shared secret for the X-Handoff-Signature HMAC; the receiver verifies with it."
            ),
        ),
        migrations.AlterField(
            model_name="enrichmentprovider",
            name="auth_value",
            field=routing.integrations.sealed.SealedTextField(blank=True, help_text="e.g. 'Bearer sk_live_…'."),
        ),
    ]
