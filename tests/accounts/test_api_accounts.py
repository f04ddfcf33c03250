"""Token login, the caller's own account, therapist accounts and re-enabling."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.forms import SignInGuard
from accounts.models import AccountStatusChange, User
from notifications.models import Notification
from scheduling import workflow
from tests.conftest import make_user

TOKEN = "/api/accounts/token/"
ME = "/api/accounts/me/"
THERAPISTS = "/api/accounts/therapists/"


@pytest.fixture(autouse=True)
def _fresh_sign_in_guard():
    """The failed-sign-in counts live in the (per-run) cache: start each test from none."""
    for username in ("ana", "nobody", "carla"):
        SignInGuard(username, "127.0.0.1").succeeded()


def enable_url(user) -> str:
    return f"{THERAPISTS}{user.pk}/enable/"


def login(username: str, password: str):
    return APIClient().post(TOKEN, {"username": username, "password": password}, format="json")


def token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def disable(user: User, reason: str = "No response to appointment #7") -> None:
    """Disabled today at 2:32 PM, business time."""
    at = timezone.localtime().replace(hour=14, minute=32, second=0, microsecond=0)
    User.objects.filter(pk=user.pk).update(is_active=False, disabled_reason=reason, disabled_at=at)


# --- Token -------------------------------------------------------------------------


def test_token_for_valid_credentials_opens_the_api(therapist):
    response = login("ana", "pass-ana")
    assert response.status_code == 200, response.content
    key = response.json()["token"]
    assert Token.objects.get(user=therapist).key == key
    me = token_client(key).get(ME)
    assert me.status_code == 200
    assert (me.json()["id"], me.json()["role"]) == (therapist.id, "therapist")
    # Logging in again gives the same token.
    assert login("ana", "pass-ana").json()["token"] == key


@pytest.mark.parametrize(("username", "password"), [("ana", "wrong"), ("nobody", "pass-ana")])
def test_token_for_wrong_credentials_is_401(therapist, username, password):
    response = login(username, password)
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "authentication_failed"
    assert "token" not in response.json()
    assert not Token.objects.exists()


@pytest.mark.parametrize("payload", [{}, {"username": "ana"}, {"username": "", "password": ""},
                                     {"username": ["ana"], "password": "pass-ana"}])
def test_token_without_credentials_is_400(therapist, payload):
    response = APIClient().post(TOKEN, payload, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert response.json()["errors"]


def test_token_for_a_disabled_therapist_is_403_with_the_reason(therapist):
    disable(therapist)
    response = login("ana", "pass-ana")
    assert response.status_code == 403, response.content
    body = response.json()
    assert body["code"] == "account_disabled"
    assert body["detail"] == ("Your account was disabled at 2:32 PM: no response to appointment #7. "
                              "Ask an operator to re-enable it.")
    assert not Token.objects.exists()


def test_the_token_of_a_disabled_therapist_is_refused(therapist):
    key = login("ana", "pass-ana").json()["token"]
    disable(therapist)
    for path in (ME, "/api/scheduling/appointments/", "/api/scheduling/events/"):
        response = token_client(key).get(path)
        assert response.status_code == 403, path
        assert response.json() == {
            "code": "account_disabled",
            "detail": "Your account was disabled at 2:32 PM: no response to appointment #7. "
                      "Ask an operator to re-enable it.",
        }


def test_a_disabled_therapists_session_calls_answer_account_disabled_and_change_nothing(
        therapist, make_appointment):
    """The late tap on Accept: the browser's session call says why, not "credentials were not provided"."""
    appt = make_appointment("pending", therapist)
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(therapist)
    disable(therapist, "No response to appointment #41 (Wed, Dec 2, 3:00 PM) by Wed, Dec 2, 2:30 PM")
    expected = {
        "code": "account_disabled",
        "detail": "Your account was disabled at 2:32 PM: no response to appointment #41 (Wed, Dec 2, 3:00 PM) by "
                  "Wed, Dec 2, 2:30 PM. Ask an operator to re-enable it.",
    }
    for method, path in [("get", ME), ("get", "/api/scheduling/appointments/"), ("get", "/api/notifications/"),
                         ("post", f"/api/scheduling/appointments/{appt.id}/accept/"),
                         ("post", f"/api/scheduling/appointments/{appt.id}/reject/")]:
        response = getattr(browser, method)(path, {}, format="json")
        assert response.status_code == 403, (path, response.content)
        assert response.json() == expected, path
    appt.refresh_from_db()
    assert appt.status == "pending"


def test_account_disabled_without_a_recorded_time_or_reason_still_explains(therapist, operator):
    User.objects.filter(pk__in=[therapist.pk, operator.pk]).update(is_active=False)
    for user in (therapist, operator):
        browser = APIClient()
        browser.force_login(user)
        response = browser.get(ME)
        assert response.status_code == 403
        assert response.json() == {"code": "account_disabled",
                                   "detail": "Your account was disabled. Ask an operator to re-enable it."}


def test_a_disabled_date_that_is_not_today_is_named(therapist):
    key = login("ana", "pass-ana").json()["token"]
    at = timezone.localtime().replace(hour=9, minute=5, second=0, microsecond=0) - timedelta(days=1)
    User.objects.filter(pk=therapist.pk).update(is_active=False, disabled_at=at, disabled_reason="Asked to pause.")
    detail = token_client(key).get(ME).json()["detail"]
    day = f"{at:%a}, {at:%b} {at.day}" + (f", {at.year}" if at.year != timezone.localtime().year else "")
    assert detail == f"Your account was disabled at {day}, 9:05 AM: asked to pause. Ask an operator to re-enable it."


