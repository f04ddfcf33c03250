"""A therapist's calendar feed: a secret address (no login) serving RFC 5545 that
calendar apps subscribe to; rotating the secret makes the old address 404.
Operators can see whether a therapist has one, never the address."""

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from icalendar import Calendar

from scheduling import workflow
from scheduling.feeds import appointment_uid
from tests.conftest import make_user

ROTATE = "/api/accounts/me/calendar/rotate/"


def fetch(url: str):
    path = url.removeprefix("http://testserver")
    return Client().get(path)


def events_of(response) -> dict[str, object]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    calendar = Calendar.from_ical(response.content)
    assert calendar["VERSION"] == "2.0" and calendar["PRODID"]
    return {str(event["UID"]): event for event in calendar.walk("VEVENT")}


@pytest.fixture
def feed_url(api, therapist) -> str:
    response = api(therapist).post(ROTATE)
    assert response.status_code == 200, response.content
    return response.json()["calendar_url"]


def test_a_therapist_has_no_feed_until_they_ask_and_then_me_carries_the_address(api, therapist, operator):
    assert api(therapist).get("/api/accounts/me/").json()["calendar_url"] is None
    url = api(therapist).post(ROTATE).json()["calendar_url"]
    assert url.startswith("http://testserver/calendar/") and url.endswith(".ics")
    assert api(therapist).get("/api/accounts/me/").json()["calendar_url"] == url
    assert api(operator).get("/api/accounts/me/").json()["calendar_url"] is None
    assert api(operator).post(ROTATE).status_code == 403


def test_the_feed_carries_the_therapists_appointments_by_status(feed_url, operator, therapist, therapist_b,
                                                               make_appointment, client_obj, service):
    pending = make_appointment("pending", therapist)
    confirmed = make_appointment("confirmed", therapist, starts_in=timedelta(hours=6))
    started = make_appointment("in_progress", therapist, starts_in=timedelta(minutes=10))
    cancelled = make_appointment("cancelled", therapist, starts_in=timedelta(hours=9))
    someone_elses = make_appointment("confirmed", therapist_b, starts_in=timedelta(hours=12))
    workflow.create_appointment(actor=operator, client=client_obj, service=service, location="Taguig",
                                starts_at=timezone.now() + timedelta(hours=14))  # unassigned

    events = events_of(fetch(feed_url))
    assert set(events) == {appointment_uid(a.id) for a in (pending, confirmed, started, cancelled)}
    assert appointment_uid(someone_elses.id) not in events

    p = events[appointment_uid(pending.id)]
    assert str(p["STATUS"]) == "TENTATIVE"
    assert str(p["SUMMARY"]) == "Awaiting your answer: Swedish massage – Maria"
    assert "awaiting your answer" in str(p["DESCRIPTION"]).lower()
    # iCalendar times are to the second.
    assert p.decoded("DTSTART") == pending.starts_at.replace(microsecond=0)
    assert p.decoded("DTEND") == pending.ends_at.replace(microsecond=0)
    assert str(p["LOCATION"]) == "12 Mabini St, Makati"

    c = events[appointment_uid(confirmed.id)]
    assert (str(c["STATUS"]), str(c["SUMMARY"])) == ("CONFIRMED", "Swedish massage – Maria")
    assert str(events[appointment_uid(started.id)]["STATUS"]) == "CONFIRMED"
    x = events[appointment_uid(cancelled.id)]
    assert (str(x["STATUS"]), str(x["SUMMARY"])) == ("CANCELLED", "Cancelled: Swedish massage – Maria")
    for event in events.values():
        text = event.to_ical().decode()
        assert "Lopez" not in text and "917 555" not in text, "only the client's first name"
        assert "Client: Maria" in str(event["DESCRIPTION"])


def test_notes_and_uids_are_stable_across_changes(feed_url, operator, therapist, make_appointment):
    appt = make_appointment("pending", therapist)
    appt.notes = "Gate code 4412; bring extra towels"
    appt.save(update_fields=["notes"])
    before = events_of(fetch(feed_url))[appointment_uid(appt.id)]
    assert "Notes: Gate code 4412; bring extra towels" in str(before["DESCRIPTION"])
    workflow.accept(actor=therapist, appointment_id=appt.id)
    after = events_of(fetch(feed_url))
    assert list(after) == [appointment_uid(appt.id)]
    assert str(after[appointment_uid(appt.id)]["STATUS"]) == "CONFIRMED"


def test_the_feed_starts_thirty_days_back(feed_url, therapist, make_appointment):
    old = make_appointment("completed", therapist, starts_in=timedelta(minutes=20))
    recent = make_appointment("completed", therapist, starts_in=timedelta(hours=2, minutes=20))
    with time_machine.travel(old.starts_at + timedelta(days=30, minutes=30)):
        events = events_of(fetch(feed_url))
    assert set(events) == {appointment_uid(recent.id)}


def test_rotating_makes_the_old_address_404_and_needs_no_login_for_the_new(api, feed_url, therapist,
                                                                          make_appointment):
    make_appointment("pending", therapist)
    assert len(events_of(fetch(feed_url))) == 1
    new_url = api(therapist).post(ROTATE).json()["calendar_url"]
    assert new_url != feed_url
    assert fetch(feed_url).status_code == 404
    assert len(events_of(fetch(new_url))) == 1
    assert api(therapist).get("/api/accounts/me/").json()["calendar_url"] == new_url


@pytest.mark.parametrize("secret", ["nope", "x" * 43, ""])
def test_an_unknown_address_is_404(db, secret):
    assert Client().get(f"/calendar/{secret}.ics").status_code == 404


def test_a_disabled_therapists_feed_answers_404(feed_url, therapist):
    therapist.is_active = False
    therapist.save()
    assert fetch(feed_url).status_code == 404


def test_operators_see_whether_a_therapist_has_a_feed_never_its_address(api, feed_url, operator, therapist,
                                                                       therapist_b):
    rows = {t["id"]: t for t in api(operator).get("/api/accounts/therapists/").json()["results"]}
    assert rows[therapist.id]["has_calendar_feed"] is True
    assert rows[therapist_b.id]["has_calendar_feed"] is False
    secret = feed_url.rsplit("/", 1)[1].removesuffix(".ics")
    listing = api(operator).get("/api/accounts/therapists/").content.decode()
    assert secret not in listing


def test_the_admin_shows_whether_a_therapist_has_a_feed_never_its_address(feed_url, therapist):
    admin = make_user("adam", "operator", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    secret = feed_url.rsplit("/", 1)[1].removesuffix(".ics")
    listing = client.get("/admin/accounts/user/")
    change = client.get(f"/admin/accounts/user/{therapist.id}/change/")
    assert listing.status_code == 200 and change.status_code == 200
    for page in (listing, change):
        assert secret not in page.content.decode()
    assert "calendar feed" in listing.content.decode().lower()
