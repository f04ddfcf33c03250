"""GET /api/scheduling/events/?after=N: the dashboards' catch-up and polling feed."""

import json
from datetime import timedelta

from django.utils import timezone

from scheduling import workflow
from scheduling.models import AppointmentEvent, Client

FEED = "/api/scheduling/events/"


def test_feed_lists_events_oldest_first_with_each_appointments_current_state(api, operator, therapist,
                                                                              make_appointment):
    first = make_appointment("confirmed", therapist)
    second = make_appointment("pending", starts_in=timedelta(hours=6))

    body = api(operator).get(FEED).json()

    assert body["next"] is None
    results = body["results"]
    assert [(e["appointment"]["id"], e["kind"]) for e in results] == [
        (first.id, "created"), (first.id, "assigned"), (first.id, "accepted"), (second.id, "created")]
    assert [e["id"] for e in results] == sorted(e["id"] for e in results)
    assert set(results[0]) == {"id", "kind", "created_at", "from_status", "to_status", "appointment"}
    assert (results[2]["from_status"], results[2]["to_status"]) == ("pending", "confirmed")
    # Every event carries the appointment as it is now, not as it was then.
    assert {e["appointment"]["status"] for e in results[:3]} == {"confirmed"}
    assert results[0]["created_at"].endswith("+08:00")  # Asia/Manila, with its offset


def test_after_returns_only_the_events_after_that_id(api, operator, therapist, make_appointment):
    appt = make_appointment("pending", therapist)
    seen = api(operator).get(FEED).json()["results"][-1]["id"]
    workflow.accept(actor=therapist, appointment_id=appt.id)

    body = api(operator).get(FEED, {"after": seen}).json()

    assert [(e["kind"], e["appointment"]["status"]) for e in body["results"]] == [("accepted", "confirmed")]
    assert api(operator).get(FEED, {"after": body["results"][-1]["id"]}).json() == {"results": [], "next": None}


def test_a_full_page_links_to_the_next(api, operator, make_appointment, django_assert_max_num_queries):
    appt = make_appointment("pending")
    now = timezone.now()
    AppointmentEvent.objects.bulk_create([
        AppointmentEvent(appointment=appt, kind="created", from_status="", to_status="pending", created_at=now)
        for _ in range(250)
    ])
    everything = list(AppointmentEvent.objects.order_by("id").values_list("id", flat=True))
    assert len(everything) == 251

    client = api(operator)
    with django_assert_max_num_queries(4):
        page = client.get(FEED).json()
    assert len(page["results"]) == 200
    assert page["next"] == f"http://testserver{FEED}?after={everything[199]}"

    rest = client.get(page["next"]).json()
    assert [e["id"] for e in page["results"] + rest["results"]] == everything
    assert rest["next"] is None


def test_therapist_sees_only_events_of_their_own_appointments(api, operator, therapist, therapist_b, service):
    hidden_client = Client.objects.create(name="Alicia Hidalgo", phone="+63 917 555 0199",
                                          address="7 Secret Lane, Forbes Park")

    def book(person, client, hours):
        return workflow.create_appointment(actor=operator, client=client, service=service,
                                           starts_at=timezone.now() + timedelta(hours=hours),
                                           location=client.address, therapist_id=person.id)

    mine = book(therapist_b, Client.objects.create(name="Ben Reyes", phone="+63 917 555 0102"), 3)
    theirs = book(therapist, hidden_client, 5)
    workflow.accept(actor=therapist, appointment_id=theirs.id)

    body = api(therapist_b).get(FEED).json()

    assert [(e["appointment"]["id"], e["kind"]) for e in body["results"]] == [(mine.id, "assigned")]
    assert "Alicia" not in json.dumps(body) and "Secret Lane" not in json.dumps(body)
    everyone = api(operator).get(FEED).json()["results"]
    assert {e["appointment"]["id"] for e in everyone} == {mine.id, theirs.id}


def test_appointment_taken_away_from_a_therapist_shows_only_its_id_and_status(api, operator, therapist,
                                                                              therapist_b, make_appointment):
    appt = make_appointment("rejected", therapist)
    workflow.review_rejection(actor=operator, appointment_id=appt.id, decision="accept")
    workflow.assign(actor=operator, appointment_id=appt.id, therapist_id=therapist_b.id)

    mine_before = api(therapist).get(FEED).json()["results"]

    assert [e["kind"] for e in mine_before] == ["assigned", "rejected", "rejection_accepted"]
    for event in mine_before:
        assert event["appointment"] == {"id": appt.id, "status": "pending", "therapist": None, "is_mine": False}
    new_owner = api(therapist_b).get(FEED).json()["results"]
    assert [e["kind"] for e in new_owner] == ["assigned"]
    assert new_owner[0]["appointment"]["client"]["name"] == "Maria Lopez"


def test_bad_after_is_400(api, operator):
    for bad in ("abc", "-1", "1.5"):
        response = api(operator).get(FEED, {"after": bad})
        assert response.status_code == 400
        body = response.json()
        assert body["code"] == "invalid" and "after" in body["errors"]


def test_feed_needs_an_active_staff_login(api, therapist):
    assert api(None).get(FEED).status_code in (401, 403)
    therapist.is_active = False
    therapist.save(update_fields=["is_active"])
    assert api(therapist).get(FEED).status_code == 403
