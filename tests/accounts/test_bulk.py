"""`accounts.bulk.insert_rows`: the batch insert behind every event and notification
the workflow writes. Event ids go out on the sockets, so they must come back in
the order of the rows, and every value must be stored as given."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.bulk import insert_rows
from scheduling.models import AppointmentEvent

COLUMNS = ("appointment_id", "kind", "actor_id", "therapist_id", "from_status", "to_status", "data", "created_at")


@pytest.mark.django_db
def test_rows_come_back_with_their_ids_in_order_and_stored_as_given(make_appointment, operator, therapist):
    appts = [make_appointment("pending") for _ in range(3)]
    now = timezone.now().replace(microsecond=123456)
    rows = []
    for n in range(300):
        appt = appts[n % 3]
        rows.append([appt.id, "timed_out" if n % 2 else "assigned", operator.id if n % 5 else None,
                     therapist.id if n % 7 else None, "pending", "cancelled",
                     {"n": n, "therapist_disabled": n == 0, "why": "naïve ‘quotes’ \" and ' and \\"},
                     now - timedelta(seconds=n)])
    before = AppointmentEvent.objects.count()

    ids = insert_rows(AppointmentEvent, COLUMNS, rows)

    assert len(ids) == len(set(ids)) == 300
    assert AppointmentEvent.objects.count() == before + 300
    stored = AppointmentEvent.objects.in_bulk(ids)
    for id_, row in zip(ids, rows, strict=True):
        assert [getattr(stored[id_], name) for name in COLUMNS] == row


@pytest.mark.django_db
@pytest.mark.parametrize("varying", [("appointment_id", "data"), ()])
def test_columns_with_one_value_for_every_row_are_stored_as_given(make_appointment, varying):
    """A sweep batch's events share their kind, statuses, actor (none) and time;
    those columns are sent once. With nothing varying at all, still one row each."""
    appts = [make_appointment("pending") for _ in range(3)]
    now = timezone.now().replace(microsecond=654321)
    rows = [[appts[n % 3].id if "appointment_id" in varying else appts[0].id, "timed_out", None, None,
             "pending", "cancelled", {"n": n} if "data" in varying else {}, now] for n in range(50)]

    ids = insert_rows(AppointmentEvent, COLUMNS, rows)

    stored = AppointmentEvent.objects.in_bulk(ids)
    assert len(stored) == 50
    for id_, row in zip(ids, rows, strict=True):
        assert [getattr(stored[id_], name) for name in COLUMNS] == row


@pytest.mark.django_db
def test_nothing_to_insert_is_no_statement(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert insert_rows(AppointmentEvent, COLUMNS, []) == []


@pytest.mark.django_db
def test_any_of_matches_what_in_matches(make_appointment, django_assert_num_queries):
    from accounts.bulk import any_of
    from scheduling.models import Appointment

    appts = [make_appointment("pending") for _ in range(4)]
    wanted = [appts[0].id, appts[2].id, None, 10**12]
    assert set(Appointment.objects.filter(any_of("id", wanted)).values_list("id", flat=True)) == {
        appts[0].id, appts[2].id}
    assert Appointment.objects.filter(any_of("id", wanted)).update(notes="picked") == 2
    assert set(Appointment.objects.filter(notes="picked").values_list("id", flat=True)) == {appts[0].id, appts[2].id}
    with django_assert_num_queries(0):  # nothing to match: no statement at all, as with IN
        assert list(Appointment.objects.filter(any_of("id", []))) == []


@pytest.mark.django_db
def test_rows_that_are_all_the_same_are_each_inserted(therapist):
    from accounts.models import AccountStatusChange

    now = timezone.now()
    row = [therapist.id, AccountStatusChange.Action.DISABLED, "No response", now]
    ids = insert_rows(AccountStatusChange, ("user_id", "action", "reason", "created_at"), [row] * 4)
    assert len(set(ids)) == 4
    assert [[c.user_id, c.action, c.reason, c.created_at] for c in AccountStatusChange.objects.filter(id__in=ids)] \
        == [row] * 4
