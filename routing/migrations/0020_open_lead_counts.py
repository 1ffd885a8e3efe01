"""Open leads per person kept by triggers on routing_lead (routing.models.OpenLeadCount), then filled from the
leads as they stand. The trigger is created first, in the same transaction: it locks routing_lead until commit,
so no lead can change between the fill and the trigger."""

from django.db import migrations, models

ASSIGNED = "'assigned'"

POSTGRESQL_FUNCTION = f"""
CREATE FUNCTION routing_open_lead_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- One row per person the statement changed, never one per lead: the transition tables hold every row.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO routing_openleadcount (assignee_id, change)
        SELECT assignee_id, count(*) FROM new_leads
        WHERE status = {ASSIGNED} AND assignee_id IS NOT NULL GROUP BY assignee_id;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO routing_openleadcount (assignee_id, change)
        SELECT assignee_id, -count(*) FROM old_leads
        WHERE status = {ASSIGNED} AND assignee_id IS NOT NULL GROUP BY assignee_id;
    ELSE
        INSERT INTO routing_openleadcount (assignee_id, change)
        SELECT assignee_id, sum(change) FROM (
            SELECT assignee_id, -1 AS change FROM old_leads WHERE status = {ASSIGNED} AND assignee_id IS NOT NULL
            UNION ALL
            SELECT assignee_id, 1 FROM new_leads WHERE status = {ASSIGNED} AND assignee_id IS NOT NULL
        ) changes GROUP BY assignee_id HAVING sum(change) <> 0;
    END IF;
    RETURN NULL;
END $$
"""
POSTGRESQL_TRIGGERS = [
    "CREATE TRIGGER routing_lead_open_count_insert AFTER INSERT ON routing_lead "
    "REFERENCING NEW TABLE AS new_leads FOR EACH STATEMENT EXECUTE FUNCTION routing_open_lead_count()",
    "CREATE TRIGGER routing_lead_open_count_update AFTER UPDATE ON routing_lead "
    "REFERENCING OLD TABLE AS old_leads NEW TABLE AS new_leads FOR EACH STATEMENT "
    "EXECUTE FUNCTION routing_open_lead_count()",
    "CREATE TRIGGER routing_lead_open_count_delete AFTER DELETE ON routing_lead "
    "REFERENCING OLD TABLE AS old_leads FOR EACH STATEMENT EXECUTE FUNCTION routing_open_lead_count()",
]
# SQLite (the demo without PostgreSQL) has row triggers only: one change row per lead, folded by the beat.
SQLITE_TRIGGERS = [
    f"CREATE TRIGGER routing_lead_open_count_insert AFTER INSERT ON routing_lead "
    f"WHEN NEW.status = {ASSIGNED} AND NEW.assignee_id IS NOT NULL BEGIN "
    "INSERT INTO routing_openleadcount (assignee_id, change) VALUES (NEW.assignee_id, 1); END",
    f"CREATE TRIGGER routing_lead_open_count_update_old AFTER UPDATE OF status, assignee_id ON routing_lead "
    f"WHEN OLD.status = {ASSIGNED} AND OLD.assignee_id IS NOT NULL BEGIN "
    "INSERT INTO routing_openleadcount (assignee_id, change) VALUES (OLD.assignee_id, -1); END",
    f"CREATE TRIGGER routing_lead_open_count_update_new AFTER UPDATE OF status, assignee_id ON routing_lead "
    f"WHEN NEW.status = {ASSIGNED} AND NEW.assignee_id IS NOT NULL BEGIN "
    "INSERT INTO routing_openleadcount (assignee_id, change) VALUES (NEW.assignee_id, 1); END",
    f"CREATE TRIGGER routing_lead_open_count_delete AFTER DELETE ON routing_lead "
    f"WHEN OLD.status = {ASSIGNED} AND OLD.assignee_id IS NOT NULL BEGIN "
    "INSERT INTO routing_openleadcount (assignee_id, change) VALUES (OLD.assignee_id, -1); END",
]
FILL = (
    "INSERT INTO routing_openleadcount (assignee_id, change) SELECT assignee_id, count(*) FROM routing_lead "
    f"WHERE status = {ASSIGNED} AND assignee_id IS NOT NULL GROUP BY assignee_id"
)


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        statements = [POSTGRESQL_FUNCTION, *POSTGRESQL_TRIGGERS]
    elif vendor == "sqlite":
        statements = SQLITE_TRIGGERS
    else:
        raise NotImplementedError(f"open lead counts need triggers written for {vendor}")
    for statement in [*statements, FILL]:
        schema_editor.execute(statement)


def remove(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    names = (
        ["insert", "update", "delete"] if vendor == "postgresql" else ["insert", "update_old", "update_new", "delete"]
    )
    for name in names:
        schema_editor.execute(
            f"DROP TRIGGER IF EXISTS routing_lead_open_count_{name}"
            + (" ON routing_lead" if vendor == "postgresql" else "")
        )
    if vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS routing_open_lead_count()")


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0019_enrichment_breaker"),
    ]

    operations = [
        migrations.CreateModel(
            name="OpenLeadCount",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("assignee_id", models.IntegerField()),
                ("change", models.IntegerField()),
            ],
            options={
                "indexes": [models.Index(fields=["assignee_id"], name="open_lead_count_assignee_idx")],
            },
        ),
        migrations.RunPython(install, remove),
    ]
