"""Querysets whose SQL is built once per process.

Django builds a query's SQL anew on every call. For the few statements every
transition runs (the token look-up; locking and reading the appointment with
its client, service and therapist) that building was a large share of the
request's Python time: more than the round trip to PostgreSQL. `Prepared`
builds the SQL once, from the queryset made with placeholder values, and then
runs it with the real values, making the objects as Django's own iterator does
(the same converters, related objects and annotations).

Only for querysets whose shape does not depend on the values: one placeholder
value per named parameter, each appearing exactly once among the parameters
(checked when it is built), used in equality lookups. An integer no database
column can hold matches nothing, as Django's own lookups treat it.

`save_fields` and `insert_one` do the same for the UPDATE of a transition's
changed fields and the INSERT of one new row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.models import Model, QuerySet, signals
from django.db.models.query import get_related_populators
from django.db.transaction import TransactionManagementError

_BIGINT_MIN, _BIGINT_MAX = -(2**63), 2**63 - 1


def _as_is(value):
    return value


@dataclass
class _Compiled:
    sql: str
    params: list
    positions: dict[str, tuple[int, Callable]]
    for_update: bool
    model: type[Model] | None
    start: int
    end: int
    init_list: list[str]
    related: list
    annotations: dict[str, int]
    compiler: object
    converters: dict


class Prepared:
    def __init__(self, build: Callable[..., QuerySet], **placeholders):
        """`build(**values)` makes the queryset; `placeholders` give each value a
        stand-in of its type that appears nowhere else in the query."""
        self._build = build
        self._placeholders = placeholders
        self._compiled: dict[str, _Compiled] = {}

    def _compile(self, connection) -> _Compiled:
        queryset = self._build(**self._placeholders)
        compiler = queryset.query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        positions = {}
        for name, value in self._placeholders.items():
            # As the query holds it: a datetime may be adapted first (SQLite keeps text).
            adapt = connection.ops.adapt_datetimefield_value if isinstance(value, datetime) else _as_is
            held = adapt(value)
            found = [i for i, param in enumerate(params) if type(param) is type(held) and param == held]
            if len(found) != 1:
                raise ValueError(f"placeholder {name!r} appears {len(found)} times in the query's parameters")
            positions[name] = (found[0], adapt)
        select, klass_info = compiler.select, compiler.klass_info
        converters = compiler.get_converters([column[0] for column in select])
        common = {"sql": sql, "params": list(params), "positions": positions,
                  "for_update": queryset.query.select_for_update, "compiler": compiler, "converters": converters}
        if klass_info is None:  # values_list(): rows, not objects
            return _Compiled(**common, model=None, start=0, end=0, init_list=[], related=[], annotations={})
        fields = klass_info["select_fields"]
        start, end = fields[0], fields[-1] + 1
        return _Compiled(
            **common, model=klass_info["model"], start=start, end=end,
            init_list=[column[0].target.attname for column in select[start:end]],
            related=get_related_populators(klass_info, select, connection.alias),
            annotations=dict(compiler.annotation_col_map),
        )

    def fetch(self, **values) -> list[Model]:
        """The objects, as iterating the queryset would make them."""
        compiled, rows = self._run(values)
        objects = []
        for row in rows:
            obj = compiled.model.from_db(DEFAULT_DB_ALIAS, compiled.init_list, row[compiled.start:compiled.end])
            for populator in compiled.related:
                populator.populate(row, obj)
            for name, position in compiled.annotations.items():
                setattr(obj, name, row[position])
            objects.append(obj)
        return objects

    def rows(self, **values) -> list[tuple]:
        """The rows of a `values_list()` queryset."""
        return self._run(values)[1]

    def _run(self, values: dict) -> tuple[_Compiled | None, list]:
        if any(isinstance(value, int) and not _BIGINT_MIN <= value <= _BIGINT_MAX for value in values.values()):
            return None, []
        connection = connections[DEFAULT_DB_ALIAS]
        compiled = self._compiled.get(connection.vendor)
        if compiled is None:
            compiled = self._compiled[connection.vendor] = self._compile(connection)
        if compiled.for_update and connection.get_autocommit():
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        params = list(compiled.params)
        for name, (position, adapt) in compiled.positions.items():
            params[position] = adapt(values[name])
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        if compiled.converters:
            rows = [tuple(row) for row in compiled.compiler.apply_converters(rows, compiled.converters)]
        return compiled, rows


def _needs_django(obj: Model, fields: list) -> bool:
    """Save signal receivers to call, or a value that is an expression (F(), …):
    only Django's own save does those."""
    model = type(obj)
    return (signals.pre_save.has_listeners(model) or signals.post_save.has_listeners(model)
            or any(hasattr(getattr(obj, field.attname), "resolve_expression") for field in fields))


_UPDATES: dict[tuple, tuple[str, list]] = {}


def save_fields(obj: Model, *names: str) -> None:
    """`obj.save(update_fields=names)` with the UPDATE's SQL built once per model,
    fields and database: each field's value as Django saves it (`pre_save`, then
    `get_db_prep_save`), and the same error when no row matched. A model with
    save signal receivers, or a value that is an expression, takes Django's path."""
    model = type(obj)
    if _needs_django(obj, [model._meta.get_field(name) for name in names]):
        obj.save(update_fields=names)
        return
    connection = connections[DEFAULT_DB_ALIAS]
    key = (model, names, connection.vendor)
    plan = _UPDATES.get(key)
    if plan is None:
        meta, quote = model._meta, connection.ops.quote_name
        fields = [meta.get_field(name) for name in names]
        sets = ", ".join(f"{quote(field.column)} = %s" for field in fields)
        # Names from the model's own fields, quoted; every value is a parameter.
        sql = f"UPDATE {quote(meta.db_table)} SET {sets} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608
        plan = _UPDATES[key] = (sql, fields)
    sql, fields = plan
    params = [field.get_db_prep_save(field.pre_save(obj, False), connection) for field in fields]
    params.append(model._meta.pk.get_db_prep_value(obj.pk, connection))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount != 1:
            raise DatabaseError("Save with update_fields did not affect any rows.")


_INSERTS: dict[tuple, tuple[str, list, bool]] = {}


def insert_one(obj: Model) -> None:
    """`obj.save()` of a new row (what `objects.create` does) with the INSERT's
    SQL built once per model and database: every column's value as Django saves
    it (`pre_save` with `add`, then `get_db_prep_save`); sets the new id. A model
    with save signal receivers, or a value that is an expression, takes Django's path."""
    model = type(obj)
    meta = model._meta
    fields = [field for field in meta.local_concrete_fields
              if field is not meta.auto_field and not getattr(field, "generated", False)]
    if _needs_django(obj, fields):
        obj.save(force_insert=True)
        return
    connection = connections[DEFAULT_DB_ALIAS]
    key = (model, connection.vendor)
    plan = _INSERTS.get(key)
    if plan is None:
        quote = connection.ops.quote_name
        returning = connection.features.can_return_columns_from_insert
        # Names from the model's own fields, quoted; every value is a parameter.
        sql = (f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "  # noqa: S608
               f"VALUES ({', '.join(['%s'] * len(fields))})"
               + (f" RETURNING {quote(meta.pk.column)}" if returning else ""))
        plan = _INSERTS[key] = (sql, fields, returning)
    sql, fields, returning = plan
    params = [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        obj.pk = cursor.fetchone()[0] if returning else connection.ops.last_insert_id(
            cursor, meta.db_table, meta.pk.column)
    obj._state.adding = False
    obj._state.db = DEFAULT_DB_ALIAS
