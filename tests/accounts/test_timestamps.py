"""Timestamps read from PostgreSQL (accounts.timestamps): the fast loader gives
exactly what Django's own loader gives — aware datetimes in UTC — and hands
anything unusual to it."""

from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.backends.postgresql.psycopg_any import BaseTzLoader
from django.utils import timezone

from scheduling.models import Appointment

VALUES = ["2026-12-02 10:00:00+00", "2026-12-02 10:00:00.5+00", "2026-12-02 23:59:59.999999+00",
          "2026-12-31 16:30:00+00", "0001-01-01 00:00:00+00", "9999-12-31 23:59:59+00"]


def read(sql: str, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def test_values_match_djangos_own_loader(postgres):
    from accounts.timestamps import use_fast_loader

    connection.ensure_connection()
    use_fast_loader(None, connection)
    loader = connection.connection.adapters.get_loader(1184, 0)  # timestamptz, text
    assert loader.__module__ == "accounts.timestamps"
    ours = [row[0] for row in read("SELECT v::timestamptz FROM unnest(%s::text[]) v", [VALUES])]
    # Django's loader, on the same connection, for comparison.
    django_loader = type("DjangoUtc", (BaseTzLoader,), {"timezone": UTC})
    connection.connection.adapters.register_loader("timestamptz", django_loader)
    try:
        theirs = [row[0] for row in read("SELECT v::timestamptz FROM unnest(%s::text[]) v", [VALUES])]
    finally:
        use_fast_loader(None, connection)
    assert ours == theirs
    assert all(value.tzinfo is UTC for value in ours)
    assert ours[1] == datetime(2026, 12, 2, 10, 0, 0, 500000, tzinfo=UTC)


def test_a_session_in_another_zone_still_reads_utc(postgres):
    """If something changes the session's zone, the offset is no longer +00: the
    value still comes back as the same instant, in UTC."""
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Asia/Manila'")
        try:
            cursor.execute("SELECT '2026-12-02 10:00:00+00'::timestamptz")
            [(value,)] = cursor.fetchall()
        finally:
            cursor.execute("SET TIME ZONE 'UTC'")
    assert value == datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    assert value.tzinfo is UTC


def test_models_read_back_what_they_stored(postgres, make_appointment):
    appt = make_appointment("pending")
    moment = timezone.now().replace(microsecond=123456) + timedelta(days=400)
    Appointment.objects.filter(pk=appt.pk).update(offer_sent_at=moment)
    stored = Appointment.objects.get(pk=appt.pk)
    # Installed on every new connection (connection_created), not only by hand.
    assert connection.connection.adapters.get_loader(1184, 0).__module__ == "accounts.timestamps"
    assert stored.offer_sent_at == moment
    assert stored.offer_sent_at.tzinfo is UTC
