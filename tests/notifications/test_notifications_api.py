"""The notification bell: GET /api/notifications/, mark one read, mark all read,
and the messages the workflow writes for each kind of news."""

from datetime import timedelta

import time_machine
from django.utils import timezone

from accounts import formatting
from notifications.models import Notification
from scheduling import workflow
from scheduling.models import Service

LIST = "/api/notifications/"


def say(value) -> str:
    """The shared format of stored messages (pinned in tests/accounts/test_formatting.py)."""
    return formatting.when(value, always_date=True)


def bulk_notifications(user, count: int) -> list[Notification]:
    start = timezone.now() - timedelta(hours=1)
    return Notification.objects.bulk_create([
        Notification(recipient=user, kind="assigned", message=f"Message {n}", created_at=start + timedelta(minutes=n))
        for n in range(count)
    ])


def test_list_shows_unread_first_then_newest_with_the_unread_count(api, therapist):
    oldest, middle, newest = bulk_notifications(therapist, 3)
    middle.read_at = timezone.now()
    middle.save(update_fields=["read_at"])

    body = api(therapist).get(LIST).json()

    assert [n["id"] for n in body["results"]] == [newest.id, oldest.id, middle.id]
    assert body["unread"] == 2
    assert body["count"] == 3
    assert set(body["results"][0]) == {"id", "kind", "message", "appointment", "created_at", "read_at", "is_read"}
    assert [n["is_read"] for n in body["results"]] == [False, False, True]


def test_list_is_paginated(api, therapist):
    bulk_notifications(therapist, 35)
    client = api(therapist)
    first = client.get(LIST).json()
    assert (first["count"], len(first["results"]), first["unread"]) == (35, 30, 35)
    assert first["previous"] is None and first["next"]
    second = client.get(first["next"]).json()
    assert len(second["results"]) == 5 and second["next"] is None
    assert second["unread"] == 35
    assert [n["message"] for n in first["results"] + second["results"]] == [f"Message {n}" for n in range(34, -1, -1)]


def test_list_shows_only_my_notifications(api, therapist, therapist_b):
    bulk_notifications(therapist, 2)
    body = api(therapist_b).get(LIST).json()
    assert (body["count"], body["unread"], body["results"]) == (0, 0, [])


def test_mark_one_read(api, therapist):
    first, second = bulk_notifications(therapist, 2)
    with time_machine.travel(timezone.now(), tick=False):
        response = api(therapist).post(f"{LIST}{first.id}/read/")
        read_at = timezone.localtime().isoformat()
    assert response.status_code == 200
    assert response.json()["notification"]["is_read"] is True
    assert response.json()["notification"]["read_at"] == read_at
    assert response.json()["unread"] == 1

    again = api(therapist).post(f"{LIST}{first.id}/read/")
    assert again.json()["notification"]["read_at"] == read_at  # reading twice keeps the first time
    second.refresh_from_db()
    assert second.read_at is None


