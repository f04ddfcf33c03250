"""Workflow rules beyond single transitions: reviewing rejections, who can be
assigned, and the ranked list of available therapists."""

from datetime import datetime, time, timedelta

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from notifications.models import Notification
from scheduling import workflow
from scheduling.models import Appointment, AppointmentRejection, Availability
from scheduling.workflow import WorkflowError
from tests.conftest import make_therapist

APPTS = "/api/scheduling/appointments/"


def review(api, operator, appt, decision: str, note: str = ""):
    return api(operator).post(f"{APPTS}{appt.pk}/review_rejection/",
                              {"review_decision": decision, "review_note": note}, format="json")


def reject(api, therapist, appt, reason: str = "Sick"):
    return api(therapist).post(f"{APPTS}{appt.pk}/reject/", {"rejection_reason": reason}, format="json")


def available_ids(api, operator, appt) -> list[int]:
    response = api(operator).get(f"{APPTS}{appt.pk}/available_therapists/")
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()]


def assign_would_accept(operator, appt, therapist) -> bool:
    """Try the real assign and roll it back."""
    try:
        with transaction.atomic():
            workflow.assign(actor=operator, appointment_id=appt.pk, therapist_id=therapist.id)
            transaction.set_rollback(True)
    except WorkflowError as exc:
        assert exc.code == "therapist_unavailable", exc.detail
        return False
    return True


# ---------------------------------------------------------------------------
# Reviewing a rejection.
# ---------------------------------------------------------------------------


def test_deny_gives_a_fresh_deadline_and_tells_the_therapist_the_note(api, make_appointment, operator, therapist):
    appt = make_appointment("rejected", therapist)
    first_deadline = appt.response_deadline
    later = timezone.now() + timedelta(minutes=20)
    with time_machine.travel(later, tick=False):
        response = review(api, operator, appt, "deny", "Nobody else is free, please go")
        now = timezone.now()
    assert response.status_code == 200, response.content
    appt.refresh_from_db()
    assert (appt.status, appt.therapist_id) == ("pending", therapist.id)
    assert appt.response_deadline == now + timedelta(minutes=30) > first_deadline
    assert response.json()["latest_rejection"]["review_decision"] == "deny"
    note = Notification.objects.get(recipient=therapist, kind="rejection_denied")
    assert "Nobody else is free, please go" in note.message
    assert note.appointment_id == appt.pk


def test_deny_is_capped_at_the_start(api, make_appointment, operator, therapist):
    appt = make_appointment("rejected", therapist, starts_in=timedelta(minutes=20))
    assert review(api, operator, appt, "deny").status_code == 200
    appt.refresh_from_db()
    assert appt.response_deadline == appt.starts_at


def test_deny_after_the_start_has_passed_is_409(api, make_appointment, operator, therapist):
    appt = make_appointment("rejected", therapist, starts_in=timedelta(minutes=20))
    with time_machine.travel(appt.starts_at + timedelta(seconds=1), tick=False):
        response = review(api, operator, appt, "deny")
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"
    appt.refresh_from_db()
    assert appt.status == "rejected"


def test_an_appointment_can_be_rejected_denied_and_rejected_again(api, make_appointment, operator, therapist):
    appt = make_appointment("rejected", therapist)
    assert review(api, operator, appt, "deny", "Please").status_code == 200
    response = reject(api, therapist, appt, "Still sick")
    assert response.status_code == 200, response.content
    assert response.json()["latest_rejection"] == {**response.json()["latest_rejection"],
                                                   "reason": "Still sick", "review_decision": None}
    rejections = list(AppointmentRejection.objects.filter(appointment=appt).order_by("id")
                      .values_list("therapist", "reason", "review_decision"))
    assert rejections == [(therapist.id, "Family emergency", "deny"), (therapist.id, "Still sick", "")]
    assert [e.kind for e in appt.events.order_by("id")] == [
        "created", "assigned", "rejected", "rejection_denied", "rejected"]


def test_accepting_a_rejection_puts_it_back_in_the_queue(api, make_appointment, operator, therapist, therapist_b):
    appt = make_appointment("rejected", therapist)
    response = review(api, operator, appt, "accept", "Fair enough")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["therapist"], body["response_deadline"]) == ("pending", None, None)
    appt.refresh_from_db()
    assert (appt.status, appt.therapist_id, appt.cancellation_reason) == ("pending", None, "")
    event = appt.events.order_by("-id").first()
    assert (event.kind, event.therapist_id, event.actor_id) == ("rejection_accepted", therapist.id, operator.id)
    # The therapist no longer sees it.
    assert api(therapist).get(f"{APPTS}{appt.pk}/").status_code == 404


