"""Erasure (issue 19): `handoff_erase(lead_ids, salt, dry_run)`, the one path by which a person's personal values
leave the rows that keep them, the append-only ones included (routing/erasure.py calls it).

It runs as its owner (SECURITY DEFINER: the role that runs `migrate`), since the application may only SELECT and
INSERT the history and audit tables (audit/db_roles.py). It takes lead ids, never values: what it writes is
decided here, so even a compromised application can only erase, not rewrite. Each personal value becomes
`erased:<24 hex of sha256(salt || value)>` (31 characters: it fits every column, phone's 32 too), so the same
value hashes alike everywhere and the erasure event can name the email's hash. The values erased are the leads'
emails, phones, first and last names (every one their history ever held) and identity email keys: equal JSON
strings are hashed, free text has them replaced where they stand as words, and `attributes` objects have every
value hashed. Rows already erased are left alone (idempotent); the result counts changed rows per table.

The audit trail's trigger (migration 0003) lets an UPDATE through only while this function runs (it sets
`handoff.erasing` on, then off before it returns), and only when nothing but `inputs` and `data` changes; every
other UPDATE or DELETE is refused as before. Setting `handoff.erasing` by hand gives the application nothing: it
holds no UPDATE privilege on the trail (the owner, who could drop the trigger anyway, is the only one it helps)."""

from django.db import migrations

HASH = """
CREATE OR REPLACE FUNCTION handoff_erased(value text, salt text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN value IS NULL OR value = '' OR value LIKE 'erased:%' THEN value
        ELSE 'erased:' || left(encode(sha256(convert_to(salt || value, 'UTF8')), 'hex'), 24) END
$$;
"""

# Terms longest first, so an email is replaced before a name it contains. A term stands as a word: no letter,
# digit or _ right before or after it.
TEXT = r"""
CREATE OR REPLACE FUNCTION handoff_erase_text(body text, terms text[], salt text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    term text;
BEGIN
    IF body IS NULL OR body = '' THEN
        RETURN body;
    END IF;
    FOREACH term IN ARRAY terms LOOP
        body := regexp_replace(
            body,
            '(?<![[:alnum:]_])' || regexp_replace(term, '([^[:alnum:][:space:]])', '\\\1', 'g') || '(?![[:alnum:]_])',
            handoff_erased(term, salt),
            'gi'
        );
    END LOOP;
    RETURN body;
END;
$$;
"""

JSON = """
CREATE OR REPLACE FUNCTION handoff_erase_json(doc jsonb, terms text[], salt text, hash_all boolean DEFAULT false)
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    result jsonb;
    value text;
BEGIN
    CASE jsonb_typeof(doc)
    WHEN 'object' THEN
        SELECT coalesce(jsonb_object_agg(key, handoff_erase_json(item, terms, salt, hash_all OR key = 'attributes')),
                        '{}'::jsonb)
        INTO result FROM jsonb_each(doc) AS entries(key, item);
        RETURN result;
    WHEN 'array' THEN
        SELECT coalesce(jsonb_agg(handoff_erase_json(item, terms, salt, hash_all) ORDER BY position), '[]'::jsonb)
        INTO result FROM jsonb_array_elements(doc) WITH ORDINALITY AS items(item, position);
        RETURN result;
    WHEN 'string' THEN
        value := doc #>> '{}';
        IF hash_all OR lower(value) = ANY (SELECT lower(term) FROM unnest(terms) AS term) THEN
            RETURN to_jsonb(handoff_erased(value, salt));
        END IF;
        RETURN to_jsonb(handoff_erase_text(value, terms, salt));
    WHEN 'number', 'boolean' THEN
        IF hash_all THEN
            RETURN to_jsonb(handoff_erased(doc::text, salt));
        END IF;
        RETURN doc;
    ELSE
        RETURN doc;  -- null (or SQL NULL)
    END CASE;
END;
$$;
"""

