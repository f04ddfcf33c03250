"""The notifications half of the seam: rows, unread counts and socket messages."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import User
from notifications import delivery
from notifications.delivery import Note
from notifications.models import Notification
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def pile(user, count: int, *, read: bool = False) -> None:
    now = timezone.now()
    Notification.objects.bulk_create([
        Notification(recipient=user, kind="rejected", message=f"#{i}", created_at=now - timedelta(seconds=i),
                     read_at=now if read else None)
        for i in range(count)
    ])


def test_deliver_writes_one_row_per_recipient_and_returns_their_messages(operator, operator2, therapist):
    now = timezone.now()
    pile(operator, 3)
    messages = delivery.deliver([
        Note.to_operators("timeouts", "2 appointments cancelled without a response: #1, #2."),
        Note("timed_out", "You did not answer", therapist.id),
    ], now=now)
    rows = Notification.objects.filter(created_at=now).order_by("recipient_id")
    assert [(n.recipient_id, n.kind) for n in rows] == sorted(
        [(operator.id, "timeouts"), (operator2.id, "timeouts"), (therapist.id, "timed_out")])
    unread = {group: message["unread"] for group, message in messages}
    assert unread == {f"user_{operator.id}": 4, f"user_{operator2.id}": 1, f"user_{therapist.id}": 1}
    assert all(message["type"] == "notification" for _, message in messages)
    # Each message is its stored row, as the bell's API would show it.
    sent = {message["notification"]["id"]: (group, message["notification"]) for group, message in messages}
    assert sorted(sent) == sorted(n.id for n in rows)
    for n in rows:
        group, shown = sent[n.id]
        assert group == f"user_{n.recipient_id}"
        assert (shown["kind"], shown["message"], shown["is_read"]) == (n.kind, n.message, False)


def test_every_message_of_one_delivery_carries_the_recipients_count_after_it(operator, therapist):
    pile(therapist, 3)
    pile(therapist, 2, read=True)
    messages = delivery.deliver([
        Note("timed_out", "You did not answer #1", therapist.id),
        Note.to_operators("timeouts", "2 appointments cancelled"),
        Note("timed_out", "You did not answer #2", therapist.id),
    ], now=timezone.now())
    unread = [(group, message["unread"]) for group, message in messages]
    assert unread == [(f"user_{therapist.id}", 5), (f"user_{operator.id}", 1), (f"user_{therapist.id}", 5)]
    assert delivery.unread_count(therapist.id) == 5


def test_disabled_operators_are_not_notified(operator, operator2):
    operator2.is_active = False
    operator2.save()
    delivery.deliver([Note.to_operators("timeouts", "x")], now=timezone.now())
    assert list(Notification.objects.values_list("recipient_id", flat=True)) == [operator.id]


def test_unread_counts_are_exact_below_the_cap_and_capped_above(operator, operator2, therapist):
    pile(operator, 7)
    pile(operator, 5, read=True)
    pile(operator2, delivery.UNREAD_CAP + 20)
    assert delivery.unread_counts([operator.id, operator2.id, therapist.id]) == {
        operator.id: 7, operator2.id: delivery.UNREAD_CAP, therapist.id: 0}


def test_a_write_that_notifies_every_operator_costs_the_same_queries_however_many_are_unread(
        django_assert_num_queries):
    operators = [make_user(f"op{i}", "operator") for i in range(10)]
    # PostgreSQL: one statement inserts, finds the operators and counts; elsewhere a bounded count follows.
    statements = 1 if connection.vendor == "postgresql" else 2
    for count, shown in ((0, 1), (2000, delivery.UNREAD_CAP)):
        for person in operators:
            pile(person, count)
        with django_assert_num_queries(statements):
            messages = delivery.deliver([Note.to_operators("rejected", "Ana rejected #1")], now=timezone.now())
        assert len(messages) == 10
        assert {message["unread"] for _, message in messages} == {shown}


def about(user, appointment, kind: str, *, read: bool = False) -> Notification:
    now = timezone.now()
    return Notification.objects.create(recipient=user, kind=kind, appointment=appointment, message=f"{kind} #x",
                                       created_at=now, read_at=now if read else None)


def test_handled_items_become_read_for_everyone_with_each_recipients_count_after(
        operator, operator2, therapist, make_appointment, django_assert_max_num_queries):
    appt, other = make_appointment(), make_appointment()
    Notification.objects.all().delete()
    handled = [about(operator, appt, "rejected"), about(operator2, appt, "rejected"),
               about(operator2, appt, "needs_therapist")]
    kept = [about(operator, other, "rejected"), about(operator, appt, "confirmed"),
            about(therapist, appt, "assigned"), about(operator2, appt, "rejected", read=True)]
    pile(operator2, 4)
    now = timezone.now()
    # PostgreSQL: the update, the rows and the counts in one statement.
    with django_assert_max_num_queries(1 if connection.vendor == "postgresql" else 3):
        messages = delivery.mark_handled(appointment_id=appt.id, kinds=("rejected", "needs_therapist"), now=now)
    assert sorted(message["notification"]["id"] for _, message in messages) == sorted(n.id for n in handled)
    for group, message in messages:
        shown = message["notification"]
        assert shown["is_read"] is True and shown["read_at"] is not None
        assert group == f"user_{Notification.objects.get(pk=shown['id']).recipient_id}"
    unread = {group: message["unread"] for group, message in messages}
    # operator: the other appointment's and the "confirmed" item; operator2: the pile.
    assert unread == {f"user_{operator.id}": 2, f"user_{operator2.id}": 4}
    assert unread == {f"user_{u.id}": delivery.unread_count(u.id) for u in (operator, operator2)}
    assert all(n.read_at == now for n in Notification.objects.filter(pk__in=[n.id for n in handled]))
    assert [Notification.objects.get(pk=n.pk).read_at for n in kept] == [n.read_at for n in kept]
    # Nothing left to handle: nothing changes, nothing is sent.
    assert delivery.mark_handled(appointment_id=appt.id, kinds=("rejected",), now=timezone.now()) == []


def test_the_count_after_handling_is_exact_below_the_cap_and_the_cap_above(operator, operator2, make_appointment):
    appt = make_appointment()
    Notification.objects.all().delete()
    about(operator, appt, "rejected")
    about(operator2, appt, "rejected")
    pile(operator, delivery.UNREAD_CAP + 20)  # far above: still the cap once one is read
    pile(operator2, delivery.UNREAD_CAP - 1)  # the cap with the handled one, one less without it
    messages = delivery.mark_handled(appointment_id=appt.id, kinds=("rejected",), now=timezone.now())
    assert {group: message["unread"] for group, message in messages} == {
        f"user_{operator.id}": delivery.UNREAD_CAP, f"user_{operator2.id}": delivery.UNREAD_CAP - 1}


def notification_rows_read() -> int:
    """Entries of the notifications table and its indexes read so far in this
    transaction, whatever the plan (table scans, index and bitmap scans)."""
    # Tuples returned: by the table's own scans, and by each of its indexes.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_get_xact_tuples_returned(%s::regclass) + "
                       "(SELECT COALESCE(SUM(pg_stat_get_xact_tuples_returned(indexrelid)), 0) "
                       "FROM pg_index WHERE indrelid = %s::regclass)", [Notification._meta.db_table] * 2)
        return int(cursor.fetchone()[0])


@pytest.mark.services
@pytest.mark.usefixtures("postgres")
def test_counting_reads_at_most_the_cap_however_long_the_backlog(operator, operator2, make_appointment):
    """Every statement that counts unread items stops at the cap, with two
    operators thousands deep behind thousands they had read, and with the
    planner's statistics taken before the backlog built up."""
    appt = make_appointment()
    Notification.objects.all().delete()
    # The statistics of a quiet morning: a hundred people with a few unread items each.
    others = User.objects.bulk_create([User(username=f"t{i}", role="therapist") for i in range(100)])
    for person in others:
        pile(person, 20)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Notification._meta.db_table}")
    for person in (operator, operator2):
        pile(person, 4000, read=True)  # what they dealt with long ago, ahead of the rest in the table
        pile(person, 3000)
        about(person, appt, "rejected")
    now = timezone.now()
    for write in (lambda: delivery.unread_counts([operator.id, operator2.id]),
                  lambda: delivery.deliver([Note.to_operators("rejected", "Ana rejected #2")], now=now),
                  lambda: delivery.mark_handled(appointment_id=appt.id, kinds=("rejected",), now=now)):
        before = notification_rows_read()
        result = write()
        read = notification_rows_read() - before
        # Two recipients, each counted up to the cap (+ their one handled item), and the handled items found.
        assert read <= 2 * (delivery.UNREAD_CAP + 1) + 10, (read, result)
    assert delivery.unread_counts([operator.id, operator2.id]) == {
        operator.id: delivery.UNREAD_CAP, operator2.id: delivery.UNREAD_CAP}