def test_accepting_a_rejection_with_no_free_therapist_cancels_it(api, make_appointment, operator, therapist):
    appt = make_appointment("rejected", therapist)
    response = review(api, operator, appt, "accept")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    appt.refresh_from_db()
    assert (appt.status, appt.cancellation_reason) == ("cancelled", "no_available_therapist")
    assert appt.auto_cancelled_at is not None
    assert [(e.kind, e.from_status, e.to_status) for e in appt.events.order_by("id")][-2:] == [
        ("rejection_accepted", "rejected", "pending"), ("no_available_therapist", "pending", "cancelled")]
    [notification] = Notification.objects.filter(recipient=operator, kind="unstaffed")
    assert f"#{appt.id}" in notification.message


def test_accepting_a_rejection_after_the_start_cancels_it(api, make_appointment, operator, therapist, therapist_b):
    """Nobody can be assigned once the start has passed, so it cannot wait in the queue."""
    appt = make_appointment("rejected", therapist, starts_in=timedelta(minutes=20))
    with time_machine.travel(appt.starts_at + timedelta(minutes=1), tick=False):
        response = review(api, operator, appt, "accept")
    assert response.status_code == 200, response.content
    appt.refresh_from_db()
    assert (appt.status, appt.cancellation_reason) == ("cancelled", "no_available_therapist")


