"""Set-based writes the ORM makes slow.

Django's ``bulk_update`` builds a ``CASE WHEN pk = ... THEN ...`` per field per row:
for a hundred rows of a dozen fields that expression tree costs more CPU than
the database spends on the statement. Its ``bulk_create`` binds one array per column
(``UNNEST``), which psycopg, binding on the client, quotes element by element in Python:
for a worker's batch of audit rows, payments and journal entries, a tenth of its CPU.
Here the rows travel as one JSON document (one parameter, serialized and quoted in C),
read back column by column and cast to each column's type on the server.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import connections, router
from django.db.models import AutoField, Model
from django.db.models.expressions import DatabaseDefault
from psycopg.types.json import Jsonb

# How a prepared value (``Field.get_db_prep_save``) goes into the JSON document, by exact type: as it is,
# or as the text PostgreSQL reads back into the column's type (the same value as a bound parameter).
_AS_IS = frozenset({str, int, bool, type(None)})


def _as_text(value: Any) -> Any:
    kind = type(value)
    if kind in _AS_IS:
        return value
    if kind is datetime.datetime or kind is datetime.date:
        return value.isoformat()
    if kind is decimal.Decimal:
        return str(value)
    if isinstance(value, Jsonb):
        # Serialized with the field's own encoder, as psycopg would (read back with ``::jsonb``).
        data = (value.dumps or json.dumps)(value.obj)
        return data if isinstance(data, str) else bytes(data).decode()
    if isinstance(value, str):  # a choices member
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (datetime.date, datetime.time)):  # datetimes too; a test clock's subclasses
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise _Unsupported(kind)


class _Unsupported(Exception):
    pass


def _cast(field, connection) -> str:
    # The base type, without length or precision (varchar, numeric): no silent truncation, as Django's UNNEST.
    return field.db_type(connection).split("(")[0]


# Columns whose values the ORM writes as they are when they already have the column's Python type: read from
# the instance directly. The ORM's preparation of each value (``pre_save``, ``get_db_prep_save``: a few
# microseconds a value, a few hundred values a batch) was most of what was left of the batch's writes.
_PLAIN: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(("CharField", "TextField", "SlugField", "EmailField", "URLField"), (str,)),
    **dict.fromkeys(
        (
            "IntegerField",
            "BigIntegerField",
            "SmallIntegerField",
            "PositiveIntegerField",
            "PositiveSmallIntegerField",
            "PositiveBigIntegerField",
            "AutoField",
            "BigAutoField",
            "SmallAutoField",
        ),
        (int,),
    ),
    "BooleanField": (bool,),
}
_MISSING = object()


def _reader(field, connection, *, insert: bool) -> Callable[[Model], Any]:
    """How to read ``field``'s value of an instance for the JSON document: what the ORM would write."""
    attname = field.attname

    def prepared(obj: Model) -> Any:
        value = field.pre_save(obj, True) if insert else getattr(obj, attname)
        return _as_text(field.get_db_prep_save(value, connection))

    if insert and (getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)):
        return prepared
    kind = (field.target_field if field.is_relation else field).get_internal_type()
    types = _PLAIN.get(kind)
    if types is not None:

        def plain(obj: Model) -> Any:
            value = obj.__dict__.get(attname, _MISSING)
            return value if value is None or type(value) in types else prepared(obj)

        return plain
    if kind == "DateTimeField":

        def moment(obj: Model) -> Any:
            value = obj.__dict__.get(attname, _MISSING)
            if type(value) is datetime.datetime and value.tzinfo is not None:
                return value.isoformat()
            return None if value is None else prepared(obj)

        return moment
    if kind == "DecimalField":  # django-money's amounts too: the instance holds the Decimal

        def number(obj: Model) -> Any:
            value = obj.__dict__.get(attname, _MISSING)
            if type(value) is decimal.Decimal and value.is_finite():
                return str(value)
            return None if value is None else prepared(obj)

        return number
    return prepared


def _rows_json(objs: Sequence[Model], fields, connection, *, insert: bool) -> str:
    readers = [_reader(field, connection, insert=insert) for field in fields]
    return json.dumps([[read(obj) for read in readers] for obj in objs], separators=(",", ":"))


