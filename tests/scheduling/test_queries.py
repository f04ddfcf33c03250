"""Query budgets: list pages and the events feed cost a fixed number of queries,
however many rows there are."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import User
from scheduling.models import Appointment, AppointmentEvent, AppointmentRejection, Availability
from tests.conftest import make_therapist

# count + page (with client, service, therapist joined) + the page's rejections.
LIST_BUDGET = 3
# events + their appointments + those appointments' rejections.
FEED_BUDGET = 3


def bulk_appointments(n: int, client, service, therapists: list[User]) -> list[Appointment]:
    """n appointments in every state, some with rejections, written in a few queries."""
    now = timezone.now()
    statuses = ["pending", "confirmed", "rejected", "in_progress", "completed", "cancelled"]
    appts = []
    for i in range(n):
        starts_at = now + timedelta(hours=1 + i)
        status = statuses[i % len(statuses)]
        therapist = None if i % 7 == 0 and status == "pending" else therapists[i % len(therapists)]
        appts.append(Appointment(
            client=client, service=service, therapist=therapist, status=status, starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=1), location=f"Room {i}", updated_at=now,
            response_deadline=now + timedelta(minutes=30) if therapist and status == "pending" else None,
            cancellation_reason="operator" if status == "cancelled" else "",
        ))
    appts = Appointment.objects.bulk_create(appts)
    AppointmentRejection.objects.bulk_create([
        AppointmentRejection(appointment=a, therapist=a.therapist, reason="Busy", created_at=now)
        for a in appts if a.status == "rejected"
    ])
    return appts


@pytest.fixture
def therapists(service):
    return [make_therapist(f"t{i}", service) for i in range(5)]


@pytest.mark.parametrize("n", [5, 500])
def test_appointment_list_costs_a_fixed_number_of_queries(
        api, operator, client_obj, service, therapists, django_assert_max_num_queries, n):
    bulk_appointments(n, client_obj, service, therapists)
    client = api(operator)
    with django_assert_max_num_queries(LIST_BUDGET):
        response = client.get("/api/scheduling/appointments/", {"page_size": 200})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == n
    assert len(body["results"]) == min(n, 200)
    rejected = [a for a in body["results"] if a["status"] == "rejected"]
    assert all(a["latest_rejection"]["reason"] == "Busy" for a in rejected)


@pytest.mark.parametrize("n", [5, 500])
def test_a_therapists_list_costs_a_fixed_number_of_queries(
        api, operator, client_obj, service, therapists, django_assert_max_num_queries, n):
    bulk_appointments(n, client_obj, service, therapists)
    client = api(therapists[0])
    with django_assert_max_num_queries(LIST_BUDGET):
        response = client.get("/api/scheduling/appointments/", {"status": "pending,confirmed,rejected"})
    assert response.status_code == 200
    assert {a["therapist"]["id"] for a in response.json()["results"]} <= {therapists[0].id}


@pytest.mark.parametrize("n", [5, 200])
def test_events_feed_costs_a_fixed_number_of_queries(
        api, operator, client_obj, service, therapists, django_assert_max_num_queries, n):
    appts = bulk_appointments(min(n, 60), client_obj, service, therapists)
    now = timezone.now()
    AppointmentEvent.objects.bulk_create([
        AppointmentEvent(appointment=appts[i % len(appts)], kind="created", actor=operator,
                         therapist=appts[i % len(appts)].therapist, from_status="", to_status="pending",
                         created_at=now)
        for i in range(n)
    ])
    client = api(operator)
    with django_assert_max_num_queries(FEED_BUDGET):
        response = client.get("/api/scheduling/events/", {"after": 0})
    assert response.status_code == 200
    assert len(response.json()["results"]) == n


@pytest.mark.django_db
@pytest.mark.parametrize(("model", "column", "composite"), [
    (AppointmentEvent, "appointment_id", ["appointment_id", "id"]),
    (AppointmentEvent, "therapist_id", ["therapist_id", "id"]),
    (Availability, "therapist_id", ["therapist_id", "starts_at", "ends_at"]),
])
def test_a_key_is_indexed_once_by_the_composite_that_leads_with_it(model, column, composite):
    """Every transition writes an event (a sweep batch 500): each index is one
    more entry written, so a key the composite index already leads with has no
    index of its own."""
    from django.db import connection

    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    leading = [info["columns"] for info in constraints.values()
               if info["index"] and not info["primary_key"] and info["columns"][:1] == [column]]
    assert leading == [composite]