def test_the_rejecting_therapist_is_never_offered_again(api, make_appointment, operator, therapist, therapist_b):
    appt = make_appointment("rejected", therapist)
    assert review(api, operator, appt, "accept").status_code == 200
    assert available_ids(api, operator, appt) == [therapist_b.id]
    response = api(operator).post(f"{APPTS}{appt.pk}/assign/", {"therapist": therapist.id}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "therapist_unavailable"
    assert response.json()["detail"].startswith("Ana Cruz")


def test_a_denied_rejection_does_not_bar_the_therapist(api, make_appointment, operator, therapist, therapist_b):
    appt = make_appointment("rejected", therapist)
    assert review(api, operator, appt, "deny").status_code == 200
    assert reject(api, therapist, appt).status_code == 200
    # Only the accepted rejection bars a therapist; the denied one did not.
    assert review(api, operator, appt, "accept").status_code == 200
    assert available_ids(api, operator, appt) == [therapist_b.id]


def test_reviewing_twice_is_409_already_reviewed(api, make_appointment, operator, operator2, therapist, therapist_b):
    appt = make_appointment("rejected", therapist)
    assert review(api, operator, appt, "accept").status_code == 200
    response = review(api, operator2, appt, "deny")
    assert response.status_code == 409
    assert response.json()["code"] == "already_reviewed"


def test_deny_for_a_therapist_disabled_meanwhile_is_409(api, make_appointment, operator, therapist):
    appt = make_appointment("rejected", therapist)
    User.objects.filter(pk=therapist.pk).update(is_active=False)
    response = review(api, operator, appt, "deny")
    assert response.status_code == 409
    assert response.json()["code"] == "therapist_unavailable"


# ---------------------------------------------------------------------------
# Who can take an appointment: available_therapists == what assign accepts.
# ---------------------------------------------------------------------------


def test_available_therapists_lists_exactly_who_assign_accepts(api, make_appointment, operator, service, therapist):
    with time_machine.travel(timezone.now(), tick=False):
        target = make_appointment("rejected", therapist, starts_in=timedelta(hours=3))
        free = make_therapist("fay", service)
        assert review(api, operator, target, "accept").status_code == 200  # `therapist` is now barred
        target.refresh_from_db()

        before = make_therapist("bo", service)
        make_appointment("confirmed", before, starts_in=timedelta(hours=2))  # ends as the target starts
        after = make_therapist("al", service)
        make_appointment("pending", after, starts_in=timedelta(hours=4))  # starts as the target ends
        overlapping = make_therapist("ola", service)
        make_appointment("rejected", overlapping, starts_in=timedelta(hours=3, minutes=59))
        disabled = make_therapist("dee", service)
        User.objects.filter(pk=disabled.pk).update(is_active=False)
        unqualified = make_therapist("una", None)
        exact_slot = make_therapist("eli", service)
        Availability.objects.filter(therapist=exact_slot).update(starts_at=target.starts_at, ends_at=target.ends_at)
        short_slot = make_therapist("sal", service)
        Availability.objects.filter(therapist=short_slot).update(
            starts_at=target.starts_at + timedelta(minutes=1), ends_at=target.ends_at + timedelta(hours=1))
        no_slot = make_therapist("nel", service)
        Availability.objects.filter(therapist=no_slot).delete()

        listed = set(available_ids(api, operator, target))
        everyone = [therapist, free, before, after, overlapping, disabled, unqualified, exact_slot, short_slot,
                    no_slot]
        accepted = {t.id for t in everyone if assign_would_accept(operator, target, t)}

    assert listed == accepted == {free.id, before.id, after.id, exact_slot.id}


def test_available_therapists_ranks_fewest_that_day_then_longest_idle(api, make_appointment, operator, service):
    day = timezone.localdate() + timedelta(days=1)

    def at(hour: int) -> datetime:
        return timezone.make_aware(datetime.combine(day, time(hour)))

    def book(therapist, hour: int, status: str = "confirmed") -> Appointment:
        return make_appointment(status, therapist, starts_in=at(hour) - timezone.now())

    with time_machine.travel(timezone.now(), tick=False):
        idle, early, late, busy = (make_therapist(name, service) for name in ("zed", "yan", "xia", "wil"))
        book(idle, 12, "cancelled")   # a cancelled booking does not count
        book(early, 9)                # one that day, finished at 10:00
        book(late, 11)                # one that day, finished at 12:00
        book(busy, 8)
        book(busy, 10, "pending")     # two that day
        target = make_appointment("pending", starts_in=at(14) - timezone.now())

        response = api(operator).get(f"{APPTS}{target.pk}/available_therapists/")
        rows = response.json()
        assert [r["id"] for r in rows] == [idle.id, early.id, late.id, busy.id]
        assert [r["appointments_that_day"] for r in rows] == [0, 1, 1, 2]
        assert rows[0]["name"] == "Zed Cruz"
    assert rows[1]["last_appointment_end"] == at(10).isoformat()


@pytest.mark.parametrize("state", ["rejected", "cancelled"])
def test_available_therapists_is_empty_when_assign_would_refuse_anyone(
        api, make_appointment, operator, therapist, therapist_b, state):
    appt = make_appointment(state, therapist)
    assert available_ids(api, operator, appt) == []


@pytest.mark.parametrize("state", ["pending", "confirmed"])
def test_available_therapists_of_a_held_appointment_are_whom_reassign_accepts(
        api, make_appointment, operator, therapist, therapist_b, state):
    appt = make_appointment(state, therapist)
    assert available_ids(api, operator, appt) == [therapist_b.id]


def test_available_therapists_is_empty_once_the_start_has_passed(api, make_appointment, operator, therapist):
    appt = make_appointment("pending", starts_in=timedelta(minutes=20))
    assert available_ids(api, operator, appt) == [therapist.id]
    with time_machine.travel(appt.starts_at, tick=False):
        assert available_ids(api, operator, appt) == []


# ---------------------------------------------------------------------------
# Enabling a disabled therapist.
# ---------------------------------------------------------------------------


def test_enable_therapist_reactivates_and_keeps_the_history(make_appointment, operator, therapist):
    appt = make_appointment("pending", therapist)
    with time_machine.travel(appt.response_deadline, tick=False), pytest.raises(WorkflowError) as late:
        workflow.accept(actor=therapist, appointment_id=appt.pk)
    assert late.value.code == "deadline_passed"
    enabled = workflow.enable_therapist(actor=operator, therapist_id=therapist.id, note="Talked it over")
    assert enabled.is_active and enabled.disabled_at is None and enabled.disabled_reason == ""
    history = list(therapist.status_changes.order_by("id").values_list("action", "changed_by", "reason"))
    assert history[0][:2] == ("disabled", None)
    assert history[1] == ("enabled", operator.id, "Talked it over")
    assert Notification.objects.filter(recipient=therapist, kind="enabled").count() == 1
    with pytest.raises(WorkflowError) as again:
        workflow.enable_therapist(actor=operator, therapist_id=therapist.id)
    assert again.value.code == "invalid_transition"


@pytest.mark.parametrize("free_position", [None, 0, 6])
def test_accepting_a_rejection_finds_the_one_free_therapist_however_far_down_the_list(
        operator, therapist, make_appointment, service, free_position):
    """Whether the booking waits in the queue or is cancelled at once depends on
    whether anybody could take it: the check must find the only free one
    wherever it is among the disabled (or know there is none). Paging past busy
    therapists: tests/scheduling/test_travel.py."""
    others = [make_therapist(f"t{i}", service) for i in range(7)]
    for i, other in enumerate(others):
        if i != free_position:
            other.is_active = False
            other.save(update_fields=["is_active"])
    appt = make_appointment("rejected", therapist)
    workflow.review_rejection(actor=operator, appointment_id=appt.id, decision="accept")
    appt.refresh_from_db()
    if free_position is None:
        assert (appt.status, appt.cancellation_reason) == ("cancelled", "no_available_therapist")
    else:
        assert (appt.status, appt.therapist_id) == ("pending", None)
