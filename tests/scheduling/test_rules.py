"""The rules that have one name on the model: overdue, the latest rejection, and
what the operators are told when a batch of work is lost or handled."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from notifications.models import Notification
from scheduling import workflow
from scheduling.models import Appointment, AppointmentRejection
from tests.conftest import make_therapist

pytestmark = pytest.mark.django_db


def test_overdue_is_one_rule_for_one_row_and_for_many(make_appointment, therapist, therapist_b):
    late = make_appointment("pending", therapist)
    answered = make_appointment("confirmed", therapist_b, starts_in=timedelta(hours=5))
    unassigned = make_appointment("pending")
    at_deadline = late.response_deadline
    for moment, expected in ((at_deadline - timedelta(seconds=1), set()), (at_deadline, {late.id})):
        overdue = set(Appointment.objects.overdue(moment).values_list("id", flat=True))
        assert overdue == expected
        rows = Appointment.objects.filter(id__in=[late.id, answered.id, unassigned.id])
        assert {a.id for a in rows if a.is_overdue(moment)} == expected
        assert set(Appointment.objects.not_overdue(moment).values_list("id", flat=True)) == (
            {late.id, answered.id, unassigned.id} - expected)


def test_latest_rejection_is_loaded_for_a_whole_list_in_one_query(
        make_appointment, therapist, therapist_b, django_assert_num_queries):
    first = make_appointment("rejected", therapist)
    second = make_appointment("rejected", therapist_b, starts_in=timedelta(hours=6))
    with django_assert_num_queries(2):
        rows = list(Appointment.objects.filter(id__in=[first.id, second.id]).with_latest_rejection())
        assert {a.id: a.latest_rejection.therapist_id for a in rows} == {
            first.id: therapist.id, second.id: therapist_b.id}


def test_reading_latest_rejection_without_loading_it_fails_instead_of_querying(make_appointment, therapist):
    appt = make_appointment("rejected", therapist)
    with pytest.raises(RuntimeError, match="with_latest_rejection"):
        _ = appt.latest_rejection
    AppointmentRejection.attach_latest([appt])
    assert appt.latest_rejection.reason == "Family emergency"


def test_a_disabled_therapists_other_open_jobs_are_named_to_every_operator(
        make_appointment, therapist, operator, operator2):
    missed = make_appointment("pending", therapist)
    tomorrow = make_appointment("confirmed", therapist, starts_in=timedelta(hours=20))
    with time_machine.travel(timezone.now() + timedelta(minutes=20)):
        later = make_appointment("pending", therapist, starts_in=timedelta(hours=30))  # answer still due
    with time_machine.travel(missed.response_deadline + timedelta(seconds=1), tick=False):
        workflow.sweep()
    later.refresh_from_db()
    assert later.status == "pending"
    for person in (operator, operator2):
        [note] = Notification.objects.filter(recipient=person, kind="needs_attention")
        assert note.message.startswith(f"Ana Cruz was disabled and still holds #{tomorrow.id} (")
        assert f"#{later.id} (" in note.message and f"#{missed.id}" not in note.message
        assert note.message.endswith("Reassign or cancel them.")
        assert note.appointment_id is None  # it names two


def test_a_therapist_disabled_with_nothing_else_open_raises_no_attention_note(make_appointment, therapist, operator):
    missed = make_appointment("pending", therapist)
    with time_machine.travel(missed.response_deadline + timedelta(seconds=1), tick=False):
        workflow.sweep()
    assert not Notification.objects.filter(kind="needs_attention").exists()


def test_a_reviewed_rejection_is_handled_for_every_operator(
        make_appointment, therapist, operator, operator2, django_capture_on_commit_callbacks, settings):
    appt = make_appointment("rejected", therapist)
    assert Notification.objects.filter(kind="rejected", read_at__isnull=True).count() == 2
    unrelated = Notification.objects.create(recipient=operator2, kind="assigned", message="x",
                                            created_at=timezone.now())
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    with django_capture_on_commit_callbacks() as callbacks:
        workflow.review_rejection(actor=operator, appointment_id=appt.id, decision="deny", note="Please go")
    assert not Notification.objects.filter(kind="rejected", read_at__isnull=True).exists()
    unrelated.refresh_from_db()
    assert unrelated.read_at is None
    assert callbacks  # the read items go back to the open pages


def test_a_digest_names_twenty_appointments_then_counts_the_rest(client_obj, service, operator):
    from tests.scheduling.test_auto_cancel_overdue import bulk_overdue

    therapists = [make_therapist(f"t{i}", service) for i in range(3)]
    appts = bulk_overdue(25, therapists, client=client_obj, service=service)
    workflow.sweep()
    [digest] = Notification.objects.filter(recipient=operator, kind="timeouts")
    ordered = sorted(appts, key=lambda a: (a.response_deadline, a.id))
    assert digest.message == (
        "25 appointments cancelled without a response: "
        + ", ".join(f"#{a.id}" for a in ordered[:20]) + " and 5 more; 3 therapists disabled.")
