"""Rejection reason codes: the reject payload's optional `reason_code`, stored on
the rejection, carried by the event, the appointment JSON and the socket, and
filterable in the admin."""

from datetime import timedelta

import pytest
from django.urls import reverse

from notifications import realtime
from scheduling import workflow
from scheduling.models import AppointmentEvent, AppointmentRejection

from .test_api_appointments import assert_invalid, db_snapshot, url

CODES = ["schedule_conflict", "too_far", "client_concern", "health", "other"]


@pytest.mark.parametrize("code", CODES)
def test_reject_stores_the_reason_code(api, make_appointment, therapist, code):
    appt = make_appointment("pending", therapist)
    response = api(therapist).post(url(appt, "reject"), {"rejection_reason": "Cannot make it", "reason_code": code},
                                   format="json")
    assert response.status_code == 200, response.content
    latest = response.json()["latest_rejection"]
    assert (latest["reason"], latest["reason_code"]) == ("Cannot make it", code)
    assert AppointmentRejection.objects.get(appointment=appt).reason_code == code
    event = AppointmentEvent.objects.get(appointment=appt, kind="rejected")
    assert event.data == {"reason": "Cannot make it", "reason_code": code}


def test_reject_without_a_code_means_other(api, make_appointment, therapist):
    appt = make_appointment("pending", therapist)
    response = api(therapist).post(url(appt, "reject"), {"rejection_reason": "Flat tyre"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["latest_rejection"]["reason_code"] == "other"
    assert AppointmentRejection.objects.get(appointment=appt).reason_code == "other"


@pytest.mark.parametrize("code", ["nope", "", "TOO_FAR", None, 3, ["health"]],
                         ids=["unknown", "blank", "upper-case", "null", "number", "list"])
def test_reject_with_an_unknown_code_is_400_and_changes_nothing(api, make_appointment, therapist, code):
    appt = make_appointment("pending", therapist)
    before = db_snapshot()
    response = api(therapist).post(url(appt, "reject"), {"rejection_reason": "Busy", "reason_code": code},
                                   format="json")
    body = assert_invalid(response, "reason_code")
    assert "rejection_reason" not in body["errors"]
    assert db_snapshot() == before


def test_the_workflow_refuses_an_unknown_code_too(make_appointment, therapist):
    appt = make_appointment("pending", therapist)
    with pytest.raises(workflow.WorkflowError) as refused:
        workflow.reject(actor=therapist, appointment_id=appt.pk, reason="Busy", reason_code="bored")
    assert refused.value.status_code == 400
    assert "reason_code" in refused.value.errors
    appt.refresh_from_db()
    assert appt.status == "pending"




def test_the_code_reaches_the_operators_socket(recorder, make_appointment, therapist,
                                               django_capture_on_commit_callbacks):
    appt = make_appointment("pending", therapist)
    with django_capture_on_commit_callbacks(execute=True):
        workflow.reject(actor=therapist, appointment_id=appt.pk, reason="Knee hurts", reason_code="health")
    events = [m for m in recorder.received(realtime.OPERATORS_GROUP) if m["type"] == "appointment.event"]
    assert events[-1]["kind"] == "rejected"
    assert events[-1]["appointment"]["latest_rejection"]["reason_code"] == "health"


def test_history_and_detail_show_the_code(api, make_appointment, operator, therapist):
    appt = make_appointment("pending", therapist)
    workflow.reject(actor=therapist, appointment_id=appt.pk, reason="Across the city", reason_code="too_far")
    body = api(operator).get(url(appt)).json()
    assert body["latest_rejection"]["reason_code"] == "too_far"
    rejected = [e for e in body["history"] if e["kind"] == "rejected"]
    assert rejected[0]["data"]["reason_code"] == "too_far"


def test_the_admin_filters_rejections_by_code(admin_client, make_appointment, therapist):
    far = make_appointment("pending", therapist)
    workflow.reject(actor=therapist, appointment_id=far.pk, reason="Across the city", reason_code="too_far")
    ill = make_appointment("pending", therapist, starts_in=timedelta(hours=6))
    workflow.reject(actor=therapist, appointment_id=ill.pk, reason="Fever", reason_code="health")
    changelist = reverse("admin:scheduling_appointmentrejection_changelist")
    response = admin_client.get(changelist, {"reason_code__exact": "too_far"})
    assert response.status_code == 200
    assert [r.appointment_id for r in response.context["cl"].result_list] == [far.pk]
    assert "Too far" in response.content.decode()
    # The filter is offered in the sidebar with every code.
    page = admin_client.get(changelist).content.decode()
    for label in ("Schedule conflict", "Too far", "Client concern", "Health"):
        assert label in page
    assert "?reason_code__exact=too_far" in page
