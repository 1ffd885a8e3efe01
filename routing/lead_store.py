"""Bulk writes of new leads, fast enough for batch intake (thousands of leads/s).

ORM bulk_create spends most of its time building and parsing a statement with one placeholder per value.
On PostgreSQL the whole batch goes as one JSON parameter (serialised by orjson, in C), unpacked by the
database with `jsonb_to_recordset`, and the lead rows and their django-simple-history rows are written
by one statement (a data-modifying CTE): one round trip, atomic without a BEGIN/COMMIT pair. SQLite (the
zero-install demo) gets the plain two-statement equivalent inside a transaction.
"""

import datetime as dt
import functools
from typing import Any

import orjson
from django.db import connection, transaction

from routing.models import Lead

_FIELDS = [f for f in Lead._meta.concrete_fields if not f.primary_key]
_HISTORY_MODEL = Lead.history.model
_HISTORY_COPIED = [f.column for f in _HISTORY_MODEL._meta.concrete_fields if not f.column.startswith("history_")]


def _pg_type(field) -> str:
    db_type = field.db_type(connection)
    return "text" if db_type.startswith("varchar") else db_type


@functools.cache
def _statements(vendor: str, rows: int) -> tuple[str, str]:
    """(insert leads, insert their history rows), built once per process (per row count on SQLite)."""
    quote = connection.ops.quote_name
    table, history = quote(Lead._meta.db_table), quote(_HISTORY_MODEL._meta.db_table)
    columns = ", ".join(quote(f.column) for f in _FIELDS)
    copied = ", ".join(quote(c) for c in _HISTORY_COPIED)
    conflict = f"ON CONFLICT ({quote('origin_id')}, {quote('lead_id')}) DO NOTHING"
    history_columns = f"{history} ({copied}, history_date, history_type)"
    if vendor == "postgresql":
        record = ", ".join(f"{quote(f.column)} {_pg_type(f)}" for f in _FIELDS)
        return (
            f"WITH created AS (INSERT INTO {table} ({columns}) SELECT {columns} "
            f"FROM jsonb_to_recordset(%s::jsonb) AS t({record}) {conflict} RETURNING *) "
            f"INSERT INTO {history_columns} SELECT {copied}, %s, '+' FROM created RETURNING id, lead_id",
            "",
        )
    placeholders = "(" + ", ".join(["%s"] * len(_FIELDS)) + ")"
    return (
        f"INSERT INTO {table} ({columns}) VALUES {', '.join([placeholders] * rows)} {conflict} RETURNING id, lead_id",
        f"INSERT INTO {history_columns} SELECT {copied}, %s, '+' FROM {table} WHERE id IN ",
    )


def leads_insert_new(rows: list[dict[str, Any]], *, at: dt.datetime) -> dict[str, int]:
    """Insert the rows whose (origin, lead_id) is new, with their '+' history rows; skip the others.
    Returns {lead_id: id} of the leads created. Each row maps Lead field attnames to values; absent
    fields take the model default."""
    if not rows:
        return {}
    defaults = {f.attname: f.get_default() for f in _FIELDS}
    rows = [{**defaults, **row} for row in rows]
    if connection.vendor == "postgresql":
        insert, _ = _statements(connection.vendor, 0)
        payload = orjson.dumps([{f.column: row[f.attname] for f in _FIELDS} for row in rows]).decode()
        with connection.cursor() as cursor:
            cursor.execute(insert, [payload, at])
            return {lead_id: pk for pk, lead_id in cursor.fetchall()}
    insert, history = _statements(connection.vendor, len(rows))
    params = [f.get_db_prep_save(row[f.attname], connection) for row in rows for f in _FIELDS]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(insert, params)
        created = {lead_id: pk for pk, lead_id in cursor.fetchall()}
        if created:
            ids = list(created.values())
            cursor.execute(history + "(" + ", ".join(["%s"] * len(ids)) + ")", [at, *ids])
    return created


def leads_assignment_write(leads: list[Lead], fields: list[str], *, at: dt.datetime) -> None:
    """Write `fields` of these leads and one '~' history row each, copied from the rows as they then stand:
    what save() does per lead. On PostgreSQL one statement (the values as one JSON parameter, a CTE writing
    the history rows from the UPDATE's RETURNING); elsewhere bulk_update and an INSERT … SELECT."""
    quote = connection.ops.quote_name
    copied = ", ".join(quote(c) for c in _HISTORY_COPIED)
    history = f"{quote(_HISTORY_MODEL._meta.db_table)} ({copied}, history_date, history_type)"
    table = quote(Lead._meta.db_table)
    if connection.vendor != "postgresql":
        Lead.objects.bulk_update(leads, fields)
        placeholders = ", ".join(["%s"] * len(leads))
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {history} SELECT {copied}, %s, '~' FROM {table} WHERE id IN ({placeholders})",
                [at, *(lead.pk for lead in leads)],
            )
        return
    columns = [Lead._meta.get_field(name) for name in fields]
    record = ", ".join(["id bigint", *(f"{quote(f.column)} {_pg_type(f)}" for f in columns)])
    assignments = ", ".join(f"{quote(f.column)} = t.{quote(f.column)}" for f in columns)
    rows = [{"id": lead.pk, **{f.column: getattr(lead, f.attname) for f in columns}} for lead in leads]
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH updated AS (UPDATE {table} AS l SET {assignments} "
            f"FROM jsonb_to_recordset(%s::jsonb) AS t({record}) WHERE l.id = t.id RETURNING l.*) "
            f"INSERT INTO {history} SELECT {copied}, %s, '~' FROM updated",
            [orjson.dumps(rows).decode(), at],
        )
