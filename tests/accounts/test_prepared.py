"""`accounts.prepared.Prepared`: a queryset's SQL built once, run with new values,
giving the same objects Django's own queryset gives."""

from datetime import timedelta

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, signals
from django.db.models.sql.compiler import SQLCompiler
from django.db.transaction import TransactionManagementError

from accounts.prepared import Prepared, insert_one, save_fields
from scheduling.models import Appointment, AppointmentRejection

pytestmark = pytest.mark.django_db


def appointment_with_relations(appointment_id):
    return (Appointment.objects.select_related("client", "service", "therapist")
            .annotate(rejected_before=Exists(AppointmentRejection.objects.filter(appointment=OuterRef("pk"))))
            .filter(pk=appointment_id))


def described(appt: Appointment) -> tuple:
    return (appt.id, appt.status, appt.starts_at, appt.response_deadline, appt.client.name, appt.service.name,
            appt.therapist.username if appt.therapist else None, appt.rejected_before)


def test_the_same_objects_as_the_queryset_with_the_sql_built_once(make_appointment, therapist, monkeypatch):
    rejected = make_appointment("rejected", therapist)
    pending = make_appointment("pending", therapist, starts_in=timedelta(hours=6))
    unassigned = make_appointment("pending")
    prepared = Prepared(appointment_with_relations, appointment_id=-(2**62))
    built = []
    original = SQLCompiler.as_sql
    monkeypatch.setattr(SQLCompiler, "as_sql", lambda self, *a, **k: built.append(1) or original(self, *a, **k))

    expected = [described(next(iter(appointment_with_relations(a.id)))) for a in (rejected, pending, unassigned)]
    per_run = len(built) // 3  # the query and its EXISTS subquery, built anew each time
    built.clear()
    got = [described(prepared.fetch(appointment_id=a.id)[0]) for a in (rejected, pending, unassigned)]
    assert got == expected
    assert [row[-1] for row in got] == [True, False, False]  # the annotation
    assert got[2][6] is None  # no therapist: the related object is None, as Django makes it
    assert prepared.fetch(appointment_id=10**12) == []
    assert prepared.fetch(appointment_id=10**30) == []  # no id that size: nothing, not a database error
    assert len(built) == per_run  # built once, run four times
    [obj] = prepared.fetch(appointment_id=pending.id)
    assert obj._state.adding is False and obj._state.db == "default"


@pytest.mark.django_db(transaction=True)  # outside the test's own transaction
def test_a_locking_query_refuses_to_run_outside_a_transaction(make_appointment):
    appt = make_appointment()
    prepared = Prepared(lambda appointment_id: Appointment.objects.select_for_update().filter(pk=appointment_id),
                        appointment_id=-(2**62))
    with transaction.atomic():
        assert [a.id for a in prepared.fetch(appointment_id=appt.id)] == [appt.id]
    if connection.vendor == "postgresql":  # SQLite has no FOR UPDATE: nothing to refuse there
        with pytest.raises(TransactionManagementError):
            prepared.fetch(appointment_id=appt.id)


def test_a_placeholder_must_stand_for_exactly_one_parameter():
    twice = Prepared(lambda n: Appointment.objects.filter(pk=n, client_id=n), n=-(2**62))
    with pytest.raises(ValueError, match="appears 2 times"):
        twice.fetch(n=1)


def test_rows_of_a_values_list_are_the_querysets_rows(make_appointment, therapist):
    appts = [make_appointment("pending", therapist, starts_in=timedelta(hours=h)) for h in (3, 5)]

    def shape(therapist_id):
        return Appointment.objects.filter(therapist_id=therapist_id).order_by("id").values_list(
            "id", "starts_at", "location")

    prepared = Prepared(shape, therapist_id=-(2**62))
    assert prepared.rows(therapist_id=therapist.id) == list(shape(therapist.id))
    assert [row[0] for row in prepared.rows(therapist_id=therapist.id)] == [a.id for a in appts]
    assert prepared.rows(therapist_id=10**12) == []


def test_save_fields_writes_those_fields_as_save_does_and_nothing_else(make_appointment, therapist, monkeypatch):
    appt = make_appointment("pending", therapist)
    other = make_appointment("pending", therapist, starts_in=timedelta(hours=6))
    built = []
    original = SQLCompiler.as_sql
    monkeypatch.setattr(SQLCompiler, "as_sql", lambda self, *a, **k: built.append(1) or original(self, *a, **k))
    later = appt.updated_at + timedelta(minutes=7)
    appt.status, appt.therapist, appt.response_deadline, appt.updated_at = "rejected", None, None, later
    appt.location = "changed in memory only"
    save_fields(appt, "status", "therapist", "response_deadline", "updated_at")
    save_fields(appt, "status", "therapist", "response_deadline", "updated_at")  # the second from the cache

    assert built == []
    stored = Appointment.objects.get(pk=appt.pk)
    assert (stored.status, stored.therapist_id, stored.response_deadline, stored.updated_at) == (
        "rejected", None, None, later)
    assert stored.location != "changed in memory only"
    assert Appointment.objects.get(pk=other.pk).status == "pending"


def test_save_fields_on_a_row_that_is_gone_fails_as_save_does(make_appointment, therapist):
    appt = make_appointment("pending", therapist)
    Appointment.objects.filter(pk=appt.pk).delete()
    appt.status = "confirmed"
    with pytest.raises(DatabaseError, match="did not affect any rows"):
        save_fields(appt, "status")


def test_save_fields_leaves_signals_and_expressions_to_django(make_appointment, therapist):
    appt = make_appointment("pending", therapist)
    appt.offer_number = F("offer_number") + 4
    save_fields(appt, "offer_number")
    assert Appointment.objects.get(pk=appt.pk).offer_number == 5
    heard = []
    receiver = lambda sender, instance, **kw: heard.append(instance.pk)  # noqa: E731
    signals.post_save.connect(receiver, sender=Appointment)
    try:
        appt.status = "confirmed"
        save_fields(appt, "status")
    finally:
        signals.post_save.disconnect(receiver, sender=Appointment)
    assert heard == [appt.pk]


def row(model, pk) -> dict:
    return {key: value for key, value in model.objects.filter(pk=pk).values().get().items() if key != "id"}


def test_insert_one_writes_the_row_create_writes_and_sets_its_id(make_appointment, therapist, monkeypatch):
    first = make_appointment("pending", therapist)
    second = make_appointment("pending", therapist, starts_in=timedelta(hours=6))
    made = AppointmentRejection.objects.create(appointment=first, therapist=therapist, reason="Too far",
                                               created_at=first.updated_at)
    built = []
    original = SQLCompiler.as_sql
    monkeypatch.setattr(SQLCompiler, "as_sql", lambda self, *a, **k: built.append(1) or original(self, *a, **k))
    ours = AppointmentRejection(appointment=second, therapist=therapist, reason="Too far", created_at=first.updated_at)
    insert_one(ours)

    assert ours.pk and ours.pk != made.pk and not ours._state.adding
    assert built == []
    assert row(AppointmentRejection, ours.pk) == {**row(AppointmentRejection, made.pk), "appointment_id": second.id}
    assert row(AppointmentRejection, ours.pk)["reason_code"] == "other"  # the field's default


def test_insert_one_breaking_a_constraint_fails_as_create_does(make_appointment, therapist):
    appt = make_appointment("rejected", therapist)  # its open rejection exists
    again = AppointmentRejection(appointment=appt, therapist=therapist, reason="Again", created_at=appt.updated_at)
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_one(again)
    assert AppointmentRejection.objects.filter(appointment=appt).count() == 1