def bulk_update_rows(objs: Sequence[Model], fields: Sequence[str]) -> None:
    """Write ``fields`` of every object in ``objs`` (all of one model) in one statement."""
    if not objs:
        return
    model = type(objs[0])
    connection = connections[router.db_for_write(model)]
    qn = connection.ops.quote_name
    pk = model._meta.pk
    columns = [pk, *(model._meta.get_field(name) for name in fields)]
    table = qn(model._meta.db_table)
    assignments = ", ".join(f"{qn(f.column)} = (v.r->>{i})::{_cast(f, connection)}" for i, f in enumerate(columns) if i)
    try:
        document = _rows_json(objs, columns, connection, insert=False)
    except _Unsupported:
        model.objects.bulk_update(objs, fields)
        return
    # Identifiers come from model metadata (quoted), values are the one parameter.
    sql = (
        f"UPDATE {table} AS t SET {assignments} FROM jsonb_array_elements(%s::jsonb) AS v (r) "  # noqa: S608
        f"WHERE t.{qn(pk.column)} = (v.r->>0)::{_cast(pk, connection)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [document])


def bulk_insert_rows(objs: Sequence[Model]) -> Sequence[Model]:
    """``bulk_create(objs)`` (all of one model, no conflict handling) in one statement whose rows are one
    JSON parameter; the objects get their primary keys. The same values as ``bulk_create`` writes (each
    field's ``pre_save`` and ``get_db_prep_save``); a value of a type it does not carry (anything but text,
    integers, booleans, dates, times, decimals, UUIDs and JSON) leaves the batch to ``bulk_create``."""
    if not objs:
        return objs
    model = type(objs[0])
    opts = model._meta
    pk = opts.pk
    for obj in objs:
        if not obj._is_pk_set():
            obj.pk = pk.get_pk_value_on_save(obj)
        obj._prepare_related_fields_for_save(operation_name="bulk_create")
    with_pk = {obj._is_pk_set() for obj in objs}
    generated_pk = with_pk == {False}
    if len(objs) < 2 or len(with_pk) > 1 or (generated_pk and not isinstance(pk, AutoField)):
        return model.objects.bulk_create(objs)
    connection = connections[router.db_for_write(model)]
    fields = [
        f
        for f in opts.concrete_fields
        if not f.generated
        and not (f is pk and generated_pk)
        and not isinstance(getattr(objs[0], f.attname), DatabaseDefault)
    ]
    try:
        document = _rows_json(objs, fields, connection, insert=True)
    except _Unsupported:
        return model.objects.bulk_create(objs)
    qn = connection.ops.quote_name
    columns = ", ".join(qn(f.column) for f in fields)
    values = ", ".join(f"(v.r->>{i})::{_cast(f, connection)}" for i, f in enumerate(fields))
    returning = f" RETURNING {qn(pk.column)}" if generated_pk else ""
    # Inserted in the document's order, so the returned keys are in the objects' order (as bulk_create's).
    sql = (
        f"INSERT INTO {qn(opts.db_table)} ({columns}) SELECT {values} "  # noqa: S608
        f"FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS v (r, n) ORDER BY v.n{returning}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [document])
        if generated_pk:
            for obj, (key,) in zip(objs, cursor.fetchall(), strict=True):
                obj.pk = key
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias
    return objs


# Array parameters of thousands of elements (a lifecycle sweep's chunk): with client-side binding psycopg
# quotes them element by element in Python (9 ms for 6,667 keys, 4 ms for as many ids). As one string
# they cost a join: a literal for integers, JSON for text (whatever characters it holds).


def int_array_param(values: Iterable[int]) -> str:
    """Integers as one array literal; cast it in SQL: ``%s::bigint[]``."""
    return "{" + ",".join(str(int(v)) for v in values) + "}"


TEXT_ARRAY_FROM_JSON = "ARRAY(SELECT jsonb_array_elements_text({}::jsonb))"


def text_array_param(values: Iterable[str]) -> str:
    """Strings as one JSON parameter; read it in SQL with ``TEXT_ARRAY_FROM_JSON.format("%s")`` (a text[])."""
    return json.dumps(list(values))