# (table, which rows, {column: new value}). `ids` are the leads, `items` their exception items, `events` their
# outbox events, `terms` the values to erase, `emails` those of them that are addresses.
_T = "handoff_erase_text({column}, terms, salt)"
_J = "handoff_erase_json({column}, terms, salt)"
_H = "handoff_erased({column}, salt)"
_LEAD_COLUMNS = {
    "email": _H,
    "phone": _H,
    "first_name": _H,
    "last_name": _H,
    "attributes": "handoff_erase_json({column}, terms, salt, true)",
}
TABLES = [
    ("routing_lead", "id = ANY (ids)", _LEAD_COLUMNS),
    (
        "routing_historicallead",
        "id = ANY (ids)",
        {**_LEAD_COLUMNS, "history_change_reason": "left(handoff_erase_text({column}, terms, salt), 100)"},
    ),
    ("routing_leadidentity", "lead_id = ANY (ids)", {"email_key": _H}),
    (
        "audit_auditevent",
        "lead_id = ANY (ids) OR exception_id = ANY (items)",
        {"inputs": _J, "data": _J},
    ),
    ("audit_override", "lead_id = ANY (ids)", {"reason": _T}),
    ("exceptions_exceptionitem", "id = ANY (items)", {"detail": _T, "resolution_note": _T}),
    (
        "exceptions_exceptionincident",
        "id IN (SELECT incident_id FROM exceptions_exceptionitem WHERE id = ANY (items))",
        {"resolution_note": _T},
    ),
    ("exceptions_slaevent", "item_id = ANY (items)", {"data": _J}),
    ("exceptions_alertmessage", "item_id = ANY (items)", {"body": _J, "last_error": _T}),
    ("routing_outboxevent", "id = ANY (events)", {"payload": _J, "confirmation": _J, "last_error": _T}),
    ("routing_deliveryattempt", "event_id = ANY (events)", {"error": _T}),
    ("routing_enrichmentreceipt", "lead_id = ANY (ids)", {"invalid": _J, "error": _T}),
    (
        "routing_rejectedpost",
        "replayed_lead_id = ANY (ids) OR EXISTS "
        "(SELECT FROM unnest(emails) AS email WHERE strpos(lower(excerpt), lower(email)) > 0)",
        {"excerpt": _T, "lead_id": _H},
    ),
    (
        "django_admin_log",
        "object_id = ANY (ids::text[]) AND content_type_id = "
        "(SELECT id FROM django_content_type WHERE app_label = 'routing' AND model = 'lead')",
        {"change_message": _T},
    ),
]


def _table_sql(table: str, where: str, columns: dict[str, str]) -> str:
    values = {column: template.format(column=column) for column, template in columns.items()}
    changes = " OR ".join(f"{value} IS DISTINCT FROM {column}" for column, value in values.items())
    assignments = ", ".join(f"{column} = {value}" for column, value in values.items())
    return f"""
    IF dry_run THEN
        SELECT count(*) INTO changed FROM {table} WHERE ({where}) AND ({changes});
    ELSE
        UPDATE {table} SET {assignments} WHERE ({where}) AND ({changes});
        GET DIAGNOSTICS changed = ROW_COUNT;
    END IF;
    counts := counts || jsonb_build_object('{table}', changed);"""


ERASE = f"""
CREATE OR REPLACE FUNCTION handoff_erase(ids bigint[], salt text, dry_run boolean DEFAULT false) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    terms text[];
    emails text[];
    items bigint[];
    events bigint[];
    changed bigint;
    counts jsonb := '{{}}'::jsonb;
BEGIN
    IF salt IS NULL OR length(salt) < 16 THEN
        RAISE EXCEPTION 'handoff_erase needs a salt of at least 16 characters';
    END IF;
    -- Every value the leads hold or ever held, read before any is replaced.
    SELECT coalesce(array_agg(term ORDER BY length(term) DESC, term), '{{}}') INTO terms FROM (
        SELECT unnest(ARRAY[email, phone, first_name, last_name]) AS term FROM routing_lead WHERE id = ANY (ids)
        UNION
        SELECT unnest(ARRAY[email, phone, first_name, last_name]) FROM routing_historicallead WHERE id = ANY (ids)
        UNION
        SELECT email_key FROM routing_leadidentity WHERE lead_id = ANY (ids)
    ) AS values_held WHERE length(term) >= 2 AND term NOT LIKE 'erased:%';
    SELECT coalesce(array_agg(term), '{{}}') INTO emails FROM unnest(terms) AS term WHERE term LIKE '%@%';
    SELECT coalesce(array_agg(id), '{{}}') INTO items FROM exceptions_exceptionitem WHERE lead_id = ANY (ids);
    SELECT coalesce(array_agg(id), '{{}}') INTO events FROM routing_outboxevent WHERE lead_id = ANY (ids);
    -- The audit trigger's way through, for this call alone (undone with the transaction if anything fails).
    -- Set here, not as the function's SET clause: PostgreSQL 15 lets only superusers attach a custom setting.
    PERFORM set_config('handoff.erasing', 'on', true);
    {"".join(_table_sql(*table) for table in TABLES)}
    PERFORM set_config('handoff.erasing', 'off', true);
    RETURN counts;
END;
$$;
"""

# Migration 0003's trigger, with the erasure's narrow way through.
TRIGGER = """
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND current_setting('handoff.erasing', true) = 'on'
            AND to_jsonb(NEW) - 'inputs' - 'data' = to_jsonb(OLD) - 'inputs' - 'data' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""
TRIGGER_BEFORE = """
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""
DROP = """
DROP FUNCTION IF EXISTS handoff_erase(bigint[], text, boolean);
DROP FUNCTION IF EXISTS handoff_erase_json(jsonb, text[], text, boolean);
DROP FUNCTION IF EXISTS handoff_erase_text(text, text[], text);
DROP FUNCTION IF EXISTS handoff_erased(text, text);
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in (HASH, TEXT, JSON, ERASE, TRIGGER):
            schema_editor.execute(statement, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TRIGGER_BEFORE, params=None)
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0009_edge_actions"),
        ("routing", "0030_capture_edge"),
        ("exceptions", "0001_initial"),
        ("admin", "0001_initial"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
