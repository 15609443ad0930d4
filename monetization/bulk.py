"""Set-based writes the ORM makes slow.

Django's ``bulk_update`` builds a ``CASE WHEN pk = ... THEN ...`` per field per row:
for a hundred rows of a dozen fields that expression tree costs more CPU than
the database spends on the statement. On PostgreSQL one ``UPDATE ... FROM unnest(...)`` does the same
with one array parameter per column.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from django.db import connections, router
from django.db.models import Model


def bulk_update_rows(objs: Sequence[Model], fields: Sequence[str]) -> None:
    """Write ``fields`` of every object in ``objs`` (all of one model) in one statement."""
    if not objs:
        return
    model = type(objs[0])
    connection = connections[router.db_for_write(model)]
    qn = connection.ops.quote_name
    pk = model._meta.pk
    columns = [pk, *(model._meta.get_field(name) for name in fields)]
    # One array per column, unnested side by side: a handful of parameters whatever the row count
    # (VALUES would bind rows x columns of them), each cast to its column's type.
    arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for field in columns)
    params = [[field.get_db_prep_save(getattr(obj, field.attname), connection) for obj in objs] for field in columns]
    table = qn(model._meta.db_table)
    assignments = ", ".join(f"{qn(f.column)} = v.{qn(f.column)}" for f in columns[1:])
    names = ", ".join(qn(f.column) for f in columns)
    # Identifiers come from model metadata (quoted), values are parameters.
    sql = f"UPDATE {table} AS t SET {assignments} FROM unnest({arrays}) AS v ({names}) WHERE t.{qn(pk.column)} = v.{qn(pk.column)}"  # noqa: S608, E501
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


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
