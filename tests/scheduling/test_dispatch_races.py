"""Reassigning while the therapist answers, on PostgreSQL: real threads, each with
its own connection, released together by a barrier (see test_races.py)."""

from collections import Counter
from datetime import timedelta

import pytest

from scheduling import workflow
from scheduling.models import Appointment, AppointmentEvent

from .test_races import TRIALS, one_winner, race, slot

pytestmark = pytest.mark.usefixtures("transactional_db", "postgres")


def kinds_after_offer(appt) -> list[tuple[str, str]]:
    return list(appt.events.exclude(kind__in=["created", "assigned"]).order_by("id")
                .values_list("kind", "from_status"))


def test_reassign_and_accept_at_once_one_of_them_wins_the_offer(make_appointment, operator, therapist, therapist_b):
    """Whoever takes the appointment's lock first wins the pending offer. If the
    reassign does, the late accept is refused with a 409 that says why. If the
    accept does, the reassign that follows acts on a confirmed appointment, which
    an operator may also reassign: the therapist is told. Either way the operator's
    decision stands and nothing is lost or doubled."""
    orders = Counter()
    for trial in range(TRIALS):
        appt = make_appointment("pending", therapist, starts_in=slot(trial))
        outcomes = race(
            lambda appt=appt: workflow.reassign(actor=operator, appointment_id=appt.pk, therapist_id=therapist_b.id,
                                                reason="Ana is not answering"),
            lambda appt=appt: workflow.accept(actor=therapist, appointment_id=appt.pk),
        )
        assert outcomes[0][0] == "ok", outcomes
        appt.refresh_from_db()
        assert (appt.status, appt.therapist_id) == ("pending", therapist_b.id)
        if outcomes[1] == ("refused", "invalid_transition"):
            orders["reassign first"] += 1
            assert kinds_after_offer(appt) == [("reassigned", "pending")]
        else:
            assert outcomes[1][0] == "ok", outcomes
            orders["accept first"] += 1
            assert kinds_after_offer(appt) == [("accepted", "pending"), ("reassigned", "confirmed")]
        assert therapist.notifications.filter(appointment=appt, kind="reassigned").count() == 1
        assert therapist_b.notifications.filter(appointment=appt, kind="assigned").count() == 1
    assert sum(orders.values()) == TRIALS
    print(f"reassign vs accept over {TRIALS} trials: {dict(orders)}")


def test_reassign_and_reject_at_once_exactly_one_wins(make_appointment, operator, therapist, therapist_b):
    for trial in range(TRIALS):
        appt = make_appointment("pending", therapist, starts_in=slot(trial))
        outcomes = race(
            lambda appt=appt: workflow.reassign(actor=operator, appointment_id=appt.pk, therapist_id=None,
                                                reason="Client asked for someone else"),
            lambda appt=appt: workflow.reject(actor=therapist, appointment_id=appt.pk, reason="Too far"),
        )
        # A rejected appointment waits for review: it can no longer be reassigned.
        winner = one_winner(outcomes, "invalid_transition")
        appt.refresh_from_db()
        assert (appt.status, appt.therapist_id) == [("pending", None), ("rejected", therapist.id)][winner]
        assert [kind for kind, _ in kinds_after_offer(appt)] == [["reassigned"], ["rejected"]][winner]


def test_reassign_and_assign_of_one_therapist_to_overlapping_slots_one_wins(
        make_appointment, operator, operator2, therapist, therapist_b):
    """The new therapist's row lock: two operators cannot both book Bea into
    overlapping slots, one by reassign and one by assign."""
    for trial in range(TRIALS):
        held = make_appointment("confirmed", therapist, starts_in=slot(trial))
        other = make_appointment("pending", starts_in=slot(trial) + timedelta(minutes=30))
        outcomes = race(
            lambda held=held: workflow.reassign(actor=operator, appointment_id=held.pk, therapist_id=therapist_b.id,
                                                reason="Ana is ill"),
            lambda other=other: workflow.assign(actor=operator2, appointment_id=other.pk, therapist_id=therapist_b.id),
        )
        winner = one_winner(outcomes, "therapist_unavailable")
        bea_holds = set(Appointment.objects.filter(therapist=therapist_b, pk__in=[held.pk, other.pk])
                        .values_list("pk", flat=True))
        assert bea_holds == [{held.pk}, {other.pk}][winner]
        assert AppointmentEvent.objects.filter(appointment__in=[held, other],
                                               kind__in=["reassigned", "assigned"], therapist=therapist_b).count() == 1
