"""A therapist's email address: where the reminder of an unseen offer goes. Set
when an operator creates the account (API) and editable in the admin."""

import pytest
from django.test import Client

from accounts.models import User
from tests.conftest import make_user

THERAPISTS = "/api/accounts/therapists/"
NEW = {"username": "carla", "password": "Mabini-Street-42", "first_name": "Carla", "last_name": "Reyes"}


def test_an_operator_creates_a_therapist_with_an_email(api, operator):
    response = api(operator).post(THERAPISTS, {**NEW, "email": "carla@example.com"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["email"] == "carla@example.com"
    assert User.objects.get(username="carla").email == "carla@example.com"
    listed = {t["username"]: t for t in api(operator).get(THERAPISTS).json()["results"]}
    assert listed["carla"]["email"] == "carla@example.com"


def test_the_email_is_optional(api, operator):
    response = api(operator).post(THERAPISTS, NEW, format="json")
    assert response.status_code == 201
    assert response.json()["email"] == ""


@pytest.mark.parametrize("email", ["not-an-address", "carla@", "a" * 250 + "@example.com"])
def test_a_bad_email_is_400_and_creates_nothing(api, operator, email):
    response = api(operator).post(THERAPISTS, {**NEW, "email": email}, format="json")
    assert response.status_code == 400
    assert "email" in response.json()["errors"]
    assert not User.objects.filter(username="carla").exists()


def test_an_admin_edits_a_therapists_email(therapist):
    admin = make_user("adam", "operator", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    page = client.get(f"/admin/accounts/user/{therapist.id}/change/")
    assert 'name="email"' in page.content.decode()
    form = {
        "username": therapist.username, "first_name": therapist.first_name, "last_name": therapist.last_name,
        "email": "ana.cruz@example.com", "phone": "+63 917 000 1111", "role": "therapist",
        "date_joined_0": "2026-01-01", "date_joined_1": "08:00:00",
        "status_changes-TOTAL_FORMS": "0", "status_changes-INITIAL_FORMS": "0",
    }
    response = client.post(f"/admin/accounts/user/{therapist.id}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    therapist.refresh_from_db()
    assert therapist.email == "ana.cruz@example.com"
