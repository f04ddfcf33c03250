"""Offers and their receipts: every assignment is a new offer with fresh receipts,
a denied rejection continues the same one; the therapist's device reports
`delivered` and `seen` once per offer, in the history and live to operators."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from scheduling import workflow
from scheduling.models import Appointment, AppointmentEvent
from tests.scheduling.test_api_appointments import assert_error, db_snapshot

APPTS = "/api/scheduling/appointments/"


def receipt(api, user, appt, kind, **extra):
    return api(user).post(f"{APPTS}{appt.id}/receipt/", {"kind": kind, **extra}, format="json")


def offer(appt_id: int) -> dict | None:
    from scheduling.payloads import appointment_json

    return appointment_json(Appointment.objects.select_related("client", "service", "therapist")
                            .with_latest_rejection().get(pk=appt_id))["offer"]


def test_each_assignment_is_a_new_offer_and_a_denied_rejection_continues_it(
        api, operator, therapist, therapist_b, make_appointment):
    unassigned = make_appointment("pending")
    assert offer(unassigned.id) is None

    appt = make_appointment("pending", therapist)
    first = offer(appt.id)
    assert first["number"] == 1
    assert first["sent_at"] == timezone.localtime(appt.assigned_at).isoformat()
    assert (first["delivered_at"], first["seen_at"], first["reminded_at"], first["escalated_at"]) == (None,) * 4

    assert receipt(api, therapist, appt, "seen").status_code == 200
    workflow.reject(actor=therapist, appointment_id=appt.id, reason="Too far")
    workflow.review_rejection(actor=operator, appointment_id=appt.id, decision="deny", note="Please go")
    denied = offer(appt.id)
    assert denied["number"] == 1, "a denied rejection continues the same offer"
    assert denied["seen_at"] is not None and denied["sent_at"] == first["sent_at"]

    workflow.reject(actor=therapist, appointment_id=appt.id, reason="Still too far")
    workflow.review_rejection(actor=operator, appointment_id=appt.id, decision="accept")
    assert offer(appt.id) is None, "back in the queue: no offer"
    workflow.assign(actor=operator, appointment_id=appt.id, therapist_id=therapist_b.id)
    second = offer(appt.id)
    assert second["number"] == 2
    assert second["sent_at"] > first["sent_at"]
    assert (second["delivered_at"], second["seen_at"]) == (None, None), "a new offer starts its receipts again"


def test_a_delivered_receipt_is_stored_once_with_an_event_and_shown_live_to_operators(
        api, recorder, therapist, make_appointment, django_capture_on_commit_callbacks):
    appt = make_appointment("pending", therapist)
    recorder.calls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = receipt(api, therapist, appt, "delivered", offer=1)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["offer"]["delivered_at"] is not None and body["offer"]["seen_at"] is None
    assert body["status"] == "pending"

    event = AppointmentEvent.objects.get(appointment=appt, kind="delivered")
    assert (event.from_status, event.to_status, event.actor, event.data) == ("pending", "pending", therapist,
                                                                             {"offer": 1})
    [live] = recorder.received("operators")
    assert (live["kind"], live["event_id"]) == ("delivered", event.id)
    assert live["appointment"]["offer"]["delivered_at"] == body["offer"]["delivered_at"]

    # A repeat (the page and the service worker both report, say) changes nothing.
    recorder.calls.clear()
    before = db_snapshot()
    with django_capture_on_commit_callbacks(execute=True):
        again = receipt(api, therapist, appt, "delivered")
    assert again.status_code == 200
    assert again.json()["offer"] == body["offer"]
    assert db_snapshot() == before
    assert recorder.calls == []


def test_seen_implies_delivered_and_both_appear_in_the_history(api, operator, therapist, make_appointment):
    appt = make_appointment("pending", therapist)
    seen = receipt(api, therapist, appt, "seen").json()["offer"]
    assert seen["seen_at"] == seen["delivered_at"]
    assert receipt(api, therapist, appt, "delivered").json()["offer"] == seen
    assert AppointmentEvent.objects.filter(appointment=appt, kind__in=["delivered", "seen"]).count() == 1
    for user in (operator, therapist):
        history = api(user).get(f"{APPTS}{appt.id}/").json()["history"]
        assert [e["kind"] for e in history] == ["created", "assigned", "seen"]


@pytest.mark.parametrize(("state", "status", "code"), [
    ("confirmed", 409, "invalid_transition"),
    ("rejected", 409, "invalid_transition"),
    ("cancelled", 409, "invalid_transition"),
    ("completed", 409, "invalid_transition"),
])
def test_a_receipt_for_an_appointment_not_waiting_for_an_answer_is_409(api, therapist, make_appointment, state,
                                                                       status, code):
    appt = make_appointment(state, therapist)
    before = db_snapshot()
    assert_error(receipt(api, therapist, appt, "seen"), status, code)
    assert db_snapshot() == before


def test_receipts_from_the_wrong_person_or_for_an_old_offer_change_nothing(
        api, operator, therapist, therapist_b, make_appointment):
    appt = make_appointment("pending", therapist)
    unassigned = make_appointment("pending")
    before = db_snapshot()
    assert_error(receipt(api, therapist_b, appt, "seen"), 404, "not_found")
    assert_error(receipt(api, therapist, unassigned, "seen"), 404, "not_found")
    assert_error(receipt(api, operator, appt, "seen"), 403, "permission_denied")
    assert_error(receipt(api, therapist, appt, "seen", offer=2), 409, "invalid_transition")
    bad = receipt(api, therapist, appt, "read")
    assert_error(bad, 400, "invalid")
    assert "kind" in bad.json()["errors"]
    assert db_snapshot() == before


def test_a_receipt_after_the_deadline_times_the_offer_out_like_any_write(api, therapist, make_appointment):
    appt = make_appointment("pending", therapist)
    with time_machine.travel(appt.response_deadline + timedelta(seconds=1), tick=False):
        assert_error(receipt(api, therapist, appt, "delivered"), 409, "deadline_passed")
    appt.refresh_from_db()
    assert appt.status == "cancelled" and appt.offer_delivered_at is None


def test_lists_carry_the_offer_without_extra_queries(api, operator, therapist, therapist_b, make_appointment,
                                                    django_assert_max_num_queries):
    for n in range(6):
        make_appointment("pending", therapist if n % 2 else therapist_b, starts_in=timedelta(hours=2 + 2 * n))
    make_appointment("pending")
    with django_assert_max_num_queries(6):
        results = api(operator).get(APPTS, {"page_size": 50}).json()["results"]
    assert sorted((r["offer"] or {}).get("number", 0) for r in results) == [0, 1, 1, 1, 1, 1, 1]
