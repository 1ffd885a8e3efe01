"""Search over leads (the item list's and the exceptions API's `q`, exceptions/filters.py): a trigram index on
one lower-cased text of a lead's email, lead id, company and names, so that a part of any of them is found
through the index rather than by reading every lead. PostgreSQL only (pg_trgm, a trusted extension the
database owner may create), built CONCURRENTLY so a large lead table keeps taking writes; where the extension
cannot be created the search still works, by a scan."""

import logging

from django.db import migrations

logger = logging.getLogger(__name__)

# The same expression as exceptions.filters.LEAD_SEARCH_TEXT: the planner uses the index only for it.
EXPRESSION = (
    "lower(coalesce(email, '') || ' ' || lead_id || ' ' || coalesce(company, '') || ' ' || "
    "coalesce(first_name, '') || ' ' || coalesce(last_name, ''))"
)


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        if cursor.fetchone() is None:
            try:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            except Exception as exc:  # noqa: BLE001 - no right to create it: search scans instead
                logger.warning("pg_trgm not available (%s); lead search will scan instead of using an index.", exc)
                return
        cursor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS lead_search_trgm_idx ON routing_lead "
            f"USING gin (({EXPRESSION}) gin_trgm_ops)"
        )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX CONCURRENTLY IF EXISTS lead_search_trgm_idx")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("routing", "0022_account_updated_at_index"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
