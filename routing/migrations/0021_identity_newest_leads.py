"""A person's newest leads read from the end of their key's index range (routing/accounts/identity.py
`_newest_leads_of`): the key indexes gain the lead id. Built CONCURRENTLY on PostgreSQL, new before old, so a
large identity table keeps taking writes and lookups while it builds; the model state records the same indexes
(LeadIdentity.Meta), so makemigrations sees nothing to do."""

from django.db import migrations, models

NEW = {
    "identity_email_lead_idx": ("email_key", "lead_id"),
    "identity_shared_lead_idx": ("shared_id", "lead_id"),
}
OLD = {"identity_email_key_idx": ("email_key",), "identity_shared_id_idx": ("shared_id",)}


def _concurrently(schema_editor) -> str:
    return "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""


def _create(schema_editor, indexes) -> None:
    for name, columns in indexes.items():
        schema_editor.execute(
            f"CREATE INDEX {_concurrently(schema_editor)}IF NOT EXISTS {name} ON routing_leadidentity "
            f"({', '.join(columns)}) WHERE NOT ({columns[0]} = '')"
        )


def _drop(schema_editor, indexes) -> None:
    for name in indexes:
        schema_editor.execute(f"DROP INDEX {_concurrently(schema_editor)}IF EXISTS {name}")


def forwards(apps, schema_editor):
    _create(schema_editor, NEW)
    _drop(schema_editor, OLD)


def backwards(apps, schema_editor):
    _create(schema_editor, OLD)
    _drop(schema_editor, NEW)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("routing", "0020_open_lead_counts"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forwards, backwards, elidable=False)],
            state_operations=[
                migrations.RemoveIndex(model_name="leadidentity", name="identity_email_key_idx"),
                migrations.RemoveIndex(model_name="leadidentity", name="identity_shared_id_idx"),
                migrations.AddIndex(
                    model_name="leadidentity",
                    index=models.Index(
                        condition=~models.Q(email_key=""), fields=["email_key", "lead"], name="identity_email_lead_idx"
                    ),
                ),
                migrations.AddIndex(
                    model_name="leadidentity",
                    index=models.Index(
                        condition=~models.Q(shared_id=""), fields=["shared_id", "lead"], name="identity_shared_lead_idx"
                    ),
                ),
            ],
        ),
    ]
