"""The day board's API (`GET /api/scheduling/day/`) and its tab: the exact shape of
DESIGN.md's "The day board", a business date, and a fixed number of queries
however many therapists and appointments there are."""

import json
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from scheduling import workflow
from scheduling.models import Appointment, Availability
from tests.conftest import make_therapist

from .test_api_appointments import assert_error

DAY = "/api/scheduling/day/"
MANILA = ZoneInfo("Asia/Manila")
# therapists + their availability that day + the day's appointments (client,
# service and therapist joined) + those appointments' rejections.
DAY_BUDGET = 4


@pytest.fixture
def morning():
    """09:00 on Wed 4 March 2030 in the business zone, frozen."""
    with time_machine.travel(datetime(2030, 3, 4, 9, 0, tzinfo=MANILA), tick=False) as traveller:
        yield traveller


def at(hour: int, minute: int = 0, day: int = 4) -> datetime:
    return datetime(2030, 3, day, hour, minute, tzinfo=MANILA)


def book(operator, client_obj, service, start: datetime, therapist=None, location="12 Mabini St, Makati"):
    return workflow.create_appointment(actor=operator, client=client_obj, service=service, starts_at=start,
                                       location=location, therapist_id=therapist and therapist.id)


def test_the_day_board_has_the_designs_shape(api, morning, operator, client_obj, service, therapist, therapist_b):
    dina = make_therapist("dina", service, name="Dina Reyes")
    pending = book(operator, client_obj, service, at(10), therapist)
    confirmed = book(operator, client_obj, service, at(13), therapist)
    workflow.accept(actor=therapist, appointment_id=confirmed.id)
    bea_job = book(operator, client_obj, service, at(11, 30), therapist_b)
    waiting = book(operator, client_obj, service, at(16))
    cancelled = book(operator, client_obj, service, at(15), therapist_b)
    workflow.cancel(actor=operator, appointment_id=cancelled.id, reason="Client called off")
    book(operator, client_obj, service, at(10, day=5), therapist)  # tomorrow
    dina.is_active = False
    dina.save(update_fields=["is_active"])
    Availability.objects.create(therapist=therapist_b, starts_at=at(18), ends_at=at(22))
    Availability.objects.create(therapist=therapist_b, starts_at=at(8, day=6), ends_at=at(12, day=6))

    response = api(operator).get(DAY)
    assert response.status_code == 200, response.content
    board = response.json()
    assert set(board) == {"date", "therapists", "unassigned"}
    assert board["date"] == "2030-03-04"
    # Every therapist, active ones first, by name; the disabled one still shows, with their flag.
    assert [(t["name"], t["is_active"]) for t in board["therapists"]] == [
        ("Ana Cruz", True), ("Bea Santos", True), ("Dina Reyes", False)]
    ana, bea, _ = board["therapists"]
    assert set(ana) == {"id", "name", "phone", "is_active", "availability", "appointments"}
    assert ana["id"] == therapist.id and ana["phone"] == ""
    # The slot from the fixture (from 08:00 for 49 h) and Bea's evening one; not the one two days on.
    assert ana["availability"] == [{"starts_at": "2030-03-04T08:00:00+08:00", "ends_at": "2030-03-06T09:00:00+08:00"}]
    assert [s["starts_at"] for s in bea["availability"]] == ["2030-03-04T08:00:00+08:00", "2030-03-04T18:00:00+08:00"]
    # Their appointments that day, as the appointment JSON of the API; cancelled ones are free time again.
    assert [a["id"] for a in ana["appointments"]] == [pending.id, confirmed.id]
    assert [a["id"] for a in bea["appointments"]] == [bea_job.id]
    detail = api(operator).get(f"/api/scheduling/appointments/{pending.id}/").json()
    del detail["history"]
    assert ana["appointments"][0] == detail
    assert ana["appointments"][0]["seconds_to_deadline"] == 30 * 60
    assert [a["id"] for a in board["unassigned"]] == [waiting.id]
    assert board["unassigned"][0]["therapist"] is None


