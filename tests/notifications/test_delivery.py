"""The notifications half of the seam: rows, unread counts and socket messages."""

import json
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

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


def scans_of_notifications(plan: dict) -> list[dict]:
    found = [plan] if plan.get("Relation Name") == Notification._meta.db_table else []
    for child in plan.get("Plans", []):
        found += scans_of_notifications(child)
    return found


def rows_read_per_loop(statement: tuple[str, list]) -> int:
    """The most rows of the notifications table one scan node read (returned or
    filtered out) in one loop, running `statement` under EXPLAIN ANALYZE (rolled back)."""
    sql, params = statement
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
        transaction.set_rollback(True)
    plan = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    return max((node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
                + node.get("Rows Removed by Index Recheck", 0)) / max(1, node["Actual Loops"])
               for node in scans_of_notifications(plan))


@pytest.mark.services
@pytest.mark.usefixtures("postgres")
def test_counting_reads_at_most_the_cap_however_long_the_backlog(operator, operator2, make_appointment):
    """Every statement that counts unread items walks the index and stops at the
    cap: no scan of the notifications reads more rows than that in one go, with
    two operators thousands deep behind thousands they had read."""
    appt = make_appointment()
    Notification.objects.all().delete()
    for person in (operator, operator2):
        pile(person, 4000, read=True)  # what they dealt with long ago, ahead of the rest in the table
        pile(person, 3000)
        about(person, appt, "rejected")
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Notification._meta.db_table}")
    statements: list[tuple[str, list]] = []

    def record(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    now = timezone.now()
    for write in (lambda: delivery.unread_counts([operator.id, operator2.id]),
                  lambda: delivery.deliver([Note.to_operators("rejected", "Ana rejected #2")], now=now),
                  lambda: delivery.mark_handled(appointment_id=appt.id, kinds=("rejected",), now=now)):
        with transaction.atomic():
            with connection.execute_wrapper(record):
                assert write()  # each one counted somebody
            transaction.set_rollback(True)
    assert len(statements) == 3
    for statement in statements:
        assert rows_read_per_loop(statement) <= delivery.UNREAD_CAP + 1, statement[0]
