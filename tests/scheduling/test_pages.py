"""The dashboard pages: who may see them, what they start from, and that they
cost a fixed number of queries however many appointments exist."""

import json
import re
from datetime import timedelta
from urllib.parse import unquote

import pytest
from django.utils import timezone

from accounts.models import User
from notifications import delivery
from notifications.models import Notification
from scheduling import workflow
from scheduling.models import Appointment, AppointmentEvent
from tests.conftest import make_user

PAGE_QUERY_BUDGET = 8


def page_data(response) -> dict:
    match = re.search(r'<script id="page-data" type="application/json">(.*?)</script>', response.content.decode())
    assert match, "the page hands its initial state to the script through json_script"
    return json.loads(match.group(1))


def bulk_appointments(n: int, *, client, service, therapist, operator) -> None:
    """`n` appointments (with one event each) straight into the tables: volume for the
    query budget, not behaviour, so the workflow is not needed here."""
    now = timezone.now()
    statuses = [s for s, _ in Appointment.Status.choices]
    appointments = Appointment.objects.bulk_create([
        Appointment(
            client=client, service=service, therapist=therapist, status=statuses[i % len(statuses)],
            starts_at=now + timedelta(hours=i - n // 2), ends_at=now + timedelta(hours=i - n // 2, minutes=60),
            location="Makati", updated_at=now,
            response_deadline=now + timedelta(minutes=30) if statuses[i % len(statuses)] == "pending" else None,
        )
        for i in range(n)
    ])
    AppointmentEvent.objects.bulk_create([
        AppointmentEvent(appointment=a, kind="created", actor=operator, therapist=therapist, from_status="",
                         to_status=a.status, created_at=now)
        for a in appointments
    ])


@pytest.mark.parametrize("path", ["/operator/", "/therapist/", "/operator/?tab=all"])
def test_dashboards_need_a_login(client, db, path):
    response = client.get(path)
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith("/accounts/login/?next=")
    assert unquote(location.split("next=", 1)[1]) == path


def test_login_redirect_keeps_the_page_asked_for(client, db):
    response = client.get("/operator/?tab=timeouts")
    assert response["Location"] == "/accounts/login/?next=/operator/%3Ftab%3Dtimeouts"


def test_therapist_on_operator_page_gets_friendly_403(client, therapist):
    client.force_login(therapist)
    response = client.get("/operator/")
    assert response.status_code == 403
    assert "this page isn’t for your account" in response.content.decode().lower()
    assert 'href="/"' in response.content.decode()


def test_operator_on_therapist_page_gets_403(client, operator):
    client.force_login(operator)
    assert client.get("/therapist/").status_code == 403


def test_login_page_renders_with_labels(client, db):
    response = client.get("/accounts/login/")
    body = response.content.decode()
    assert response.status_code == 200
    assert '<label for="id_username">' in body and '<label for="id_password">' in body
    assert "favicon.svg" in body
    assert "<title>Sign in" in body


def test_login_lands_each_role_on_its_dashboard(client, operator, therapist):
    response = client.post("/accounts/login/", {"username": "olga", "password": "pass-olga"}, follow=True)
    assert response.redirect_chain[-1][0] == "/operator/"
    client.post("/accounts/logout/")
    response = client.post("/accounts/login/", {"username": "ana", "password": "pass-ana"}, follow=True)
    assert response.redirect_chain[-1][0] == "/therapist/"


@pytest.mark.parametrize("tab", ["reviews", "timeouts", "all", "insights", "notifications"])
def test_operator_tab_deep_links_render_that_tab(client, operator, tab):
    client.force_login(operator)
    response = client.get(f"/operator/?tab={tab}")
    body = response.content.decode()
    assert response.status_code == 200
    assert re.search(rf'<a href="\?tab={tab}" data-tab="{tab}" aria-current="page">', body)
    assert body.count('aria-current="page"') == 1
    assert re.search(rf'<section id="panel-{tab}" class="panel" data-panel="{tab}" aria-labelledby="h-{tab}">', body)
    for other in {"reviews", "timeouts", "all", "insights", "notifications"} - {tab}:
        assert re.search(rf'data-panel="{other}" aria-labelledby="h-{other}" hidden>', body)
    assert page_data(response)["tab"] == tab


def test_unknown_tab_falls_back_to_reviews(client, operator):
    client.force_login(operator)
    response = client.get("/operator/?tab=<script>")
    assert response.status_code == 200
    assert page_data(response)["tab"] == "reviews"
    assert "<script>" not in response.content.decode().split("<body>")[1].split('id="page-data"')[0]


def test_operator_page_data(client, operator, make_appointment, therapist):
    rejected = make_appointment("rejected", therapist)
    client.force_login(operator)
    data = page_data(client.get("/operator/"))
    assert data["user"] == {"id": operator.id, "name": "Olga Operator", "role": "operator", "is_active": True}
    assert data["time_zone"] == "Asia/Manila"
    assert data["utc_offset"] == "+08:00"
    assert data["last_event_id"] == AppointmentEvent.objects.latest("id").id
    assert data["counts"]["reviews"] == 1
    assert data["unread"] == 1  # the rejection notified every operator
    assert data["csrf_token"]
    assert rejected.status == "rejected"


def test_the_bell_says_99_plus_from_the_unread_cap_on(client, operator, therapist):
    now = timezone.now()
    for user, count in ((operator, delivery.UNREAD_CAP + 40), (therapist, delivery.UNREAD_CAP - 1)):
        Notification.objects.bulk_create([Notification(recipient=user, kind="rejected", message=f"#{i}",
                                                       created_at=now) for i in range(count)])
    client.force_login(operator)
    response = client.get("/operator/")
    data = page_data(response)
    assert (data["unread"], data["unread_cap"]) == (100, 100)
    # The bell and the Notifications tab, as the page is first drawn.
    assert len(re.findall(r"data-unread[^>]*>99\+</span>", response.content.decode())) == 2
    client.force_login(therapist)
    response = client.get("/therapist/")
    assert page_data(response)["unread"] == 99
    assert re.search(r"data-unread[^>]*>99</span>", response.content.decode())
    assert [delivery.unread_badge(n) for n in (0, 1, 99, 100, 5000)] == ["0", "1", "99", "99+", "99+"]


def test_therapist_page_starts_from_their_newest_event(client, therapist, therapist_b, make_appointment):
    mine = make_appointment("pending", therapist)
    make_appointment("pending", therapist_b, starts_in=timedelta(hours=5))  # a later event, not theirs
    client.force_login(therapist)
    response = client.get("/therapist/")
    data = page_data(response)
    assert response.status_code == 200
    assert data["last_event_id"] == AppointmentEvent.objects.filter(therapist=therapist).latest("id").id
    assert data["last_event_id"] < AppointmentEvent.objects.latest("id").id
    assert data["user"]["role"] == "therapist"
    assert "js/therapist.js" in response.content.decode()
    assert mine.therapist == therapist


def test_operator_page_query_count_is_bounded(client, operator, therapist, client_obj, service,
                                              django_assert_max_num_queries):
    bulk_appointments(2000, client=client_obj, service=service, therapist=therapist, operator=operator)
    client.force_login(operator)
    with django_assert_max_num_queries(PAGE_QUERY_BUDGET) as ctx:
        response = client.get("/operator/?tab=all")
    assert response.status_code == 200
    assert page_data(response)["counts"]["timeouts"] > 0
    print(f"operator page: {len(ctx.captured_queries)} queries")


def test_therapist_page_query_count_is_bounded(client, operator, therapist, client_obj, service,
                                               django_assert_max_num_queries):
    bulk_appointments(2000, client=client_obj, service=service, therapist=therapist, operator=operator)
    client.force_login(therapist)
    with django_assert_max_num_queries(PAGE_QUERY_BUDGET) as ctx:
        response = client.get("/therapist/")
    assert response.status_code == 200
    print(f"therapist page: {len(ctx.captured_queries)} queries")


def test_disabled_therapist_sees_why_instead_of_the_dashboard(client, operator, therapist, make_appointment,
                                                              django_assert_max_num_queries):
    appt = make_appointment("pending", therapist)
    Appointment.objects.filter(pk=appt.pk).update(response_deadline=timezone.now() - timedelta(seconds=1))
    workflow.sweep()
    therapist.refresh_from_db()
    assert not therapist.is_active
    client.force_login(therapist)  # sessions of disabled therapists stay valid on purpose
    with django_assert_max_num_queries(PAGE_QUERY_BUDGET) as ctx:
        response = client.get("/therapist/")
    print(f"disabled therapist page: {len(ctx.captured_queries)} queries")
    body = response.content.decode()
    assert response.status_code == 200
    assert "Your account is disabled" in body
    assert therapist.disabled_reason and therapist.disabled_reason in body
    assert f"#{appt.id}" in body and "Cancelled" in body
    # No socket and no API calls: neither would accept a disabled account.
    assert "therapist.js" not in body and "page-data" not in body


def test_disabled_therapist_cannot_use_operator_page_either(client, db):
    operator = make_user("odie", "operator", is_active=False)
    client.force_login(operator)
    assert client.get("/operator/").status_code == 403
    assert User.objects.get(pk=operator.pk).is_active is False


def test_pages_link_the_favicon_and_a_logout_button(client, operator):
    client.force_login(operator)
    body = client.get("/operator/").content.decode()
    assert 'rel="icon" href="/static/favicon.svg"' in body
    assert re.search(r'<form method="post" action="/accounts/logout/".*?<button type="submit"[^>]*>Log out</button>',
                     body, re.S)


@pytest.mark.parametrize(("username", "password", "message"), [
    ("", "", "Enter your username and password."),
    ("olga", "", "Enter your password."),
    ("", "pass-olga", "Enter your username."),
])
def test_a_blank_sign_in_says_what_is_missing(client, operator, username, password, message):
    response = client.post("/accounts/login/", {"username": username, "password": password})
    assert response.status_code == 200
    assert f'<div class="error" role="alert">{message}</div>' in response.content.decode()


def test_staff_get_a_link_to_the_admin_and_nobody_else_does(client, operator, therapist):
    admin = make_user("adam", "operator", name="Adam Admin", is_staff=True, is_superuser=True)
    client.force_login(admin)
    assert '<a class="admin-link" href="/admin/">Admin</a>' in client.get("/operator/").content.decode()
    for user, page in ((operator, "/operator/"), (therapist, "/therapist/")):
        client.force_login(user)
        assert "admin-link" not in client.get(page).content.decode()


def test_the_all_tab_badge_says_what_it_counts(client, operator, make_appointment):
    make_appointment("pending")
    client.force_login(operator)
    body = client.get("/operator/").content.decode()
    assert re.search(r'data-count="unassigned"[^>]*>1<span class="count-label"> to assign</span>', body)


def test_the_therapist_page_knows_when_a_session_may_be_started(client, therapist, settings):
    settings.START_EARLY_MINUTES = 45
    client.force_login(therapist)
    assert page_data(client.get("/therapist/"))["start_early_minutes"] == 45


def test_the_disabled_page_says_when_in_the_shared_format(client, therapist):
    at = timezone.localtime().replace(hour=14, minute=32, second=0, microsecond=0)
    User.objects.filter(pk=therapist.pk).update(is_active=False, disabled_at=at, disabled_reason="No answer to #42.")
    client.force_login(therapist)
    body = client.get("/therapist/").content.decode()
    assert re.search(r'Disabled at <time datetime="[^"]+">2:32 PM</time>\.', body)


# --- The "Rules" panel: the settings in force -------------------------------------------------


def rules_panel(response) -> str:
    html = response.content.decode()
    match = re.search(r'<details class="rules" id="rules">(.*?)</details>', html, re.S)
    assert match, "the operator page has a Rules panel"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


def test_the_rules_panel_shows_the_settings_in_force(client, operator, settings):
    settings.RESPONSE_DEADLINE_MINUTES = 25
    settings.TRAVEL_BUFFER_MINUTES = 40
    settings.AUTO_REOFFER = True
    settings.REOFFER_MAX = 2
    settings.REMIND_AFTER_MINUTES = 10
    settings.ESCALATE_AFTER_MINUTES = 20
    client.force_login(operator)

    response = client.get("/operator/")

    text = rules_panel(response)
    assert "Rules answer within 25 min · travel 40 min · re-offer on" in text
    assert "Answer within 25 min of the offer, and never later than the start." in text
    assert "40 min between two appointments at different places" in text
    assert "up to 2 automatic offers" in text
    assert "An email to the therapist 10 min after an unseen offer; you are told after 20 min." in text
    assert page_data(response)["rules"] == {
        "response_minutes": 25, "travel_buffer_minutes": 40, "auto_reoffer": True, "reoffer_max": 2,
        "remind_after_minutes": 10, "escalate_after_minutes": 20}


def test_the_rules_panel_says_what_off_means(client, operator, settings):
    settings.TRAVEL_BUFFER_MINUTES = 0
    settings.AUTO_REOFFER = False
    settings.REMIND_AFTER_MINUTES = None
    settings.ESCALATE_AFTER_MINUTES = 20
    client.force_login(operator)

    text = rules_panel(client.get("/operator/"))

    assert "travel not required · re-offer off" in text
    assert "Off: a timeout cancels the booking; an accepted rejection puts it back in your queue." in text
    assert "No email reminder; you are told after 20 min." in text
