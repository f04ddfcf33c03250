"""What the system says to people: the notifications half of the workflow's seam.

The workflow decides what to say to whom (`Note`s); `deliver` writes the rows of
a whole batch with one statement (which finds the active operators itself and,
on PostgreSQL, also reads the recipients' unread counts, bounded), and returns
the socket messages for the caller to publish after its commit. The unread count
is bounded (`UNREAD_CAP`): a write that notifies every operator costs the same
whether they have ten unread items or ten thousand. The bell shows "99+" from
the cap on (`unread_badge`), so no page ever needs more than the cap: each count
reads at most that many index entries per recipient, and every one it reads
(with the rows read but not yet vacuumed beside them) is work on every write.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from accounts.models import User
from accounts.prepared import Prepared

from . import realtime
from .models import Notification
from .payloads import notification_json

UNREAD_CAP = 100

Kind = Notification.Kind


@dataclass(frozen=True)
class Note:
    """One thing to say: to `recipient_id`, or to every active operator when it is None."""

    kind: str
    message: str
    recipient_id: int | None = None
    appointment_id: int | None = None

    @classmethod
    def to_operators(cls, kind: str, message: str, appointment_id: int | None = None) -> Note:
        return cls(kind, message, None, appointment_id)


@dataclass(slots=True)
class _Written:
    """A notification row just written, as its socket message needs it (a plain
    record: a sweep batch writes hundreds)."""

    id: int
    recipient_id: int
    kind: str
    appointment_id: int | None
    message: str
    created_at: datetime
    read_at: datetime | None = None


def deliver(notes: Iterable[Note], *, now: datetime) -> list[realtime.Message]:
    """Store `notes` and return their socket messages, each carrying its
    recipient's unread count. On PostgreSQL that is one statement (it finds the
    operators and counts what each recipient had unread before, in the same
    statement); elsewhere an insert and the count."""
    notes = list(notes)
    if not notes:
        return []
    rows, unread_before = _insert(notes, now)
    if unread_before is None:
        unread = unread_counts({n.recipient_id for n in rows})
    else:
        new: dict[int, int] = {}
        for n in rows:
            new[n.recipient_id] = new.get(n.recipient_id, 0) + 1
        unread = {user_id: min(UNREAD_CAP, unread_before[user_id] + added) for user_id, added in new.items()}
    return [_message(n, unread) for n in rows]


def _insert(notes: list[Note], now: datetime) -> tuple[list[_Written], dict[int, int] | None]:
    """Write `notes`, each one to operators once per active operator, with one
    `INSERT … SELECT … RETURNING` that joins the operators itself. On PostgreSQL
    the notes travel as one array per column (a statement of the same size for
    any batch), and the statement also returns each recipient's unread count
    from before it (capped; its own rows are not visible to it); elsewhere the
    notes are a VALUES list and the counts are left to the caller (None)."""
    quote = connection.ops.quote_name
    notifications = quote(Notification._meta.db_table)
    columns = [list(range(len(notes))), [note.recipient_id for note in notes],
               [note.kind for note in notes], [note.appointment_id for note in notes],
               [note.message[:1000] for note in notes]]
    postgres = connection.vendor == "postgresql"
    if postgres:
        source = ("SELECT * FROM unnest(%s::integer[], %s::bigint[], %s::text[], %s::bigint[], %s::text[]) "
                  "AS n (pos, recipient_id, kind, appointment_id, message)")
        params: list = columns
    else:
        source = "VALUES " + ", ".join(["(%s, %s, %s, %s, %s)"] * len(notes))
        params = [value for row in zip(*columns, strict=True) for value in row]
    params += [Notification._meta.get_field("created_at").get_db_prep_value(now, connection), User.Role.OPERATOR]
    # Only placeholders and quoted table names are interpolated.
    insert = (
        f"INSERT INTO {notifications} (recipient_id, kind, appointment_id, message, created_at) "  # noqa: S608
        f"SELECT COALESCE(CAST(notes.recipient_id AS BIGINT), u.id), notes.kind, "
        f"CAST(notes.appointment_id AS BIGINT), notes.message, %s "
        f"FROM notes LEFT JOIN {quote(User._meta.db_table)} u "
        f"ON notes.recipient_id IS NULL AND u.role = %s AND u.is_active "
        f"WHERE notes.recipient_id IS NOT NULL OR u.id IS NOT NULL "
        f"ORDER BY notes.pos, u.id "
        f"RETURNING id, recipient_id, kind, appointment_id, message"
    )
    if postgres:
        sql = (
            f"WITH notes (pos, recipient_id, kind, appointment_id, message) AS ({source}), "  # noqa: S608
            f"written AS ({insert}), "
            f"recipients AS (SELECT DISTINCT recipient_id FROM written), "
            f"before AS (SELECT r.recipient_id, {_capped_unread('r.recipient_id')} AS unread "
            f"FROM recipients r) "
            f"SELECT w.id, w.recipient_id, w.kind, w.appointment_id, w.message, b.unread "
            f"FROM written w JOIN before b ON b.recipient_id = w.recipient_id"
        )
    else:
        sql = f"WITH notes (pos, recipient_id, kind, appointment_id, message) AS ({source}) {insert}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        written = sorted(cursor.fetchall())
    rows = [_Written(*row[:5], now) for row in written]
    return rows, ({row[1]: row[5] for row in written} if postgres else None)


# Everybody's unread items of some kinds about one appointment (assign, review,
# hold ask it on every call): one statement per set of kinds, its SQL built once.
_UNREAD_ABOUT: dict[tuple[str, ...], Prepared] = {}


def _unread_about(kinds: tuple[str, ...]) -> Prepared:
    prepared = _UNREAD_ABOUT.get(kinds)
    if prepared is None:
        prepared = _UNREAD_ABOUT[kinds] = Prepared(
            lambda appointment_id: Notification.objects.filter(
                appointment_id=appointment_id, kind__in=list(kinds), read_at__isnull=True),
            appointment_id=-(2**62) + 31)
    return prepared


def mark_handled(*, appointment_id: int, kinds: Iterable[str], now: datetime) -> list[realtime.Message]:
    """Someone dealt with it: everybody's unread `kinds` items about this appointment
    become read, and each recipient's open pages get the item back as read (they
    update it in place, without a toast) with their new unread count. On
    PostgreSQL that is one statement; elsewhere a read, the update and the count."""
    kinds = tuple(kinds)
    if connection.vendor == "postgresql":
        return _mark_handled_at_once(appointment_id, kinds, now)
    items = _unread_about(kinds).fetch(appointment_id=appointment_id)
    if not items:
        return []
    Notification.objects.filter(id__in=[n.id for n in items]).update(read_at=now)
    counts = unread_counts({n.recipient_id for n in items})
    for n in items:
        n.read_at = now
    return [_message(n, counts) for n in items]


@functools.cache
def _handled_sql() -> str:
    """`UPDATE … RETURNING` the items, with each recipient's unread count after it.
    The count runs on the statement's snapshot, where the items are still unread:
    it reads up to `UNREAD_CAP` + k index entries for a recipient with k of them
    and takes the k away, so it is exact below the cap and the cap above it."""
    notifications = connection.ops.quote_name(Notification._meta.db_table)
    # Only quoted table names and constants are interpolated.
    return (
        f"WITH handled AS (UPDATE {notifications} SET read_at = %s "  # noqa: S608
        f"WHERE appointment_id = %s AND kind = ANY(%s::text[]) AND read_at IS NULL "
        f"RETURNING id, recipient_id, kind, appointment_id, message, created_at), "
        f"per AS (SELECT recipient_id, COUNT(*) AS k FROM handled GROUP BY recipient_id), "
        f"after AS (SELECT per.recipient_id, "
        f"LEAST({UNREAD_CAP}, {_capped_unread('per.recipient_id', extra='per.k')} - per.k) AS unread FROM per) "
        f"SELECT h.id, h.recipient_id, h.kind, h.appointment_id, h.message, h.created_at, a.unread "
        f"FROM handled h JOIN after a ON a.recipient_id = h.recipient_id "
        f"ORDER BY h.created_at DESC, h.id DESC"
    )


def _mark_handled_at_once(appointment_id: int, kinds: tuple[str, ...], now: datetime) -> list[realtime.Message]:
    read_at = Notification._meta.get_field("read_at").get_db_prep_value(now, connection)
    with connection.cursor() as cursor:
        cursor.execute(_handled_sql(), [read_at, appointment_id, list(kinds)])
        rows = cursor.fetchall()
    counts = {row[1]: int(row[6]) for row in rows}
    return [_message(_Written(*row[:6], read_at=now), counts) for row in rows]


def unread_count(user_id: int) -> int:
    return unread_counts({user_id}).get(user_id, 0)


def unread_counts(user_ids: Iterable[int]) -> dict[int, int]:
    """Each user's unread notifications, counted up to `UNREAD_CAP`: one query that
    reads at most `UNREAD_CAP` index entries per user."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    users = connection.ops.quote_name(User._meta.db_table)
    sql = (f"SELECT u.id, {_capped_unread('u.id')} "  # noqa: S608
           f"FROM {users} u WHERE u.id IN ({', '.join(['%s'] * len(ids))})")
    with connection.cursor() as cursor:
        cursor.execute(sql, ids)
        return {int(user_id): int(count) for user_id, count in cursor.fetchall()}


