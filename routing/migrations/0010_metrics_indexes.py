"""Index for /metrics (config/observability/metrics.py): delivery attempts since the last settled hour, by
`at`, so a scrape reads only the recent attempts, however many the history holds.

Built CONCURRENTLY on PostgreSQL so a large attempts table keeps taking writes while it builds; the model
state records the same index (DeliveryAttempt.Meta), so makemigrations sees nothing to do."""

from django.db import migrations, models

INDEX = "delivery_attempt_at_idx"


def create_index(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(f'CREATE INDEX {concurrently}IF NOT EXISTS {INDEX} ON routing_deliveryattempt ("at")')


def drop_index(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(f"DROP INDEX {concurrently}IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("routing", "0009_dashboard_rollups"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(create_index, drop_index, elidable=False)],
            state_operations=[
                migrations.AddIndex(model_name="deliveryattempt", index=models.Index(fields=["at"], name=INDEX)),
            ],
        ),
    ]