@pytest.mark.services
@pytest.mark.usefixtures("postgres")
def test_a_count_planned_on_a_small_table_still_stops_at_the_cap(operator):
    """A pooled connection keeps the count's plan from its first calls, made on
    a table of a few rows; thousands of items later the count must still read
    no more than the cap, not every item the recipient ever had."""
    Notification.objects.all().delete()
    pile(operator, 3)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Notification._meta.db_table}")  # also drops the connection's cached plans
    for _ in range(8):  # past the calls after which PostgreSQL keeps one plan for the connection
        assert delivery.unread_counts([operator.id]) == {operator.id: 3}
    pile(operator, 5000, read=True)
    pile(operator, 300)
    before = notification_rows_read()
    assert delivery.unread_counts([operator.id]) == {operator.id: delivery.UNREAD_CAP}
    assert notification_rows_read() - before <= delivery.UNREAD_CAP + 10


def test_a_notification_is_indexed_by_its_recipient_once():
    """Every row written and every one marked read updates each index: the
    (recipient, read_at, -id) index serves every look-up by recipient, and no
    second index on the recipient alone is kept up beside it."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Notification._meta.db_table)
    by_recipient = [info["columns"] for info in constraints.values()
                    if info["index"] and info["columns"][:1] == ["recipient_id"]]
    assert by_recipient == [["recipient_id", "read_at", "id"]]
