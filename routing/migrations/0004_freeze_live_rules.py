"""Live rules become frozen versions; then the rule row's own version number goes, and the database refuses
any change to a version or a promotion (they are what routing ran and why)."""

from django.db import migrations


def freeze_live_rules(apps, schema_editor):
    """Rules already live keep routing: each staging or production rule becomes its own version 1 (or the
    number its leads recorded), promoted to the stage it was in."""
    Rule = apps.get_model("routing", "Rule")
    RuleVersion = apps.get_model("routing", "RuleVersion")
    RulePromotion = apps.get_model("routing", "RulePromotion")
    unowned = list(Rule.objects.exclude(stage="draft").filter(owner=None).values_list("name", flat=True))
    if unowned:
        raise RuntimeError(
            "These staging/production rules have no owner, and a frozen version needs one: "
            + ", ".join(unowned)
            + ". Give each an owner (or set it back to draft), then migrate again."
        )
    for rule in Rule.objects.exclude(stage="draft"):
        live_since = rule.updated_at  # decisions before the migration are explained by this version
        version = RuleVersion.objects.create(
            rule=rule,
            number=rule.version,
            name=rule.name,
            description=rule.description,
            owner_id=rule.owner_id,
            priority=rule.priority,
            condition=rule.condition,
            queue_id=rule.queue_id,
            sla_minutes=rule.sla_minutes or 15,
            inputs=rule.inputs,
            outputs=rule.outputs,
            rollback_plan=rule.rollback_plan,
            test_cases=[],
            created_at=live_since,
            # Never through the gates: a live one shows as unsigned until its owner signs off.
            forced=rule.stage == "production",
        )
        pointer = "production_version" if rule.stage == "production" else "staging_version"
        setattr(rule, pointer, version)
        rule.save(update_fields=[pointer])
        RulePromotion.objects.create(
            rule=rule,
            version=version,
            kind="forced" if rule.stage == "production" else "staging",
            by_id=rule.owner_id,
            at=live_since,
            comment="Migrated as live.",
        )


APPEND_ONLY_TABLES = ("routing_ruleversion", "routing_rulepromotion")
PG_FUNCTION = """
CREATE OR REPLACE FUNCTION routing_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% rows are immutable (% refused)', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def add_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FUNCTION, params=None)
    for table in APPEND_ONLY_TABLES:
        if vendor == "postgresql":
            schema_editor.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION routing_append_only();"
            )
        elif vendor == "sqlite":
            for op in ("UPDATE", "DELETE"):
                schema_editor.execute(
                    f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} rows are immutable ({op} refused)'); END;"
                )


def drop_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table in APPEND_ONLY_TABLES:
        if vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};")
        elif vendor == "sqlite":
            for op in ("update", "delete"):
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_{op};")
    if vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS routing_append_only();")


class Migration(migrations.Migration):
    dependencies = [("routing", "0003_rule_versions_governance")]
    operations = [
        migrations.RunPython(freeze_live_rules, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name="historicalrule",
            name="version",
        ),
        migrations.RemoveField(
            model_name="rule",
            name="version",
        ),
        migrations.RunPython(add_triggers, drop_triggers),
    ]
