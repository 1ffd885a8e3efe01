"""Leave room in each page of exception items, so the sweep's stamps (breach, reminder) are HOT updates:
the new row version stays on its page and none of the table's twelve indexes is rewritten."""

from django.db import migrations


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE exceptions_exceptionitem SET (fillfactor = 70)")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE exceptions_exceptionitem RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("exceptions", "0004_notification_unsent_order")]
    operations = [migrations.RunPython(forwards, backwards)]
