"""Deliveries follow Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature) by default. Targets
that already exist keep the legacy X-Handoff-* headers their receivers verify (the new column is filled with
`legacy` for them, then its default becomes `standard`, in Python and in the database); their secrets are kept as they are (an admin switches a
target to `both`, then `standard`; README: Delivery to targets). A replaced secret can keep signing for a while
(previous_secret, encrypted like the secret)."""

from django.db import migrations, models

import routing.integrations.sealed


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0025_latency_one_second_buckets"),
    ]

    operations = [
        migrations.AddField(
            model_name="deliverytarget",
            name="signature_scheme",
            field=models.CharField(
                choices=[
                    ("standard", "Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature)"),
                    ("legacy", "Legacy (X-Handoff-Signature, X-Handoff-Timestamp, X-Handoff-Event, Idempotency-Key)"),
                    ("both", "Both (while a receiver moves from legacy to Standard Webhooks)"),
                ],
                default="legacy",
                max_length=16,
            ),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="deliverytarget",
            name="signature_scheme",
            field=models.CharField(
                choices=[
                    ("standard", "Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature)"),
                    ("legacy", "Legacy (X-Handoff-Signature, X-Handoff-Timestamp, X-Handoff-Event, Idempotency-Key)"),
                    ("both", "Both (while a receiver moves from legacy to Standard Webhooks)"),
                ],
                default="standard",
                db_default="standard",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="deliverytarget",
            name="previous_secret",
            field=routing.integrations.sealed.SealedTextField(blank=True, db_default="", editable=False),
        ),
        migrations.AddField(
            model_name="deliverytarget",
            name="previous_secret_until",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AlterField(
            model_name="deliverytarget",
            name="secret",
            field=routing.integrations.sealed.SealedTextField(
                help_text="Shared signing secret, whsec_<base64>; the receiver verifies with it."
            ),
        ),
    ]
