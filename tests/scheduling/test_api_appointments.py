"""The appointment API: every transition from every state, who may do what, bad
input, and the exact response deadline."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import formatting
from accounts.models import AccountStatusChange, User
from notifications.models import Notification
from scheduling import workflow
from scheduling.models import Appointment, AppointmentEvent, AppointmentRejection, Availability, Client, Service
from tests.conftest import make_therapist

APPTS = "/api/scheduling/appointments/"

# "unassigned" is a pending appointment without a therapist; "pending" has one.
STATES = ["unassigned", "pending", "confirmed", "rejected", "in_progress", "completed", "cancelled"]


def url(appt, action: str = "") -> str:
    return f"{APPTS}{appt.pk}/" + (f"{action}/" if action else "")


def reach(make_appointment, therapist, state: str) -> Appointment:
    if state == "unassigned":
        return make_appointment("pending")
    return make_appointment(state, therapist)


def db_snapshot() -> dict:
    """Everything a refused request must leave exactly as it was."""
    return {
        "appointments": list(Appointment.objects.order_by("id").values_list(
            "id", "status", "therapist_id", "assigned_at", "response_deadline", "cancellation_reason",
            "auto_cancelled_at", "updated_at")),
        "events": list(AppointmentEvent.objects.order_by("id").values_list("id", flat=True)),
        "rejections": list(AppointmentRejection.objects.order_by("id").values_list(
            "id", "review_decision", "reviewed_at")),
        "notifications": list(Notification.objects.order_by("id").values_list("id", flat=True)),
        "status_changes": AccountStatusChange.objects.count(),
        "users": list(User.objects.order_by("id").values_list("id", "is_active", "disabled_at")),
        "clients": Client.objects.count(),
        "services": Service.objects.count(),
        "availability": Availability.objects.count(),
    }


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"].strip()
    return body


def assert_invalid(response, field: str) -> dict:
    body = assert_error(response, 400, "invalid")
    assert body["detail"] == "Invalid input."
    assert field in body["errors"], body
    messages = body["errors"][field]
    assert isinstance(messages, list) and messages and all(isinstance(m, str) for m in messages)
    return body


def new_events(before: int):
    return list(AppointmentEvent.objects.filter(id__gt=before).order_by("id"))


def last_event_id() -> int:
    return AppointmentEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def iso(dt) -> str:
    return timezone.localtime(dt).isoformat()


# ---------------------------------------------------------------------------
# Every transition, from every state.
# ---------------------------------------------------------------------------

# name -> (who, action, payload, allowed from, kind of the event, status after)
TRANSITIONS = {
    "assign": ("operator", "assign", None, {"unassigned"}, "assigned", "pending"),
    "accept": ("therapist", "accept", {}, {"pending"}, "accepted", "confirmed"),
    "reject": ("therapist", "reject", {"rejection_reason": "Sick today"}, {"pending"}, "rejected", "rejected"),
    "review_accept": ("operator", "review_rejection", {"review_decision": "accept", "review_note": "OK"},
                      {"rejected"}, "rejection_accepted", "pending"),
    "review_deny": ("operator", "review_rejection", {"review_decision": "deny", "review_note": "Please go"},
                    {"rejected"}, "rejection_denied", "pending"),
    "start": ("therapist", "start", {}, {"confirmed"}, "started", "in_progress"),
    "complete": ("therapist", "complete", {}, {"in_progress"}, "completed", "completed"),
    "cancel": ("operator", "cancel", {"reason": "Client called it off"},
               {"unassigned", "pending", "confirmed", "rejected", "in_progress"}, "cancelled", "cancelled"),
}


def _matrix():
    for name, (who, *_rest) in TRANSITIONS.items():
        allowed = TRANSITIONS[name][3]
        # An unassigned appointment is nobody's: a therapist gets 404 for it (tested below).
        states = [s for s in STATES if not (who == "therapist" and s == "unassigned")]
        for state in states:
            yield pytest.param(name, state, state in allowed, id=f"{name}-from-{state}")


@pytest.mark.parametrize(("name", "state", "allowed"), list(_matrix()))
def test_transition_from_each_state(api, make_appointment, operator, therapist, therapist_b, name, state, allowed,
                                    settings):
    settings.START_EARLY_MINUTES = 24 * 60  # sessions hours ahead; the start window has its own tests
    who, action, payload, _, kind, to_status = TRANSITIONS[name]
    appt = reach(make_appointment, therapist, state)
    actor = operator if who == "operator" else therapist
    if payload is None:
        payload = {"therapist": therapist.id}
    before_status = appt.status
    before = db_snapshot()
    last = last_event_id()

    response = api(actor).post(url(appt, action), payload, format="json")

    if not allowed:
        assert_error(response, 409, "invalid_transition")
        assert db_snapshot() == before
        return
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == appt.pk
    assert body["status"] == to_status
    appt.refresh_from_db()
    assert appt.status == to_status
    events = new_events(last)
    assert [(e.kind, e.from_status, e.to_status, e.actor_id) for e in events] == [
        (kind, before_status, to_status, actor.id)]


def test_create_answers_201_and_writes_one_created_event(api, operator, client_obj, service):
    starts_at = timezone.now() + timedelta(hours=5)
    response = api(operator).post(APPTS, {
        "client": client_obj.id, "service": service.id, "starts_at": iso(starts_at),
        "location": "Room 4, Makati Shangri-La",
    }, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending" and body["therapist"] is None
    appt = Appointment.objects.get(pk=body["id"])
    assert appt.ends_at == appt.starts_at + timedelta(minutes=service.duration_minutes)
    assert [(e.kind, e.from_status, e.to_status, e.actor_id) for e in appt.events.all()] == [
        ("created", "", "pending", operator.id)]


def test_create_with_therapist_assigns_at_once(api, operator, therapist, client_obj, service):
    response = api(operator).post(APPTS, {
        "client": client_obj.id, "service": service.id, "starts_at": iso(timezone.now() + timedelta(hours=5)),
        "location": "Home", "therapist": therapist.id,
    }, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["therapist"] == {"id": therapist.id, "name": "Ana Cruz", "phone": ""}
    assert body["response_deadline"] is not None
    appt = Appointment.objects.get(pk=body["id"])
    assert [e.kind for e in appt.events.order_by("id")] == ["created", "assigned"]
    assert Notification.objects.filter(recipient=therapist, kind="assigned", appointment=appt).count() == 1


def test_operator_can_start_a_confirmed_session(api, make_appointment, operator, therapist):
    appt = make_appointment("confirmed", therapist, starts_in=timedelta(minutes=20))
    response = api(operator).post(url(appt, "start"))
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "in_progress"
    assert appt.events.order_by("-id").first().actor_id == operator.id


def test_operators_get_the_therapists_phone_and_a_therapist_never_another_therapists(
        api, make_appointment, operator, therapist, therapist_b):
    User.objects.filter(pk=therapist.pk).update(phone="+63 917 000 1111")
    User.objects.filter(pk=therapist_b.pk).update(phone="+63 917 000 2222")
    appt = make_appointment("rejected", therapist)
    assert api(operator).get(url(appt)).json()["therapist"]["phone"] == "+63 917 000 1111"
    assert api(therapist).get(url(appt)).json()["therapist"]["phone"] == "+63 917 000 1111"  # her own

    workflow.review_rejection(actor=operator, appointment_id=appt.id, decision="accept")
    workflow.assign(actor=operator, appointment_id=appt.id, therapist_id=therapist_b.id)
    assert api(operator).get(url(appt)).json()["therapist"]["phone"] == "+63 917 000 2222"
    seen_by_ana = [api(therapist).get(APPTS).content, api(therapist).get(url(appt)).content,
                   api(therapist).get("/api/scheduling/events/").content]
    assert all(b"+63 917 000 2222" not in body for body in seen_by_ana)


# --- The start window (START_EARLY_MINUTES) ------------------------------------------


@pytest.mark.parametrize("who", ["therapist", "operator"])
def test_start_a_second_before_the_window_opens_is_409_too_early_and_changes_nothing(
        api, make_appointment, operator, therapist, who):
    appt = make_appointment("confirmed", therapist, starts_in=timedelta(hours=3))
    opens = appt.starts_at - timedelta(minutes=30)
    before, last = db_snapshot(), last_event_id()
    with time_machine.travel(opens - timedelta(seconds=1), tick=False):
        response = api(therapist if who == "therapist" else operator).post(url(appt, "start"))
        body = assert_error(response, 409, "too_early")
        assert body["detail"] == (f"Appointment #{appt.id} starts at {formatting.when(appt.starts_at)}; it can be "
                                  f"started from {formatting.when(opens)}, 30 minutes before its start.")
    assert db_snapshot() == before
    assert new_events(last) == []


def test_start_opens_exactly_start_early_minutes_before_the_start(api, make_appointment, therapist):
    appt = make_appointment("confirmed", therapist, starts_in=timedelta(hours=3))
    with time_machine.travel(appt.starts_at - timedelta(minutes=30), tick=False):
        response = api(therapist).post(url(appt, "start"))
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "in_progress"


def test_start_early_minutes_is_a_setting(api, make_appointment, therapist, settings):
    settings.START_EARLY_MINUTES = 5
    appt = make_appointment("confirmed", therapist, starts_in=timedelta(minutes=20))
    body = assert_error(api(therapist).post(url(appt, "start")), 409, "too_early")
    assert "5 minutes before its start" in body["detail"]
    settings.START_EARLY_MINUTES = 30
    assert api(therapist).post(url(appt, "start")).status_code == 200


def test_the_too_early_detail_names_the_date_of_a_session_on_another_day(api, make_appointment, therapist):
    appt = make_appointment("confirmed", therapist, starts_in=timedelta(days=1, hours=1))
    detail = assert_error(api(therapist).post(url(appt, "start")), 409, "too_early")["detail"]
    local = timezone.localtime(appt.starts_at)
    assert f"{local:%a}, {local:%b} {local.day}, " in detail
    assert "starts_at" not in detail


def test_assign_sets_deadline_and_notifies_therapist(api, make_appointment, operator, therapist):
    appt = make_appointment("pending")
    with time_machine.travel(timezone.now(), tick=False):
        now = timezone.now()
        response = api(operator).post(url(appt, "assign"), {"therapist": therapist.id}, format="json")
    assert response.status_code == 200, response.content
    appt.refresh_from_db()
    assert appt.assigned_at == now
    assert appt.response_deadline == now + timedelta(minutes=30)
    assert response.json()["seconds_to_deadline"] == 30 * 60
    note = Notification.objects.get(recipient=therapist, kind="assigned")
    assert note.appointment_id == appt.pk


def test_reject_stores_the_reason_and_notifies_every_operator(api, make_appointment, operator, operator2, therapist):
    appt = make_appointment("pending", therapist)
    response = api(therapist).post(url(appt, "reject"), {"rejection_reason": "  Car broke down  "}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["latest_rejection"]["reason"] == "Car broke down"
    rejection = AppointmentRejection.objects.get(appointment=appt)
    assert (rejection.therapist_id, rejection.reason, rejection.review_decision) == (therapist.id, "Car broke down", "")
    notified = set(Notification.objects.filter(kind="rejected", appointment=appt).values_list("recipient", flat=True))
    assert notified == {operator.id, operator2.id}


def test_cancel_records_the_reason_and_tells_the_therapist(api, make_appointment, operator, therapist):
    appt = make_appointment("confirmed", therapist)
    response = api(operator).post(url(appt, "cancel"), {"reason": "Client is ill"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["cancellation_reason"], body["cancellation_note"]) == ("operator", "Client is ill")
    assert Notification.objects.filter(recipient=therapist, kind="cancelled", appointment=appt).count() == 1


# ---------------------------------------------------------------------------
# Timeout on a late write: one rule, whatever the write.
# ---------------------------------------------------------------------------

LATE_WRITES = [
    ("therapist", "accept", {}, "deadline_passed"),
    ("therapist", "reject", {"rejection_reason": "Too late anyway"}, "deadline_passed"),
    ("therapist", "start", {}, "invalid_transition"),
    ("operator", "cancel", {"reason": "Client called"}, "invalid_transition"),
    ("operator", "assign", "therapist_b", "invalid_transition"),
    ("operator", "review_rejection", {"review_decision": "deny"}, "invalid_transition"),
]


@pytest.mark.parametrize(("who", "action", "payload", "code"), LATE_WRITES, ids=[w[1] for w in LATE_WRITES])
def test_any_write_on_an_overdue_appointment_times_it_out_first(
        api, make_appointment, operator, therapist, therapist_b, who, action, payload, code):
    appt = make_appointment("pending", therapist)
    if payload == "therapist_b":
        payload = {"therapist": therapist_b.id}
    last = last_event_id()
    with time_machine.travel(appt.response_deadline + timedelta(seconds=1), tick=False):
        response = api(operator if who == "operator" else therapist).post(url(appt, action), payload, format="json")
    assert_error(response, 409, code)
    appt.refresh_from_db()
    assert (appt.status, appt.cancellation_reason) == ("cancelled", "response_timeout")
    assert [(e.kind, e.from_status, e.to_status, e.actor_id) for e in new_events(last)] == [
        ("timed_out", "pending", "cancelled", None)]


# ---------------------------------------------------------------------------
# The deadline is exact.
# ---------------------------------------------------------------------------

ANSWERS = [("accept", {}, "confirmed"), ("reject", {"rejection_reason": "Sick"}, "rejected")]


@pytest.mark.parametrize(("action", "payload", "status"), ANSWERS, ids=["accept", "reject"])
def test_answer_one_second_before_the_deadline_succeeds(api, make_appointment, therapist, action, payload, status):
    appt = make_appointment("pending", therapist)
    with time_machine.travel(appt.response_deadline - timedelta(seconds=1), tick=False):
        response = api(therapist).post(url(appt, action), payload, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == status
    therapist.refresh_from_db()
    assert therapist.is_active


@pytest.mark.parametrize("late", [timedelta(seconds=1), timedelta(0)], ids=["one-second-after", "at-the-deadline"])
@pytest.mark.parametrize(("action", "payload", "status"), ANSWERS, ids=["accept", "reject"])
def test_answer_after_the_deadline_is_409_and_times_out_in_the_same_call(
        api, make_appointment, operator, operator2, therapist, action, payload, status, late):
    appt = make_appointment("pending", therapist)
    last = last_event_id()
    moment = appt.response_deadline + late
    with time_machine.travel(moment, tick=False):
        response = api(therapist).post(url(appt, action), payload, format="json")
    body = assert_error(response, 409, "deadline_passed")
    assert f"#{appt.pk}" in body["detail"]

    appt.refresh_from_db()
    assert appt.status == "cancelled"
    assert appt.cancellation_reason == "response_timeout"
    assert appt.auto_cancelled_at == moment
    assert not AppointmentRejection.objects.filter(appointment=appt).exists()

    therapist.refresh_from_db()
    assert therapist.is_active is False
    assert therapist.disabled_at == moment
    assert f"#{appt.pk}" in therapist.disabled_reason
    change = AccountStatusChange.objects.get(user=therapist)
    assert (change.action, change.changed_by_id, change.created_at) == ("disabled", None, moment)

    assert [(e.kind, e.from_status, e.to_status, e.actor_id) for e in new_events(last)] == [
        ("timed_out", "pending", "cancelled", None)]
    assert list(Notification.objects.filter(kind="timed_out", appointment=appt)
                .values_list("recipient", flat=True)) == [therapist.id]
    # A late write times out a batch of one: each operator's digest names it.
    digests = Notification.objects.filter(kind="timeouts").order_by("recipient_id")
    assert [d.recipient_id for d in digests] == sorted([operator.id, operator2.id])
    for digest in digests:
        assert digest.appointment_id is None
        assert digest.message == f"1 appointment cancelled without a response: #{appt.id}; 1 therapist disabled."


@pytest.mark.parametrize(("action", "payload", "status"), ANSWERS, ids=["accept", "reject"])
def test_answering_one_the_sweep_already_timed_out_is_409_deadline_passed(
        api, make_appointment, operator, therapist, action, payload, status):
    appt = make_appointment("pending", therapist)
    with time_machine.travel(appt.response_deadline + timedelta(seconds=1), tick=False):
        assert workflow.sweep().timed_out == 1
    workflow.enable_therapist(actor=operator, therapist_id=therapist.id, note="Back at work")
    therapist.refresh_from_db()
    before = db_snapshot()
    response = api(therapist).post(url(appt, action), payload, format="json")
    assert_error(response, 409, "deadline_passed")
    assert db_snapshot() == before


def test_run_sweep_now_answers_integer_counts(api, make_appointment, operator, therapist, therapist_b):
    overdue = make_appointment("pending", therapist)
    waiting = make_appointment("pending", therapist_b)
    with time_machine.travel(overdue.response_deadline + timedelta(seconds=1), tick=False):
        response = api(operator).post(f"{APPTS}auto_cancel_overdue/")
    assert response.status_code == 200, response.content
    assert response.json() == {"timed_out": 2, "therapists_disabled": 2, "no_available_therapist": 0,
                               "reminded": 0, "escalated": 0}
    assert set(Appointment.objects.filter(pk__in=[overdue.pk, waiting.pk]).values_list("status", flat=True)) == {
        "cancelled"}
    again = api(operator).post(f"{APPTS}auto_cancel_overdue/")
    assert again.json() == {"timed_out": 0, "therapists_disabled": 0, "no_available_therapist": 0,
                            "reminded": 0, "escalated": 0}


def test_reading_an_overdue_appointment_changes_nothing(api, make_appointment, operator, therapist):
    appt = make_appointment("pending", therapist)
    before = db_snapshot()
    with time_machine.travel(appt.response_deadline + timedelta(minutes=5), tick=False):
        for user in (operator, therapist):
            detail = api(user).get(url(appt))
            assert detail.status_code == 200
            assert detail.json()["status"] == "pending"
            assert detail.json()["seconds_to_deadline"] == -300
            listed = api(user).get(APPTS, {"overdue": "true"})
            assert [a["id"] for a in listed.json()["results"]] == [appt.pk]
            assert listed.json()["results"][0]["seconds_to_deadline"] == -300
            assert api(user).get("/api/scheduling/events/").status_code == 200
    assert db_snapshot() == before


def test_deadline_is_never_later_than_the_start(api, make_appointment, operator, therapist):
    appt = make_appointment("pending", starts_in=timedelta(minutes=10))
    response = api(operator).post(url(appt, "assign"), {"therapist": therapist.id}, format="json")
    assert response.status_code == 200, response.content
    appt.refresh_from_db()
    assert appt.response_deadline == appt.starts_at
    assert response.json()["response_deadline"] == iso(appt.starts_at)


def test_an_appointment_whose_start_has_passed_cannot_be_assigned(api, make_appointment, operator, therapist):
    appt = make_appointment("pending", starts_in=timedelta(minutes=30))
    before = db_snapshot()
    with time_machine.travel(appt.starts_at + timedelta(seconds=1), tick=False):
        response = api(operator).post(url(appt, "assign"), {"therapist": therapist.id}, format="json")
    assert_error(response, 409, "invalid_transition")
    assert db_snapshot() == before


# ---------------------------------------------------------------------------
# Permissions.
# ---------------------------------------------------------------------------


def test_a_therapist_never_sees_another_therapists_appointment(api, make_appointment, therapist, therapist_b):
    theirs = make_appointment("pending", therapist)
    mine = make_appointment("pending", therapist_b, starts_in=timedelta(hours=6))
    client = api(therapist_b)
    assert_error(client.get(url(theirs)), 404, "not_found")
    assert [a["id"] for a in client.get(APPTS).json()["results"]] == [mine.pk]
    assert client.get(APPTS, {"therapist": therapist.id}).json()["results"] == []
    assert client.get(url(mine)).status_code == 200


def test_a_therapist_does_not_see_unassigned_appointments(api, make_appointment, therapist):
    appt = make_appointment("pending")
    assert_error(api(therapist).get(url(appt)), 404, "not_found")
    assert api(therapist).get(APPTS).json()["count"] == 0
    assert_error(api(therapist).post(url(appt, "accept")), 404, "not_found")


THERAPIST_ACTIONS = [
    ("pending", "accept", {}), ("pending", "reject", {"rejection_reason": "No"}),
    ("confirmed", "start", {}), ("in_progress", "complete", {}),
]


@pytest.mark.parametrize(("state", "action", "payload"), THERAPIST_ACTIONS, ids=[a[1] for a in THERAPIST_ACTIONS])
def test_a_therapist_cannot_act_on_another_therapists_appointment(
        api, make_appointment, therapist, therapist_b, state, action, payload):
    appt = make_appointment(state, therapist)
    before = db_snapshot()
    assert_error(api(therapist_b).post(url(appt, action), payload, format="json"), 404, "not_found")
    assert db_snapshot() == before


OPERATOR_ONLY = [
    ("get", "/api/scheduling/clients/", None),
    ("post", "/api/scheduling/clients/", {"name": "X", "phone": "+63 900 000 0000"}),
    ("post", "/api/scheduling/services/", {"name": "Shiatsu", "duration_minutes": 60, "price": "900.00"}),
    ("post", APPTS, {}),
    ("post", "{appt}assign/", {"therapist": 0}),
    ("post", "{appt}review_rejection/", {"review_decision": "accept"}),
    ("post", "{appt}cancel/", {"reason": "x"}),
    ("get", "{appt}available_therapists/", None),
    ("post", f"{APPTS}auto_cancel_overdue/", None),
    ("get", "/api/accounts/therapists/", None),
    ("post", "/api/accounts/therapists/", {"username": "x", "password": "x"}),
    ("post", "/api/accounts/therapists/{therapist}/enable/", {}),
]


@pytest.mark.parametrize(("method", "path", "payload"), OPERATOR_ONLY, ids=[f"{m} {p}" for m, p, _ in OPERATOR_ONLY])
def test_a_therapist_calling_an_operator_endpoint_gets_403(
        api, make_appointment, therapist, method, path, payload):
    appt = make_appointment("rejected", therapist)
    path = path.format(appt=url(appt), therapist=therapist.id)
    before = db_snapshot()
    response = getattr(api(therapist), method)(path, payload, format="json")
    assert_error(response, 403, "permission_denied")
    assert db_snapshot() == before


@pytest.mark.parametrize(("action", "payload"), [("accept", {}), ("reject", {"rejection_reason": "No"})])
def test_an_operator_cannot_answer_for_a_therapist(api, make_appointment, operator, therapist, action, payload):
    appt = make_appointment("pending", therapist)
    before = db_snapshot()
    assert_error(api(operator).post(url(appt, action), payload, format="json"), 403, "permission_denied")
    assert db_snapshot() == before


ANONYMOUS = [
    ("get", "/api/scheduling/clients/"), ("post", "/api/scheduling/clients/"),
    ("get", "/api/scheduling/services/"), ("post", "/api/scheduling/services/"),
    ("get", "/api/scheduling/availability/"), ("post", "/api/scheduling/availability/"),
    ("delete", "/api/scheduling/availability/{slot}/"),
    ("get", APPTS), ("post", APPTS), ("get", "{appt}"), ("get", "{appt}available_therapists/"),
    *[("post", "{appt}" + a + "/") for a in ("assign", "accept", "reject", "review_rejection", "start",
                                             "complete", "cancel")],
    ("post", f"{APPTS}auto_cancel_overdue/"),
    ("get", "/api/scheduling/events/"),
    ("get", "/api/notifications/"), ("post", "/api/notifications/{notification}/read/"),
    ("post", "/api/notifications/read_all/"),
    ("get", "/api/accounts/me/"),
    ("get", "/api/accounts/therapists/"), ("post", "/api/accounts/therapists/"),
    ("post", "/api/accounts/therapists/{therapist}/enable/"),
    ("get", "/api/schema/"),
]


@pytest.mark.parametrize(("method", "path"), ANONYMOUS, ids=[f"{m} {p}" for m, p in ANONYMOUS])
def test_anonymous_callers_are_refused_everywhere(make_appointment, therapist, method, path):
    appt = make_appointment("pending", therapist)
    path = path.format(appt=url(appt), therapist=therapist.id, slot=Availability.objects.first().id,
                       notification=Notification.objects.first().id)
    before = db_snapshot()
    response = getattr(APIClient(), method)(path, {}, format="json")
    assert response.status_code in (401, 403), (path, response.status_code)
    if not path.startswith("/api/schema/"):  # it answers in its own format
        assert response.json()["code"] == "not_authenticated"
    assert db_snapshot() == before


def test_healthz_and_the_token_endpoint_answer_anonymous_callers(therapist):
    anonymous = APIClient()
    assert anonymous.get("/healthz").status_code == 200
    response = anonymous.post("/api/accounts/token/", {"username": "ana", "password": "pass-ana"}, format="json")
    assert response.status_code == 200
    assert response.json()["token"]


# ---------------------------------------------------------------------------
# Bad input: 400 with field errors, and nothing changes.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["", "   ", "\t\n ", "x" * 501, None], ids=[
    "blank", "spaces", "whitespace", "501-chars", "missing"])
def test_reject_without_a_proper_reason_is_400(api, make_appointment, therapist, reason):
    appt = make_appointment("pending", therapist)
    before = db_snapshot()
    payload = {} if reason is None else {"rejection_reason": reason}
    assert_invalid(api(therapist).post(url(appt, "reject"), payload, format="json"), "rejection_reason")
    assert db_snapshot() == before


def test_reject_with_a_reason_of_exactly_500_chars_is_accepted(api, make_appointment, therapist):
    appt = make_appointment("pending", therapist)
    response = api(therapist).post(url(appt, "reject"), {"rejection_reason": "x" * 500}, format="json")
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("decision", ["maybe", "", "ACCEPT", None])
def test_review_decision_other_than_accept_or_deny_is_400(api, make_appointment, operator, therapist, decision):
    appt = make_appointment("rejected", therapist)
    before = db_snapshot()
    payload = {} if decision is None else {"review_decision": decision}
    assert_invalid(api(operator).post(url(appt, "review_rejection"), payload, format="json"), "review_decision")
    assert db_snapshot() == before


def test_review_note_over_500_chars_is_400(api, make_appointment, operator, therapist):
    appt = make_appointment("rejected", therapist)
    before = db_snapshot()
    response = api(operator).post(url(appt, "review_rejection"),
                                  {"review_decision": "deny", "review_note": "n" * 501}, format="json")
    assert_invalid(response, "review_note")
    assert db_snapshot() == before


@pytest.mark.parametrize("reason", ["", "  ", None])
def test_cancel_without_a_reason_is_400(api, make_appointment, operator, therapist, reason):
    appt = make_appointment("confirmed", therapist)
    before = db_snapshot()
    payload = {} if reason is None else {"reason": reason}
    assert_invalid(api(operator).post(url(appt, "cancel"), payload, format="json"), "reason")
    assert db_snapshot() == before


def _create_payload(client_obj, service_obj, /, **overrides) -> dict:
    payload = {"client": client_obj.id, "service": service_obj.id,
               "starts_at": iso(timezone.now() + timedelta(hours=4)), "location": "Home"}
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def _bad_creates(therapist, operator):
    soon = timezone.now() + timedelta(hours=4)
    return [
        ("client", {"client": 987654}),
        ("service", {"service": 987654}),
        ("therapist", {"therapist": 987654}),
        ("therapist", {"therapist": operator.id}),
        ("ends_at", {"starts_at": iso(soon), "ends_at": iso(soon - timedelta(minutes=30))}),
        ("ends_at", {"starts_at": iso(soon), "ends_at": iso(soon + timedelta(minutes=5))}),
        ("starts_at", {"starts_at": soon.replace(tzinfo=None).isoformat()}),
        ("starts_at", {"starts_at": iso(timezone.now() - timedelta(minutes=1))}),
        ("starts_at", {"starts_at": "tomorrow at noon"}),
        ("starts_at", {"starts_at": None}),
        ("location", {"location": "   "}),
    ]


BAD_CREATE_IDS = ["unknown-client", "unknown-service", "unknown-therapist", "operator-as-therapist",
                  "ends-before-start", "wrong-duration", "naive-datetime", "start-in-past", "not-a-date",
                  "missing-start", "blank-location"]


@pytest.mark.parametrize("case", range(len(BAD_CREATE_IDS)), ids=BAD_CREATE_IDS)
def test_creating_an_appointment_with_bad_input_is_400(api, operator, therapist, client_obj, service, case):
    field, overrides = _bad_creates(therapist, operator)[case]
    before = db_snapshot()
    response = api(operator).post(APPTS, _create_payload(client_obj, service, **overrides), format="json")
    assert_invalid(response, field)
    assert db_snapshot() == before


def test_creating_an_appointment_for_an_inactive_service_is_400(api, operator, client_obj, service):
    service.is_active = False
    service.save()
    before = db_snapshot()
    assert_invalid(api(operator).post(APPTS, _create_payload(client_obj, service), format="json"), "service")
    assert db_snapshot() == before


@pytest.mark.parametrize("therapist_id", [987654, "abc", None], ids=["unknown", "not-a-number", "missing"])
def test_assigning_an_unknown_therapist_is_400(api, make_appointment, operator, therapist_id):
    appt = make_appointment("pending")
    before = db_snapshot()
    payload = {} if therapist_id is None else {"therapist": therapist_id}
    assert_invalid(api(operator).post(url(appt, "assign"), payload, format="json"), "therapist")
    assert db_snapshot() == before


def test_actions_on_a_missing_appointment_are_404(api, operator, therapist):
    assert_error(api(operator).get(f"{APPTS}987654/"), 404, "not_found")
    assert_error(api(operator).post(f"{APPTS}987654/cancel/", {"reason": "x"}, format="json"), 404, "not_found")
    assert_error(api(therapist).post(f"{APPTS}987654/accept/"), 404, "not_found")


# ---------------------------------------------------------------------------
# Assigning a therapist who cannot take it: 409 and nothing changes.
# ---------------------------------------------------------------------------


def _unavailable(case: str, service, make_appointment, therapist) -> User:
    if case == "disabled":
        user = make_therapist("dina", service)
        User.objects.filter(pk=user.pk).update(is_active=False)
    elif case == "unqualified":
        user = make_therapist("uma", None)
    elif case == "outside-every-slot":
        user = make_therapist("olive", service)
        Availability.objects.filter(therapist=user).update(
            starts_at=timezone.now() + timedelta(hours=10), ends_at=timezone.now() + timedelta(hours=20))
    elif case == "slot-ends-too-early":
        user = make_therapist("sol", service)
        # The booking runs 3h..4h from now; the slot stops half-way through it.
        Availability.objects.filter(therapist=user).update(ends_at=timezone.now() + timedelta(hours=3, minutes=30))
    elif case == "double-booked":
        user = make_therapist("dora", service)
        make_appointment("confirmed", user, starts_in=timedelta(hours=3, minutes=30))
    else:
        raise AssertionError(case)
    return user


UNAVAILABLE = ["disabled", "unqualified", "outside-every-slot", "slot-ends-too-early", "double-booked"]


@pytest.mark.parametrize("case", UNAVAILABLE)
def test_assigning_an_unavailable_therapist_is_409(api, make_appointment, operator, service, therapist, case):
    appt = make_appointment("pending")
    user = _unavailable(case, service, make_appointment, therapist)
    before = db_snapshot()
    response = api(operator).post(url(appt, "assign"), {"therapist": user.id}, format="json")
    body = assert_error(response, 409, "therapist_unavailable")
    assert user.display_name in body["detail"]
    assert db_snapshot() == before


@pytest.mark.parametrize("case", UNAVAILABLE)
def test_creating_an_appointment_with_an_unavailable_therapist_creates_nothing(
        api, make_appointment, operator, client_obj, service, therapist, case):
    user = _unavailable(case, service, make_appointment, therapist)
    before = db_snapshot()
    response = api(operator).post(APPTS, _create_payload(
        client_obj, service, starts_at=iso(timezone.now() + timedelta(hours=3)), therapist=user.id), format="json")
    assert_error(response, 409, "therapist_unavailable")
    assert db_snapshot() == before


def test_back_to_back_appointments_are_allowed(api, make_appointment, operator, therapist):
    with time_machine.travel(timezone.now(), tick=False):
        make_appointment("confirmed", therapist, starts_in=timedelta(hours=2))
        make_appointment("confirmed", therapist, starts_in=timedelta(hours=4))
        between = make_appointment("pending", starts_in=timedelta(hours=3))
        response = api(operator).post(url(between, "assign"), {"therapist": therapist.id}, format="json")
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("state", ["pending", "confirmed", "rejected", "in_progress"])
def test_every_open_appointment_keeps_its_therapist_busy(api, make_appointment, operator, therapist, state):
    make_appointment(state, therapist, starts_in=timedelta(minutes=5))
    later = make_appointment("pending", starts_in=timedelta(minutes=30))
    response = api(operator).post(url(later, "assign"), {"therapist": therapist.id}, format="json")
    assert_error(response, 409, "therapist_unavailable")


@pytest.mark.parametrize("state", ["completed", "cancelled"])
def test_a_finished_appointment_frees_its_therapist(api, make_appointment, operator, therapist, state):
    make_appointment(state, therapist, starts_in=timedelta(minutes=5))
    later = make_appointment("pending", starts_in=timedelta(minutes=30))
    response = api(operator).post(url(later, "assign"), {"therapist": therapist.id}, format="json")
    assert response.status_code == 200, response.content


# ---------------------------------------------------------------------------
# Reads: detail history and the events feed (a light check).
# ---------------------------------------------------------------------------


def test_detail_carries_the_history_oldest_first(api, make_appointment, operator, therapist):
    appt = make_appointment("in_progress", therapist)
    body = api(operator).get(url(appt)).json()
    assert [e["kind"] for e in body["history"]] == ["created", "assigned", "accepted", "started"]
    assert body["history"][-1]["actor"] == "Ana Cruz"
    for key in ("id", "status", "client", "service", "therapist", "starts_at", "ends_at", "location", "notes",
                "response_deadline", "seconds_to_deadline", "cancellation_reason", "latest_rejection", "updated_at"):
        assert key in body


def test_events_feed_is_oldest_first_and_scoped_to_the_therapist(
        api, make_appointment, operator, therapist, therapist_b):
    mine = make_appointment("confirmed", therapist)
    make_appointment("pending", therapist_b, starts_in=timedelta(hours=6))
    everything = api(operator).get("/api/scheduling/events/").json()
    ids = [e["id"] for e in everything["results"]]
    assert ids == sorted(ids) and len(ids) == AppointmentEvent.objects.count()
    assert everything["next"] is None

    own = api(therapist).get("/api/scheduling/events/").json()["results"]
    assert {e["appointment"]["id"] for e in own} == {mine.pk}
    assert [e["kind"] for e in own] == ["assigned", "accepted"]

    after = api(operator).get("/api/scheduling/events/", {"after": ids[-2]}).json()["results"]
    assert [e["id"] for e in after] == ids[-1:]
    assert_invalid(api(operator).get("/api/scheduling/events/", {"after": "x"}), "after")