def test_marking_someone_elses_notification_is_404(api, therapist, therapist_b):
    [theirs] = bulk_notifications(therapist, 1)
    response = api(therapist_b).post(f"{LIST}{theirs.id}/read/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert api(therapist_b).post(f"{LIST}999999/read/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_mark_all_read_marks_only_mine(api, therapist, therapist_b):
    bulk_notifications(therapist, 3)
    bulk_notifications(therapist_b, 2)
    response = api(therapist).post(f"{LIST}read_all/")
    assert response.status_code == 200
    assert response.json() == {"marked": 3, "unread": 0}
    assert api(therapist).get(LIST).json()["unread"] == 0
    assert api(therapist_b).get(LIST).json()["unread"] == 2


def test_bell_needs_an_active_staff_login(api, therapist):
    assert api(None).get(LIST).status_code in (401, 403)
    assert api(None).post(f"{LIST}read_all/").status_code in (401, 403)


# --- The messages -------------------------------------------------------------------------------


def messages_of(api, user) -> list[tuple[str, str]]:
    return [(n["kind"], n["message"]) for n in reversed(api(user).get(LIST).json()["results"])]


def test_therapist_is_told_of_an_assignment_with_when_where_and_the_deadline(api, therapist, make_appointment):
    appt = make_appointment("pending", therapist)
    [(kind, message)] = messages_of(api, therapist)
    assert kind == "assigned"
    assert message == (f"New appointment #{appt.id} at {say(appt.starts_at)} "
                       f"(Swedish massage, 12 Mabini St, Makati), answer by {say(appt.response_deadline)}.")
    assert api(therapist).get(LIST).json()["results"][0]["appointment"] == appt.id


def test_every_operator_is_told_of_a_rejection_with_its_reason(api, operator, operator2, therapist,
                                                              make_appointment):
    appt = make_appointment("pending", therapist)
    workflow.reject(actor=therapist, appointment_id=appt.id, reason="Sprained wrist")
    for person in (operator, operator2):
        [(kind, message)] = messages_of(api, person)
        assert kind == "rejected"
        assert message.startswith(f"Ana Cruz rejected #{appt.id} (")
        assert message.endswith("Maria Lopez): Sprained wrist")


def test_therapist_is_told_of_a_denied_rejection_with_the_operators_note(api, operator, therapist,
                                                                        make_appointment):
    appt = make_appointment("rejected", therapist)
    workflow.review_rejection(actor=operator, appointment_id=appt.id, decision="deny",
                              note="Nobody else is free, please go")
    appt.refresh_from_db()
    kind, message = messages_of(api, therapist)[-1]
    assert kind == "rejection_denied"
    assert message.startswith(f"Your rejection of #{appt.id} ({say(appt.starts_at)}) "
                              "was denied: Nobody else is free, please go")
    assert message.endswith(f"Please answer by {say(appt.response_deadline)}.")


def test_timeout_tells_the_therapist_they_are_disabled_and_every_operator_what_happened(
        api, operator, operator2, therapist, make_appointment):
    appt = make_appointment("pending", therapist)
    with time_machine.travel(appt.response_deadline + timedelta(seconds=1), tick=False):
        workflow.sweep()
    kind, message = messages_of(api, therapist)[-1]
    assert kind == "timed_out"
    assert message.startswith(f"You did not answer appointment #{appt.id} (")
    assert "your account is disabled" in message
    for person in (operator, operator2):
        [(kind, message)] = messages_of(api, person)
        assert kind == "timeouts"
        assert message == f"1 appointment cancelled without a response: #{appt.id}; 1 therapist disabled."


def test_every_operator_is_told_of_a_cancellation_for_want_of_a_therapist(api, operator, operator2,
                                                                         make_appointment):
    nobody = Service.objects.create(name="Hot stone", duration_minutes=90, price="1200.00")
    appt = make_appointment("pending", service=nobody, starts_in=timedelta(minutes=20))
    workflow.sweep()
    for person in (operator, operator2):
        [(kind, message)] = messages_of(api, person)
        assert kind == "unstaffed"
        assert message == (f"#{appt.id} cancelled: Hot stone for Maria Lopez at "
                           f"{say(appt.starts_at)}, no therapist is available for it")


def test_therapist_is_told_when_re_enabled(api, operator, therapist, make_appointment):
    appt = make_appointment("pending", therapist)
    with time_machine.travel(appt.response_deadline + timedelta(seconds=1), tick=False):
        workflow.sweep()
    with time_machine.travel(appt.response_deadline + timedelta(minutes=10), tick=False):
        workflow.enable_therapist(actor=operator, therapist_id=therapist.id, note="Talked it through")
    kind, message = messages_of(api, therapist)[-1]
    assert kind == "enabled"
    assert message == "Your account was re-enabled by Olga Operator: Talked it through"
