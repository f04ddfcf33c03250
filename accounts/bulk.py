"""Statements whose size does not grow with the batch: a batch insert, and a filter
on a list of ids. Every app may import this (it lives in accounts, which depends
on nothing of ours).

Django's `bulk_create` writes one placeholder per value: a sweep batch of 500
events is a statement with 4,000 placeholders, which Django assembles and
psycopg then parses and quotes one value at a time on every batch. On
PostgreSQL `insert_rows` sends one array per column instead
(`INSERT … SELECT … FROM unnest(%s::type[], …)`): the statement text is the same
for any number of rows and each array is adapted in one go. Elsewhere (the
embedded SQLite default) it is `bulk_create`.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.core.exceptions import EmptyResultSet
from django.db import connection, models
from django.db.models import F
from django.db.models.lookups import In

# Values psycopg adapts by itself exactly as Django would prepare them (numbers,
# text, aware datetimes, keys): no per-value call. The rest (JSON…) is prepared.
_TAKEN_AS_IS = (models.IntegerField, models.CharField, models.TextField, models.DateTimeField, models.BooleanField,
                models.ForeignKey)


def insert_rows(model: type[models.Model], fields: Sequence[str], rows: Sequence[Sequence]) -> list[int]:
    """Insert `rows` (values in the order of `fields`, attribute names such as
    `appointment_id`) and return their new ids in the same order."""
    if not rows:
        return []
    meta = model._meta
    if connection.vendor != "postgresql":
        created = model.objects.bulk_create([model(**dict(zip(fields, row, strict=True))) for row in rows])
        return [obj.pk for obj in created]
    columns = _columns(model, tuple(fields))
    quote = connection.ops.quote_name
    # A column with one value for every row (a batch's time, kind, actor…) is
    # sent once, not as an array of copies.
    selected, arrays, constants, unnest, aliases = [], [], [], [], []
    for i, (column, db_type) in enumerate(columns):
        if isinstance(column, _TAKEN_AS_IS):
            values = [row[i] for row in rows]
            if values.count(values[0]) == len(values):
                selected.append(f"%s::{db_type}")
                constants.append(values[0])
                continue
        else:
            prep = column.get_db_prep_save
            values = [prep(row[i], connection) for row in rows]
        selected.append(f"c{len(arrays)}")
        aliases.append(f"c{len(arrays)}")
        unnest.append(f"%s::{db_type}[]")
        arrays.append(values)
    if not arrays:  # every column constant: unnest one of them for the row count
        selected.append("c0")
        aliases.append("c0")
        unnest.append("%s::integer[]")
        arrays.append([0] * len(rows))
    names = ", ".join(quote(column.column) for column, _ in columns)
    aliases = ", ".join(aliases)
    # Ids come from the sequence in the order the SELECT yields the rows
    # (ORDER BY ord), so sorting the returned ids gives them in `rows` order.
    sql = (f"INSERT INTO {quote(meta.db_table)} ({names}) "  # noqa: S608 - quoted names and placeholders only
           f"SELECT {', '.join(selected[:len(columns)])} FROM unnest({', '.join(unnest)}) "
           f"WITH ORDINALITY AS r({aliases}, ord) ORDER BY ord "
           f"RETURNING {quote(meta.pk.column)}")
    with connection.cursor() as cursor:
        # Placeholders in order: the constants (in the SELECT list), then the arrays.
        cursor.execute(sql, [*constants, *arrays])
        return sorted(row[0] for row in cursor.fetchall())


_COLUMNS: dict[tuple, list] = {}


def _columns(model: type[models.Model], fields: tuple[str, ...]) -> list[tuple[models.Field, str]]:
    """Each field (a name or an attname such as `appointment_id`) with its
    PostgreSQL type, worked out once: a key's type is derived anew on every call."""
    key = (model, fields)
    if key not in _COLUMNS:
        _COLUMNS[key] = [(field, field.db_type(connection)) for field in map(model._meta.get_field, fields)]
    return _COLUMNS[key]


class AnyOf(In):
    """`field IN (…)` with one array parameter on PostgreSQL (`field = ANY(%s)`):
    the statement keeps one placeholder however many ids a batch names, instead of
    one per id for Django and psycopg to assemble and quote. Elsewhere it is `IN`.
    Used directly in `filter()`: `filter(AnyOf(F("id"), ids))`."""

    def as_postgresql(self, compiler, connection):
        values = [value for value in self.rhs if value is not None]
        if not values:
            raise EmptyResultSet
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", (*lhs_params, values)


def any_of(field: str, values) -> AnyOf:
    return AnyOf(F(field), list(values))
