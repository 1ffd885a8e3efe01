"""Personal API tokens stored as hashes, with expiry and revocation (issue 15, finding 7). The tokens DRF's
authtoken app kept in clear are carried over as hashes (they keep working, now expiring 90 days from this
migration) and removed from its table."""

import datetime as dt
import hashlib

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

CARRIED_OVER_DAYS = 90


def hash_clear_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if "authtoken_token" not in connection.introspection.table_names():
        return  # a database made after the authtoken app was dropped
    PersonalToken = apps.get_model("routing", "PersonalToken")
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT key, user_id, created FROM authtoken_token")
        rows = cursor.fetchall()
        PersonalToken.objects.bulk_create(
            PersonalToken(
                user_id=user_id,
                name="carried over from the old clear-text token",
                token_hash=hashlib.sha256(key.encode()).hexdigest(),
                token_prefix=key[:8],
                created_at=created,
                expires_at=now + dt.timedelta(days=CARRIED_OVER_DAYS),
            )
            for key, user_id, created in rows
        )
        cursor.execute("DELETE FROM authtoken_token")


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0017_sealed_secrets"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="PersonalToken",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "name",
                    models.CharField(blank=True, help_text="What it is for, e.g. 'reporting script'.", max_length=100),
                ),
                ("token_hash", models.CharField(editable=False, max_length=64, unique=True)),
                (
                    "token_prefix",
                    models.CharField(
                        editable=False, help_text="First characters of the token, to tell tokens apart.", max_length=8
                    ),
                ),
                ("created_at", models.DateTimeField()),
                ("expires_at", models.DateTimeField()),
                ("revoked_at", models.DateTimeField(blank=True, null=True)),
                ("last_used_at", models.DateTimeField(blank=True, null=True)),
                (
                    "revoked_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="api_tokens",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"ordering": ["-created_at", "-id"]},
        ),
        migrations.RunPython(hash_clear_tokens, migrations.RunPython.noop),
    ]