def test_the_day_is_a_business_date(api, morning, operator, client_obj, service, therapist):
    late = book(operator, client_obj, service, at(23, 30), therapist)  # 15:30 UTC, still the 4th in Manila
    early = book(operator, client_obj, service, at(0, 30, day=5), therapist)  # 16:30 UTC on the 4th
    today = api(operator).get(DAY, {"date": "2030-03-04"}).json()
    tomorrow = api(operator).get(DAY, {"date": "2030-03-05"}).json()
    assert [a["id"] for a in today["therapists"][0]["appointments"]] == [late.id]
    assert [a["id"] for a in tomorrow["therapists"][0]["appointments"]] == [late.id, early.id]
    assert tomorrow["date"] == "2030-03-05"
    # Late in the evening UTC it is already tomorrow in Manila: the default follows the business zone.
    with time_machine.travel(datetime(2030, 3, 4, 17, 0, tzinfo=ZoneInfo("UTC")), tick=False):
        assert api(operator).get(DAY).json()["date"] == "2030-03-05"


@pytest.mark.parametrize("value", ["tomorrow", "2030-02-30", "04/03/2030", "2030-3-4x"])
def test_a_bad_date_is_400(api, operator, value):
    body = assert_error(api(operator).get(DAY, {"date": value}), 400, "invalid")
    assert list(body["errors"]) == ["date"]


def test_only_operators_see_the_board(api, therapist):
    assert_error(api(therapist).get(DAY), 403, "permission_denied")
    assert api(None).get(DAY).status_code in (401, 403)


def many_therapists(n: int, service, client_obj, operator, day_start: datetime) -> None:
    """n therapists, each with a slot and two appointments that day (one with a rejection
    history), written in a few queries."""
    users = User.objects.bulk_create([
        User(username=f"t{i:03d}", first_name="T", last_name=f"{i:03d}", role=User.Role.THERAPIST, password="!")
        for i in range(n)])
    service.therapists.add(*users)
    Availability.objects.bulk_create([
        Availability(therapist=u, starts_at=day_start, ends_at=day_start + timedelta(hours=12)) for u in users])
    appts = []
    for i, u in enumerate(users):
        for hour in (1, 4):
            start = day_start + timedelta(hours=hour)
            appts.append(Appointment(client=client_obj, service=service, therapist=u, status="confirmed",
                                     starts_at=start, ends_at=start + timedelta(hours=1), location=f"Room {i}",
                                     updated_at=day_start))
        start = day_start + timedelta(hours=6)
        appts.append(Appointment(client=client_obj, service=service, status="pending", starts_at=start,
                                 ends_at=start + timedelta(hours=1), location=f"Hall {i}", updated_at=day_start))
    Appointment.objects.bulk_create(appts)


@pytest.mark.parametrize("n", [10, 200])
def test_the_board_costs_a_fixed_number_of_queries(api, morning, operator, client_obj, service, n,
                                                   django_assert_max_num_queries):
    many_therapists(n, service, client_obj, operator, at(9))
    client = api(operator)
    with CaptureQueriesContext(connection) as queries, django_assert_max_num_queries(DAY_BUDGET):
        response = client.get(DAY)
    assert response.status_code == 200
    board = response.json()
    assert len(board["therapists"]) == n
    assert all(len(t["appointments"]) == 2 and len(t["availability"]) == 1 for t in board["therapists"])
    assert len(board["unassigned"]) == n
    assert len(queries) == DAY_BUDGET
    print(f"day board with {n} therapists and {3 * n} appointments: {len(queries)} queries")


@pytest.mark.parametrize("tab", ["day"])
def test_the_day_tab_is_its_own_address(client, operator, tab, settings):
    client.force_login(operator)
    response = client.get("/operator/?tab=day&date=2030-03-04")
    assert response.status_code == 200
    body = response.content.decode()
    assert re.search(r'<a href="\?tab=day" data-tab="day" aria-current="page">', body)
    assert re.search(r'<section id="panel-day" class="panel" data-panel="day" aria-labelledby="h-day">', body)
    assert "<title>Day board · Operator · Royal Care Scheduling</title>" in body
    assert "js/dayboard.js" in body and "css/dayboard.css" in body
    data = json.loads(re.search(r'<script id="page-data" type="application/json">(.*?)</script>', body, re.S)[1])
    assert data["tab"] == "day"
    assert data["travel_buffer_minutes"] == getattr(settings, "TRAVEL_BUFFER_MINUTES", 30)