def test_a_bad_token_is_refused(therapist):
    response = token_client("0" * 40).get(ME)
    assert response.status_code in (401, 403)
    assert response.json()["code"] == "authentication_failed"


# --- Me ----------------------------------------------------------------------------


def test_me_describes_the_caller(api, operator):
    body = api(operator).get(ME).json()
    assert body == {**body, "id": operator.id, "username": "olga", "name": "Olga Operator", "role": "operator",
                    "is_active": True}
    assert "password" not in body


# --- Therapist accounts ----------------------------------------------------------


def test_an_operator_creates_a_therapist_who_can_log_in(api, operator):
    response = api(operator).post(THERAPISTS, {
        "username": "carla", "password": "Mabini-Street-42", "first_name": "Carla", "last_name": "Reyes",
        "phone": "+63 917 222 3333",
    }, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["username"], body["role"], body["name"], body["is_active"]) == (
        "carla", "therapist", "Carla Reyes", True)
    assert "password" not in body
    user = User.objects.get(username="carla")
    assert user.role == "therapist" and user.check_password("Mabini-Street-42")
    assert not user.is_staff and not user.is_superuser
    assert login("carla", "Mabini-Street-42").status_code == 200


@pytest.mark.parametrize("password", ["short", "12345678901", "password123", "carla1234"],
                         ids=["too-short", "numeric", "common", "like-the-name"])
def test_a_weak_password_is_400_on_the_password_field(api, operator, password):
    response = api(operator).post(THERAPISTS, {"username": "carla", "password": password, "first_name": "Carla",
                                               "last_name": "Reyes"}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"
    assert response.json()["errors"]["password"]
    assert not User.objects.filter(username="carla").exists()


def test_a_duplicate_username_is_400(api, operator, therapist):
    response = api(operator).post(THERAPISTS, {"username": "ana", "password": "Mabini-Street-42",
                                               "first_name": "Ana", "last_name": "Other"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["username"]
    assert User.objects.filter(username="ana").count() == 1


@pytest.mark.parametrize("missing", ["username", "password", "first_name", "last_name"])
def test_a_therapist_without_a_required_field_is_400(api, operator, missing):
    payload = {"username": "carla", "password": "Mabini-Street-42", "first_name": "Carla", "last_name": "Reyes"}
    del payload[missing]
    response = api(operator).post(THERAPISTS, payload, format="json")
    assert response.status_code == 400
    assert missing in response.json()["errors"]
    assert not User.objects.filter(role="therapist").exists()


def test_therapists_cannot_create_or_list_therapists(api, therapist):
    payload = {"username": "carla", "password": "Mabini-Street-42", "first_name": "Carla", "last_name": "Reyes"}
    assert api(therapist).post(THERAPISTS, payload, format="json").status_code == 403
    assert api(therapist).get(THERAPISTS).status_code == 403
    assert not User.objects.filter(username="carla").exists()


def test_operators_list_therapists_and_filter_the_disabled(api, operator, therapist, therapist_b):
    disable(therapist_b)
    everyone = api(operator).get(THERAPISTS).json()
    assert [t["id"] for t in everyone["results"]] == [therapist.id, therapist_b.id]
    disabled = api(operator).get(THERAPISTS, {"is_active": "false"}).json()
    assert [(t["id"], t["disabled_reason"]) for t in disabled["results"]] == [
        (therapist_b.id, "No response to appointment #7")]


# --- Enabling ------------------------------------------------------------------------


def test_enable_reactivates_with_a_note_and_keeps_the_history(api, make_appointment, operator, therapist):
    appt = make_appointment("pending", therapist)
    with time_machine.travel(appt.response_deadline, tick=False):
        workflow.sweep()
    therapist.refresh_from_db()
    assert not therapist.is_active

    response = api(operator).post(enable_url(therapist), {"note": "Phone was broken"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["is_active"], body["disabled_at"], body["disabled_reason"]) == (
        therapist.id, True, None, "")
    therapist.refresh_from_db()
    assert therapist.is_active
    history = list(AccountStatusChange.objects.filter(user=therapist).order_by("id")
                   .values_list("action", "changed_by", "reason"))
    assert [h[0] for h in history] == ["disabled", "enabled"]
    assert history[0][1] is None and f"#{appt.pk}" in history[0][2]
    assert history[1] == ("enabled", operator.id, "Phone was broken")
    assert "Phone was broken" in Notification.objects.get(recipient=therapist, kind="enabled").message
    assert login("ana", "pass-ana").status_code == 200


def test_enable_without_a_note_is_fine(api, operator, therapist):
    disable(therapist)
    assert api(operator).post(enable_url(therapist), {}, format="json").status_code == 200


def test_enabling_an_active_therapist_is_409(api, operator, therapist):
    response = api(operator).post(enable_url(therapist), {"note": "x"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"
    assert not AccountStatusChange.objects.exists()


def test_enabling_someone_who_is_not_a_therapist_is_404(api, operator):
    other = make_user("opal", "operator")
    disable(other)
    for pk in (other.pk, 987654):
        response = api(operator).post(f"{THERAPISTS}{pk}/enable/", {}, format="json")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


def test_an_enable_note_over_500_chars_is_400(api, operator, therapist):
    disable(therapist)
    response = api(operator).post(enable_url(therapist), {"note": "n" * 501}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["note"]
    therapist.refresh_from_db()
    assert not therapist.is_active
