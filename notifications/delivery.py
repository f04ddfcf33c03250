"""What the system says to people: the notifications half of the workflow's seam.

The workflow decides what to say to whom (`Note`s); `deliver` writes the rows of
a whole batch with one `bulk_create`, reads the recipients' unread counts with
one bounded query, and returns the socket messages for the caller to publish
after its commit. The unread count is bounded (`UNREAD_CAP`): a write that
notifies every operator costs the same whether they have ten unread items or ten
thousand; the bell shows "99+" long before the cap matters.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from accounts.models import User

from . import realtime
from .models import Notification
from .payloads import notification_json

UNREAD_CAP = 1000

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


def deliver(notes: Iterable[Note], *, now: datetime) -> list[realtime.Message]:
    """Store `notes` (one query) and return their socket messages, each carrying
    its recipient's unread count (one more query). Operators are looked up once."""
    notes = list(notes)
    if not notes:
        return []
    operators: list[int] | None = None
    rows: list[Notification] = []
    for note in notes:
        if note.recipient_id is None:
            if operators is None:
                operators = active_operator_ids()
            recipients = operators
        else:
            recipients = [note.recipient_id]
        rows.extend(
            Notification(recipient_id=rid, kind=note.kind, appointment_id=note.appointment_id,
                         message=note.message[:1000], created_at=now)
            for rid in recipients
        )
    rows = Notification.objects.bulk_create(rows)
    unread = unread_counts({n.recipient_id for n in rows})
    return [_message(n, unread) for n in rows]


def mark_handled(*, appointment_id: int, kinds: Iterable[str], now: datetime) -> list[realtime.Message]:
    """Someone dealt with it: everybody's unread `kinds` items about this appointment
    become read, and each recipient's open pages get the item back as read (they
    update it in place, without a toast) with their new unread count."""
    unread = Notification.objects.filter(appointment_id=appointment_id, kind__in=list(kinds), read_at__isnull=True)
    items = list(unread)
    if not items:
        return []
    Notification.objects.filter(id__in=[n.id for n in items]).update(read_at=now)
    counts = unread_counts({n.recipient_id for n in items})
    for n in items:
        n.read_at = now
    return [_message(n, counts) for n in items]


def active_operator_ids() -> list[int]:
    return list(User.objects.filter(role=User.Role.OPERATOR, is_active=True).values_list("id", flat=True))


def unread_count(user_id: int) -> int:
    return unread_counts({user_id}).get(user_id, 0)


def unread_counts(user_ids: Iterable[int]) -> dict[int, int]:
    """Each user's unread notifications, counted up to `UNREAD_CAP`: one query that
    reads at most `UNREAD_CAP` index entries per user."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    table = connection.ops.quote_name(Notification._meta.db_table)
    if connection.vendor == "postgresql":
        # The same bounded count, written once and run for each id of the array:
        # PostgreSQL plans one subquery instead of one per user (planning a UNION
        # of 500 took about a second, a sweep batch's largest cost).
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT u.id, (SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE recipient_id = u.id "  # noqa: S608
                f"AND read_at IS NULL LIMIT {UNREAD_CAP}) AS capped) FROM unnest(%s::bigint[]) AS u(id)", [ids])
            return {int(user_id): int(count) for user_id, count in cursor.fetchall()}
    # One bounded scalar subquery per user, over the (recipient, read_at) index.
    selects = " UNION ALL ".join(
        [f"SELECT %s, (SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE recipient_id = %s "  # noqa: S608
         f"AND read_at IS NULL LIMIT {UNREAD_CAP}) AS capped)"] * len(ids)
    )
    params: list[int] = []
    for user_id in ids:
        params += [user_id, user_id]
    with connection.cursor() as cursor:
        cursor.execute(selects, params)
        return {int(user_id): int(count) for user_id, count in cursor.fetchall()}


def _message(notification: Notification, unread: dict[int, int]) -> realtime.Message:
    return (realtime.user_group(notification.recipient_id), {
        "type": "notification", "notification": notification_json(notification),
        "unread": unread.get(notification.recipient_id, 0),
    })