def unread_badge(count: int) -> str:
    """What the bell shows: the count, or "99+" once it reaches the cap (the page's
    script applies the same rule to the counts that arrive live)."""
    return f"{UNREAD_CAP - 1}+" if count >= UNREAD_CAP else str(count)


def _capped_unread(recipient: str, *, extra: str = "") -> str:
    """SQL for `recipient`'s unread count, stopping after `UNREAD_CAP` (+ `extra`)
    entries of the (recipient, read_at, -id) index: the same cost however many
    are unread. On PostgreSQL a function holds the one plan that stops there (its
    migration, 0005, says why the planner, left to itself, did not; 0006 why the
    recipient has no other index it could walk instead)."""
    limit = f"{UNREAD_CAP} + {extra}" if extra else f"{UNREAD_CAP}"
    if connection.vendor == "postgresql":
        return f"notifications_unread_capped({recipient}, {limit})"
    notifications = connection.ops.quote_name(Notification._meta.db_table)
    return (f"(SELECT COUNT(*) FROM (SELECT 1 FROM {notifications} n "  # noqa: S608
            f"WHERE n.recipient_id = {recipient} AND n.read_at IS NULL "
            f"ORDER BY n.read_at, n.id DESC LIMIT {limit}) capped)")


def _message(notification: Notification | _Written, unread: dict[int, int]) -> realtime.Message:
    return (realtime.user_group(notification.recipient_id), {
        "type": "notification", "notification": notification_json(notification),
        "unread": unread.get(notification.recipient_id, 0),
    })
