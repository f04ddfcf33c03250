"""Reading `timestamptz` values from PostgreSQL without Django's per-value detour.

Django registers a loader that parses each value with psycopg's pure-Python
parser and then sets its zone: about 6 µs a value, which a page of 50
appointments (ten times each) or a sweep batch of 500 pays hundreds or
thousands of times. The connection speaks UTC (Django sets it), so the text is
ISO 8601 with a `+00` offset, which `datetime.fromisoformat` (C) reads in a
fraction of that. A value with another offset (a session someone switched to
another zone) is converted to the same instant in UTC; anything it cannot read
(infinity, BC dates) goes to Django's own loader. The values are what Django
gives: aware, in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime


def use_fast_loader(sender, connection, **kwargs) -> None:
    """`connection_created` receiver: on PostgreSQL with the connection in UTC,
    timestamptz values are read by `_UtcLoader`."""
    if connection.vendor != "postgresql" or connection.timezone is not UTC:
        return
    from django.db.backends.postgresql.psycopg_any import BaseTzLoader

    global _UtcLoader
    if _UtcLoader is None:

        class Loader(BaseTzLoader):
            timezone = UTC  # what Django's cursor set-up compares against: equal, so it keeps this one

            def load(self, data):
                try:
                    value = datetime.fromisoformat(bytes(data).decode())
                except ValueError:
                    return super().load(data)
                return value if value.tzinfo is UTC else value.astimezone(UTC)

        _UtcLoader = Loader
    connection.connection.adapters.register_loader("timestamptz", _UtcLoader)


_UtcLoader = None
