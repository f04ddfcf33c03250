"""Concurrent writes on PostgreSQL: real threads, each with its own connection,
released together by a barrier. Exactly one wins; the other gets a clear 409."""

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
import time_machine
from django.db import connection

from scheduling import workflow
from scheduling.models import Appointment, AppointmentEvent, AppointmentRejection
from scheduling.workflow import WorkflowError

TRIALS = 10

pytestmark = pytest.mark.usefixtures("transactional_db", "postgres")


def race(*calls: Callable[[], object]) -> list[tuple[str, object]]:
    """Run each call in its own thread, all released at the same moment.
    Returns ("ok", result) or ("refused", code) per call, in order."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[tuple[str, object] | None] = [None] * len(calls)

    def run(index: int, call: Callable[[], object]) -> None:
        try:
            connection.ensure_connection()  # connect before the barrier, so the calls really overlap
            barrier.wait(timeout=10)
            outcomes[index] = ("ok", call())
        except WorkflowError as exc:
            outcomes[index] = ("refused", exc.code)
        except Exception as exc:
            outcomes[index] = ("crashed", repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a racing call hung"
    return outcomes


def one_winner(outcomes, loser_code: str) -> int:
    kinds = Counter(kind for kind, _ in outcomes)
    assert kinds == Counter({"ok": 1, "refused": 1}), outcomes
    loser = next(value for kind, value in outcomes if kind == "refused")
    assert loser == loser_code, outcomes
    return next(i for i, (kind, _) in enumerate(outcomes) if kind == "ok")


def slot(trial: int) -> timedelta:
    """Each trial books its own two hours, so trials never collide with each other."""
    return timedelta(hours=2 + 2 * trial)


def test_accept_and_reject_at_once_one_wins(make_appointment, therapist):
    for trial in range(TRIALS):
        appt = make_appointment("pending", therapist, starts_in=slot(trial))
        outcomes = race(
            lambda appt=appt: workflow.accept(actor=therapist, appointment_id=appt.pk),
            lambda appt=appt: workflow.reject(actor=therapist, appointment_id=appt.pk, reason="Sick"),
        )
        winner = one_winner(outcomes, "invalid_transition")
        appt.refresh_from_db()
        assert appt.status == ("confirmed", "rejected")[winner]
        kinds = list(appt.events.exclude(kind__in=["created", "assigned"]).values_list("kind", flat=True))
        assert kinds == [("accepted", "rejected")[winner]]
        assert AppointmentRejection.objects.filter(appointment=appt).count() == winner


def test_two_operators_review_the_same_rejection_one_wins(make_appointment, operator, operator2, therapist,
                                                          therapist_b):
    for trial in range(TRIALS):
        appt = make_appointment("rejected", therapist, starts_in=slot(trial))
        outcomes = race(
            lambda appt=appt: workflow.review_rejection(actor=operator, appointment_id=appt.pk, decision="accept"),
            lambda appt=appt: workflow.review_rejection(actor=operator2, appointment_id=appt.pk, decision="deny"),
        )
        winner = one_winner(outcomes, "already_reviewed")
        appt.refresh_from_db()
        assert appt.status == "pending"
        assert appt.therapist_id == (None, therapist.id)[winner]
        rejection = AppointmentRejection.objects.get(appointment=appt)
        assert rejection.review_decision == ("accept", "deny")[winner]
        assert rejection.reviewed_by_id == (operator.id, operator2.id)[winner]
        reviews = appt.events.filter(kind__in=["rejection_accepted", "rejection_denied"]).count()
        assert reviews == 1


def test_two_operators_assign_one_therapist_to_overlapping_appointments_one_wins(
        make_appointment, operator, operator2, therapist):
    for trial in range(TRIALS):
        first = make_appointment("pending", starts_in=slot(trial))
        second = make_appointment("pending", starts_in=slot(trial) + timedelta(minutes=30))
        outcomes = race(
            lambda first=first: workflow.assign(actor=operator, appointment_id=first.pk, therapist_id=therapist.id),
            lambda second=second: workflow.assign(actor=operator2, appointment_id=second.pk,
                                                  therapist_id=therapist.id),
        )
        winner = one_winner(outcomes, "therapist_unavailable")
        assigned = dict(Appointment.objects.filter(pk__in=[first.pk, second.pk]).values_list("pk", "therapist"))
        assert assigned == {first.pk: (therapist.id, None)[winner], second.pk: (None, therapist.id)[winner]}
        assert AppointmentEvent.objects.filter(appointment__in=[first, second], kind="assigned").count() == 1


def test_two_operators_assign_different_therapists_to_one_appointment_one_wins(
        make_appointment, operator, operator2, therapist, therapist_b):
    for trial in range(TRIALS):
        appt = make_appointment("pending", starts_in=slot(trial))
        outcomes = race(
            lambda appt=appt: workflow.assign(actor=operator, appointment_id=appt.pk, therapist_id=therapist.id),
            lambda appt=appt: workflow.assign(actor=operator2, appointment_id=appt.pk, therapist_id=therapist_b.id),
        )
        winner = one_winner(outcomes, "invalid_transition")
        appt.refresh_from_db()
        assert appt.therapist_id == (therapist.id, therapist_b.id)[winner]
        assert appt.events.filter(kind="assigned").count() == 1


def test_a_late_accept_and_the_sweep_time_out_the_appointment_once(make_appointment, operator, therapist):
    """The late write and the sweep both apply the timeout rule; it happens once,
    and the late answer is told the deadline passed whoever applied it."""
    for trial in range(TRIALS):
        appt = make_appointment("pending", therapist, starts_in=slot(trial))
        with time_machine.travel(appt.response_deadline + timedelta(seconds=1), tick=False):
            outcomes = race(
                lambda appt=appt: workflow.accept(actor=therapist, appointment_id=appt.pk),
                lambda: workflow.sweep(),
            )
        assert outcomes[0] == ("refused", "deadline_passed"), outcomes
        assert outcomes[1][0] == "ok", outcomes
        appt.refresh_from_db()
        assert (appt.status, appt.cancellation_reason) == ("cancelled", "response_timeout")
        assert appt.events.filter(kind="timed_out").count() == 1
        assert therapist.status_changes.filter(action="disabled").count() == trial + 1  # one per trial
        workflow.enable_therapist(actor=operator, therapist_id=therapist.id, note="Trial over")
