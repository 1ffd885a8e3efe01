"""bulk_create for the routing path's hot writes (decisions, outbox events, shadow decisions, exception items,
account matches and identities).

Django's bulk_create on PostgreSQL sends one array per column, and with client-side binding psycopg quotes
every element in Python: most of a routing batch's CPU. Here the rows go as one JSON parameter, serialised by
orjson in C, unpacked by the database with `jsonb_to_recordset` (as intake does, routing/lead_store.py). JSON
fields travel as text made by the field's own encoder and are cast back, so what is stored is what
bulk_create would store. Other databases (the SQLite demo) get bulk_create itself.
"""

import functools
import json

import orjson
from django.db import connection, models


@functools.cache
def _statement(
    model: type[models.Model], unique_fields: tuple[str, ...] = (), update_fields: tuple[str, ...] = ()
) -> tuple[str, tuple[models.Field, ...]]:
    quote = connection.ops.quote_name
    fields = tuple(f for f in model._meta.concrete_fields if not f.primary_key)
    columns = ", ".join(quote(f.column) for f in fields)
    record = ", ".join(f"{quote(f.column)} {_record_type(f)}" for f in fields)
    values = ", ".join(f"{quote(f.column)}::jsonb" if _is_json(f) else quote(f.column) for f in fields)
    table = quote(model._meta.db_table)
    pk = quote(model._meta.pk.column)
    conflict = ""
    if unique_fields:
        column = {name: quote(model._meta.get_field(name).column) for name in (*unique_fields, *update_fields)}
        assignments = ", ".join(f"{column[name]} = EXCLUDED.{column[name]}" for name in update_fields)
        conflict = f" ON CONFLICT ({', '.join(column[name] for name in unique_fields)}) DO UPDATE SET {assignments}"
    sql = (
        f"INSERT INTO {table} ({columns}) SELECT {values} "
        f"FROM jsonb_to_recordset(%s::jsonb) AS t({record}){conflict} RETURNING {pk}"
    )
    return sql, fields


def _is_json(field: models.Field) -> bool:
    return isinstance(field, models.JSONField)


def _record_type(field: models.Field) -> str:
    if _is_json(field):
        return "text"
    db_type = field.db_type(connection)
    return "text" if db_type.startswith("varchar") else db_type


def _value(obj: models.Model, field: models.Field):
    """The column's value as orjson will write it: the Python value itself (ints, strings, aware datetimes,
    UUIDs and None serialise as PostgreSQL reads them), JSON as its encoder's text."""
    value = field.pre_save(obj, True)  # what bulk_create stores: defaults and auto_now_add included
    if _is_json(field):
        return json.dumps(value, cls=field.encoder)
    return value


def bulk_insert(objs: list[models.Model]) -> list[models.Model]:
    """Insert these new objects of one model and set their primary keys, as bulk_create does."""
    if not objs:
        return objs
    model = type(objs[0])
    if connection.vendor != "postgresql":
        return model.objects.bulk_create(objs)
    return _write(objs, *_statement(model))


def bulk_upsert(objs: list[models.Model], *, unique_fields: list[str], update_fields: list[str]) -> list[models.Model]:
    """Insert these objects, or replace `update_fields` of the row that has the same `unique_fields`, as
    bulk_create(update_conflicts=True) does; sets their primary keys."""
    if not objs:
        return objs
    model = type(objs[0])
    if connection.vendor != "postgresql":
        return model.objects.bulk_create(
            objs, update_conflicts=True, unique_fields=unique_fields, update_fields=update_fields
        )
    return _write(objs, *_statement(model, tuple(unique_fields), tuple(update_fields)))


def _write(objs: list[models.Model], sql: str, fields: tuple[models.Field, ...]) -> list[models.Model]:
    rows = [{field.column: _value(obj, field) for field in fields} for obj in objs]
    with connection.cursor() as cursor:
        cursor.execute(sql, [orjson.dumps(rows).decode()])
        pks = [row[0] for row in cursor.fetchall()]
    for obj, pk in zip(objs, pks, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = connection.alias
    return objs
