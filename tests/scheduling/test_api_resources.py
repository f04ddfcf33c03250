"""Clients, services and availability through the API."""

from datetime import timedelta

import pytest
from django.utils import timezone

from scheduling.models import Availability, Client, Service
from tests.conftest import make_therapist
from tests.scheduling.test_api_appointments import assert_error, assert_invalid, db_snapshot, iso

CLIENTS = "/api/scheduling/clients/"
SERVICES = "/api/scheduling/services/"
SLOTS = "/api/scheduling/availability/"


# --- Clients ---------------------------------------------------------------------


def test_operator_creates_and_finds_a_client(api, operator):
    response = api(operator).post(CLIENTS, {"name": "Jose Rizal", "phone": "+63 917 000 1111",
                                            "email": "jose@example.com", "address": "Calamba"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert Client.objects.get(pk=body["id"]).name == "Jose Rizal"
    found = api(operator).get(CLIENTS, {"q": "rizal"}).json()
    assert [c["id"] for c in found["results"]] == [body["id"]]
    assert set(found) >= {"count", "next", "previous", "results"}


@pytest.mark.parametrize(("field", "payload"), [
    ("name", {"phone": "+63 917 000 1111"}),
    ("name", {"name": "  ", "phone": "+63 917 000 1111"}),
    ("phone", {"name": "Jose"}),
    ("phone", {"name": "Jose", "phone": "call me"}),
    ("email", {"name": "Jose", "phone": "+63 917 000 1111", "email": "not-an-email"}),
    ("name", {"name": "Jo\x00se", "phone": "+63 917 000 1111"}),
], ids=["missing-name", "blank-name", "missing-phone", "bad-phone", "bad-email", "control-character"])
def test_creating_a_client_with_bad_input_is_400(api, operator, field, payload):
    before = db_snapshot()
    assert_invalid(api(operator).post(CLIENTS, payload, format="json"), field)
    assert db_snapshot() == before


# --- Services --------------------------------------------------------------------


def test_everyone_reads_services_but_only_operators_write_them(api, operator, therapist, service):
    listed = api(therapist).get(SERVICES)
    assert listed.status_code == 200
    assert [s["id"] for s in listed.json()["results"]] == [service.id]
    assert listed.json()["results"][0]["therapists"] == [therapist.id]
    response = api(operator).post(SERVICES, {"name": "Shiatsu", "duration_minutes": 90, "price": "1200.00",
                                             "therapists": [therapist.id]}, format="json")
    assert response.status_code == 201, response.content
    created = Service.objects.get(pk=response.json()["id"])
    assert list(created.therapists.values_list("id", flat=True)) == [therapist.id]
    assert_error(api(therapist).post(SERVICES, {"name": "Hilot", "duration_minutes": 60, "price": "1"},
                                     format="json"), 403, "permission_denied")


@pytest.mark.parametrize(("field", "overrides"), [
    ("duration_minutes", {"duration_minutes": 5}),
    ("duration_minutes", {"duration_minutes": 481}),
    ("price", {"price": "-1"}),
    ("therapists", {"therapists": [987654]}),
    ("therapists", {"therapists": ["operator"]}),
    ("name", {"name": "Swedish massage"}),
], ids=["too-short", "too-long", "negative-price", "unknown-therapist", "operator-as-therapist", "duplicate-name"])
def test_creating_a_service_with_bad_input_is_400(api, operator, service, field, overrides):
    payload = {"name": "Shiatsu", "duration_minutes": 60, "price": "900.00", **overrides}
    if payload.get("therapists") == ["operator"]:
        payload["therapists"] = [operator.id]
    before = db_snapshot()
    assert_invalid(api(operator).post(SERVICES, payload, format="json"), field)
    assert db_snapshot() == before


# --- Availability ----------------------------------------------------------------


def _slot(hours_from_now: float, length_hours: float = 2) -> dict:
    start = timezone.now() + timedelta(hours=hours_from_now)
    return {"starts_at": iso(start), "ends_at": iso(start + timedelta(hours=length_hours))}


def test_a_therapist_adds_and_lists_only_their_own_slots(api, therapist, therapist_b):
    response = api(therapist).post(SLOTS, _slot(72), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["therapist"] == therapist.id
    assert Availability.objects.get(pk=body["id"]).therapist_id == therapist.id
    mine = api(therapist).get(SLOTS).json()["results"]
    assert {s["therapist"] for s in mine} == {therapist.id}
    assert len(mine) == 2


def test_an_operator_adds_slots_for_anyone_and_sees_everyone(api, operator, therapist, therapist_b):
    response = api(operator).post(SLOTS, {"therapist": therapist_b.id, **_slot(72)}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["therapist"] == therapist_b.id
    everyone = api(operator).get(SLOTS).json()["results"]
    assert {s["therapist"] for s in everyone} == {therapist.id, therapist_b.id}


def _bad_slots(therapist_b):
    now = timezone.now()
    return [
        ("therapist", "therapist", {"therapist": therapist_b.id, **_slot(72)}),
        ("operator", "therapist", _slot(72)),
        ("therapist", "ends_at", {"starts_at": iso(now + timedelta(hours=73)),
                                  "ends_at": iso(now + timedelta(hours=72))}),
        ("therapist", "starts_at", {"starts_at": (now + timedelta(hours=72)).replace(tzinfo=None).isoformat(),
                                    "ends_at": iso(now + timedelta(hours=74))}),
        ("therapist", "ends_at", {"starts_at": iso(now - timedelta(hours=5)),
                                  "ends_at": iso(now - timedelta(hours=1))}),
        ("therapist", "ends_at", _slot(72, length_hours=25)),
        ("therapist", "starts_at", _slot(10)),  # overlaps the fixture's 48-hour slot
    ]


BAD_SLOT_IDS = ["therapist-for-someone-else", "operator-without-therapist", "ends-before-start", "naive-datetime",
                "in-the-past", "longer-than-a-day", "overlapping"]


@pytest.mark.parametrize("case", range(len(BAD_SLOT_IDS)), ids=BAD_SLOT_IDS)
def test_adding_a_bad_slot_is_400(api, operator, therapist, therapist_b, case):
    who, field, payload = _bad_slots(therapist_b)[case]
    before = db_snapshot()
    assert_invalid(api(operator if who == "operator" else therapist).post(SLOTS, payload, format="json"), field)
    assert db_snapshot() == before


def test_slot_errors_name_the_fields_as_the_page_does(api, therapist):
    """"From" and "Until" on the therapist's page; never starts_at or ends_at."""
    now = timezone.now()
    backwards = api(therapist).post(SLOTS, {"starts_at": iso(now + timedelta(hours=73)),
                                            "ends_at": iso(now + timedelta(hours=72))}, format="json")
    assert assert_invalid(backwards, "ends_at")["errors"]["ends_at"] == ["Until must be after From."]
    past = api(therapist).post(SLOTS, {"starts_at": iso(now - timedelta(hours=5)),
                                       "ends_at": iso(now - timedelta(hours=1))}, format="json")
    assert assert_invalid(past, "ends_at")["errors"]["ends_at"] == ["Until must be in the future."]
    overlapping = api(therapist).post(SLOTS, _slot(10), format="json")
    [message] = assert_invalid(overlapping, "starts_at")["errors"]["starts_at"]
    assert message.startswith("Overlaps your slot ") and " – " in message
    for response in (backwards, past, overlapping):
        assert "starts_at" not in str(response.json()["errors"].values())
        assert "ends_at" not in str(response.json()["errors"].values())


def test_deleting_a_free_slot_is_204(api, operator, therapist):
    slot = Availability.objects.get(therapist=therapist)
    assert api(therapist).delete(f"{SLOTS}{slot.pk}/").status_code == 204
    assert not Availability.objects.filter(pk=slot.pk).exists()
    other = make_therapist("cora", None)
    other_slot = Availability.objects.get(therapist=other)
    assert api(operator).delete(f"{SLOTS}{other_slot.pk}/").status_code == 204


def test_a_therapist_cannot_delete_someone_elses_slot(api, therapist, therapist_b):
    slot = Availability.objects.get(therapist=therapist_b)
    assert_error(api(therapist).delete(f"{SLOTS}{slot.pk}/"), 404, "not_found")
    assert Availability.objects.filter(pk=slot.pk).exists()


@pytest.mark.parametrize("state", ["pending", "confirmed", "rejected", "in_progress"])
def test_deleting_a_slot_with_an_open_appointment_in_it_is_409(api, make_appointment, operator, therapist, state):
    appt = make_appointment(state, therapist)
    slot = Availability.objects.get(therapist=therapist)
    before = db_snapshot()
    body = assert_error(api(operator).delete(f"{SLOTS}{slot.pk}/"), 409, "slot_in_use")
    assert f"#{appt.pk}" in body["detail"]
    assert db_snapshot() == before


def test_deleting_a_slot_whose_appointments_are_finished_is_allowed(api, make_appointment, therapist):
    make_appointment("cancelled", therapist)
    slot = Availability.objects.get(therapist=therapist)
    assert api(therapist).delete(f"{SLOTS}{slot.pk}/").status_code == 204
