"""Travel between home visits: TRAVEL_BUFFER_MINUTES between two of a therapist's
open appointments at different places, none at the same place. One engine
answers assign, the ranked list and the sweep's no-available-therapist rule."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from accounts import formatting
from scheduling import workflow
from scheduling.models import Appointment
from scheduling.text import span
from tests.conftest import make_therapist

APPTS = "/api/scheduling/appointments/"
MAKATI = "12 Mabini St, Makati"
QUEZON = "8 Scout Tuason Ave, Quezon City"


@pytest.fixture
def at():
    """A whole-minute instant a few hours ahead, so the refusals read cleanly."""
    base = (timezone.now() + timedelta(hours=4)).replace(second=0, microsecond=0)
    return lambda minutes=0: base + timedelta(minutes=minutes)


@pytest.fixture
def book(operator, client_obj, service):
    def factory(starts_at: datetime, location: str, therapist=None) -> Appointment:
        return workflow.create_appointment(actor=operator, client=client_obj, service=service, starts_at=starts_at,
                                           location=location, therapist_id=therapist.id if therapist else None)
    return factory


def assign_refusal(operator, appt, therapist) -> str | None:
    try:
        workflow.assign(actor=operator, appointment_id=appt.id, therapist_id=therapist.id)
    except workflow.WorkflowError as exc:
        assert exc.code == "therapist_unavailable"
        return exc.detail
    return None


def test_a_different_address_right_after_is_refused_and_names_the_clash(book, at, operator, therapist, api):
    first = book(at(0), MAKATI, therapist)  # 60 minutes: ends at at(60)
    second = book(at(60), QUEZON)

    response = api(operator).post(f"{APPTS}{second.id}/assign/", {"therapist": therapist.id}, format="json")

    assert response.status_code == 409
    assert response.json() == {
        "code": "therapist_unavailable",
        "detail": f"Ana Cruz needs 30 min to travel after #{first.id}, which ends at {formatting.when(at(60))}.",
    }
    second.refresh_from_db()
    assert second.therapist_id is None


def test_a_different_address_right_before_is_refused_too(book, at, operator, therapist):
    later = book(at(120), MAKATI, therapist)
    earlier = book(at(45), QUEZON)  # ends at at(105): 15 minutes before the other starts

    assert assign_refusal(operator, earlier, therapist) == (
        f"Ana Cruz needs 30 min to travel before #{later.id}, which starts at {formatting.when(at(120))}.")


def test_the_same_address_back_to_back_is_fine_without_case_or_extra_spaces(book, at, operator, therapist):
    book(at(0), MAKATI, therapist)
    next_door = book(at(60), "  12 mabini st,   MAKATI ")
    before = book(at(-60), "12 MABINI ST, Makati")

    assert assign_refusal(operator, next_door, therapist) is None
    assert assign_refusal(operator, before, therapist) is None


@pytest.mark.parametrize(("gap", "allowed"), [(30, True), (29, False), (31, True)])
def test_exactly_the_buffer_is_enough_a_minute_less_is_not(book, at, operator, therapist, gap, allowed):
    book(at(0), MAKATI, therapist)
    after = book(at(60 + gap), QUEZON)
    before = book(at(-60 - gap), QUEZON)

    assert (assign_refusal(operator, after, therapist) is None) is allowed
    assert (assign_refusal(operator, before, therapist) is None) is allowed


def test_only_open_appointments_need_travel(book, at, operator, therapist):
    first = book(at(0), MAKATI, therapist)
    workflow.cancel(actor=operator, appointment_id=first.id, reason="Client called it off")
    second = book(at(60), QUEZON)

    assert assign_refusal(operator, second, therapist) is None


def test_an_overlap_is_still_named_as_an_overlap(book, at, operator, therapist):
    first = book(at(0), MAKATI, therapist)
    second = book(at(30), QUEZON)

    assert assign_refusal(operator, second, therapist) == (
        f"Ana Cruz already has appointment #{first.id} at {span(at(0), at(60))}.")


def test_the_buffer_comes_from_the_setting_and_zero_turns_it_off(book, at, operator, therapist, settings):
    book(at(0), MAKATI, therapist)
    settings.TRAVEL_BUFFER_MINUTES = 45
    after = book(at(100), QUEZON)  # a 40-minute gap
    assert "needs 45 min to travel after" in assign_refusal(operator, after, therapist)

    settings.TRAVEL_BUFFER_MINUTES = 0
    back_to_back = book(at(60), QUEZON)
    assert assign_refusal(operator, back_to_back, therapist) is None


def test_the_ranked_list_leaves_out_whoever_could_not_get_there(book, at, api, operator, service, therapist,
                                                                therapist_b):
    cara = make_therapist("cara", service, name="Cara Reyes")
    book(at(0), MAKATI, therapist)  # Ana: in Makati until at(60)
    book(at(0), QUEZON, therapist_b)  # Bea: in Quezon City until at(60)
    target = book(at(70), QUEZON)

    response = api(operator).get(f"{APPTS}{target.id}/available_therapists/")

    assert response.status_code == 200
    # Bea is next door; Cara is free all day and ranks first (fewest that day).
    assert [t["name"] for t in response.json()] == ["Cara Reyes", "Bea Santos"]
    assert assign_refusal(operator, target, cara) is None


def test_creating_with_a_therapist_checks_travel_and_creates_nothing_when_refused(
        book, at, api, operator, therapist, client_obj, service):
    first = book(at(0), MAKATI, therapist)
    before = Appointment.objects.count()

    response = api(operator).post(APPTS, {
        "client": client_obj.id, "service": service.id, "starts_at": at(75).isoformat(),
        "location": QUEZON, "therapist": therapist.id}, format="json")

    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"Ana Cruz needs 30 min to travel after #{first.id}, which ends at {formatting.when(at(60))}.")
    assert Appointment.objects.count() == before


@pytest.mark.parametrize(("elsewhere", "cancelled"), [(MAKATI, True), (QUEZON, False)])
def test_the_sweep_cancels_a_booking_nobody_can_reach_in_time(book, therapist, elsewhere, cancelled):
    soon = (timezone.now() + timedelta(minutes=25)).replace(second=0, microsecond=0)
    target = book(soon, QUEZON)  # within the response window, unassigned; Ana is the only therapist
    book(soon + timedelta(minutes=70), elsewhere, therapist)  # 10 minutes after the target ends

    counts = workflow.sweep()

    target.refresh_from_db()
    assert counts.no_available_therapist == (1 if cancelled else 0)
    assert (target.status, target.cancellation_reason) == (
        ("cancelled", "no_available_therapist") if cancelled else ("pending", ""))


def test_one_therapists_verdict_is_the_engines_for_every_rule(book, at, operator, service, therapist):
    """`lock_and_judge` (assign, reassign and reschedule, for one therapist) reads
    its facts with statements of its own, partly with the therapist's row lock;
    for each rule it must answer what the engine answers for the list."""
    from accounts.models import User
    from scheduling import availability
    from scheduling.models import Availability, Service

    appt = book(at(0), MAKATI)
    book(at(-70), QUEZON, therapist)  # ends 10 min before: no time to travel
    close = make_therapist("cleo", service)
    book(at(-60), MAKATI, close)  # same address back to back: fine
    overlap = make_therapist("dina", service)
    book(at(30), MAKATI, overlap)
    other = make_therapist("ella", Service.objects.create(name="Reflexology", duration_minutes=60, price=900))
    disabled = make_therapist("fay", service)
    User.objects.filter(pk=disabled.pk).update(is_active=False)
    no_slot = make_therapist("gia", service, hours=1)
    Availability.objects.filter(therapist=no_slot).update(ends_at=at(-120))
    refused = make_therapist("hana", service)
    workflow.assign(actor=operator, appointment_id=appt.id, therapist_id=refused.id)
    workflow.reject(actor=refused, appointment_id=appt.id, reason="Too far")
    workflow.review_rejection(actor=operator, appointment_id=appt.id, decision="accept", note="")

    people = [therapist, close, overlap, other, disabled, no_slot, refused, operator]
    appt = Appointment.objects.get(pk=appt.pk)
    appt.rejected_before = True  # as the workflow's lock reads it
    engine = availability.evaluate([appt], therapist_ids=[t.id for t in people])[appt.id]
    verdicts = {t.id: availability.lock_and_judge(appt, t.id)[1] for t in people}
    assert verdicts == engine
    assert verdicts[close.id] is None
    # Seven refusals, each for its own rule.
    assert len({verdicts[t.id] for t in people if t is not close}) == 7, verdicts


def test_whether_anyone_can_take_one_appointment_is_the_engines_answer(book, at, operator, service, therapist):
    """A review asks `staffable` about one appointment, read a page of therapists
    at a time with statements of its own; it must answer what the engine answers
    when it reads everyone (the sweep's path), rule by rule, then with one free."""
    from accounts.models import User
    from scheduling import availability
    from scheduling.models import Availability, Service

    appt = book(at(0), MAKATI)
    probe = book(at(24 * 60), MAKATI)  # a second appointment: the engine's many-at-once path
    book(at(-70), QUEZON, therapist)  # no time to travel
    book(at(30), MAKATI, make_therapist("dina", service))  # overlap
    make_therapist("ella", Service.objects.create(name="Reflexology", duration_minutes=60, price=900))
    User.objects.filter(pk=make_therapist("fay", service).pk).update(is_active=False)
    Availability.objects.filter(therapist=make_therapist("gia", service, hours=1)).update(ends_at=at(-120))
    refused = make_therapist("hana", service)
    workflow.assign(actor=operator, appointment_id=appt.id, therapist_id=refused.id)
    workflow.reject(actor=refused, appointment_id=appt.id, reason="Too far")
    workflow.review_rejection(actor=operator, appointment_id=appt.id, decision="accept", note="")
    User.objects.filter(pk=make_therapist("ivy", service).pk).update(role=User.Role.OPERATOR)

    def answers():
        fresh = Appointment.objects.get(pk=appt.pk)
        return (appt.id in availability.staffable([fresh]),
                appt.id in availability.staffable([fresh, Appointment.objects.get(pk=probe.pk)]))

    assert answers() == (False, False)
    close = make_therapist("cleo", service)
    book(at(-60), MAKATI, close)  # same address back to back: fine
    assert answers() == (True, True)


def test_one_appointment_looks_past_a_page_of_busy_therapists(book, at, service):
    """More therapists pass the standing rules than one page holds, all busy but
    the last: the look goes on to the next page and finds them."""
    from scheduling import availability

    appt = book(at(0), MAKATI)
    for n in range(availability._LOOK + 2):
        book(at(15), MAKATI, make_therapist(f"busy{n}", service))
    assert availability.staffable([Appointment.objects.get(pk=appt.pk)]) == set()
    make_therapist("zoe", service)  # the highest id: only on the second page
    assert availability.staffable([Appointment.objects.get(pk=appt.pk)]) == {appt.id}
