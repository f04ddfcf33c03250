"""The Django admin: every page renders, the appointment list has a fixed query
budget, the workflow's fields stay read-only and the re-enable action goes
through the workflow."""

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from accounts.models import AccountStatusChange, User
from notifications.models import Notification
from scheduling import workflow
from scheduling.models import (
    Appointment,
    AppointmentEvent,
    AppointmentRejection,
    Availability,
    Client,
    Service,
)
from tests.conftest import make_therapist, make_user

MODELS = [User, AccountStatusChange, Client, Service, Availability, Appointment, AppointmentRejection,
          AppointmentEvent, Notification]


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def admin_user(db):
    return User.objects.create_superuser("root", "root@example.com", "pass-root", first_name="Rita",
                                         last_name="Admin")


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def demo(db):
    """The demo data: every model has rows, every appointment state is present."""
    call_command("seed_demo", stdout=StringIO())


def test_admin_users_are_operators(admin_user):
    assert admin_user.role == User.Role.OPERATOR
    assert admin_user.is_staff and admin_user.is_superuser


def test_every_changelist_and_change_page_renders(admin_client, demo):
    for model in MODELS:
        response = admin_client.get(admin_url(model, "changelist"))
        assert response.status_code == 200, model._meta.label
        assert response.context["cl"].result_count > 0, model._meta.label
        for obj in model.objects.all()[:3]:
            response = admin_client.get(admin_url(model, "change", obj.pk))
            assert response.status_code == 200, f"{model._meta.label} #{obj.pk}"


@pytest.mark.parametrize("model", [User, Client, Service], ids=lambda m: m._meta.label)
def test_add_pages_render_where_adding_is_allowed(admin_client, model):
    assert admin_client.get(admin_url(model, "add")).status_code == 200


@pytest.mark.parametrize("model", [Appointment, AppointmentEvent, AppointmentRejection, AccountStatusChange,
                                   Availability, Notification], ids=lambda m: m._meta.label)
def test_workflow_records_cannot_be_added_in_the_admin(admin_client, model):
    assert admin_client.get(admin_url(model, "add")).status_code == 403


FILTERED_CHANGELISTS = [
    (Appointment, "status=pending&therapist=none"),
    (Appointment, "status=cancelled&cancellation_reason=response_timeout"),
    (Appointment, "starts_at__gte=2000-01-01+00%3A00%3A00%2B08%3A00"),
    (Appointment, "q=Lourdes"),
    (Appointment, "q=%2B63+917"),
    (Appointment, "service__id__exact=1"),
    (User, "role__exact=therapist&is_active__exact=0"),
    (AppointmentRejection, "review=waiting"),
    (AppointmentRejection, "reason_code__exact=too_far"),
    (Notification, "read=no&kind=timed_out"),
    (AppointmentEvent, "kind__exact=timed_out"),
    (AccountStatusChange, "action__exact=disabled"),
    (Availability, "therapist=1"),
]


def test_list_filters_and_search_render(admin_client, demo):
    for model, query in FILTERED_CHANGELISTS:
        response = admin_client.get(admin_url(model, "changelist") + "?" + query)
        assert response.status_code == 200, (model._meta.label, query)
        # An unknown filter would redirect with ?e=1 instead of listing.
        assert "cl" in response.context, (model._meta.label, query)


# -- appointments -------------------------------------------------------------


@pytest.fixture
def many_appointments(operator, service):
    """About 100 appointments over ten therapists, ten clients, in several states."""
    clients = [Client.objects.create(name=f"Client {i:02d}", phone=f"+63 917 000 {i:04d}") for i in range(10)]
    therapists = [make_therapist(f"t{i}", service, name=f"Therapist {i}", hours=24) for i in range(10)]
    now = timezone.now()
    made = []
    for i in range(100):
        therapist = therapists[i % 10] if i % 4 else None
        appt = workflow.create_appointment(
            actor=operator, client=clients[i % 10], service=service,
            # Ninety minutes apart: an hour's session, then time to travel to the next address.
            starts_at=now + timedelta(minutes=65 + 90 * (i // 10)), location=f"{i} Ayala Ave, Makati",
            therapist_id=therapist.pk if therapist else None,
        )
        if therapist and i % 3 == 0:
            workflow.accept(actor=therapist, appointment_id=appt.pk)
        elif therapist and i % 3 == 1:
            workflow.reject(actor=therapist, appointment_id=appt.pk, reason="Busy")
        made.append(appt)
    return made


def test_appointment_changelist_has_a_fixed_query_budget(admin_client, many_appointments,
                                                          django_assert_max_num_queries):
    url = admin_url(Appointment, "changelist")
    # 8 today, whatever the number of rows: session, user, therapist and service
    # filters, the filtered count, the page of rows (client, service and therapist
    # joined), and two for the date hierarchy.
    with django_assert_max_num_queries(12):
        response = admin_client.get(url + "?all=")
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 100
    with django_assert_max_num_queries(12):
        response = admin_client.get(url + "?status=pending&q=Client")
    assert response.status_code == 200


def test_event_changelist_has_a_fixed_query_budget(admin_client, many_appointments, django_assert_max_num_queries):
    with django_assert_max_num_queries(10):
        response = admin_client.get(admin_url(AppointmentEvent, "changelist"))
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 100


def test_notification_changelist_has_a_fixed_query_budget(admin_client, many_appointments,
                                                          django_assert_max_num_queries):
    assert Notification.objects.count() > 50
    with django_assert_max_num_queries(10):
        response = admin_client.get(admin_url(Notification, "changelist"))
    assert response.status_code == 200


def search(admin_client, term: str) -> set[int]:
    response = admin_client.get(admin_url(Appointment, "changelist"), {"q": term})
    assert response.status_code == 200
    return {appt.pk for appt in response.context["cl"].result_list}


def test_search_appointments_by_client_name_and_phone(admin_client, make_appointment, therapist):
    maria = make_appointment("pending")  # client Maria Lopez, +63 917 555 0101
    other_client = Client.objects.create(name="Jose Rizal", phone="+63 918 123 4567")
    other = make_appointment("pending", client=other_client, starts_in=timedelta(hours=5))

    assert search(admin_client, "Maria") == {maria.pk}
    assert search(admin_client, "lopez") == {maria.pk}
    assert search(admin_client, "555 0101") == {maria.pk}
    assert search(admin_client, "123 4567") == {other.pk}
    assert search(admin_client, "+63") == {maria.pk, other.pk}
    assert search(admin_client, "Nobody") == set()


def change_form_data(response) -> dict:
    """What the browser would post back: the form's fields and the inlines'
    management forms, as rendered."""
    form = response.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is not None:
            data[name] = value.pk if hasattr(value, "pk") else value
    for inline in response.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name in management.fields:
            data[f"{management.prefix}-{name}"] = management.initial.get(name, 0)
    return data


def test_status_is_read_only_on_the_appointment_change_form(admin_client, make_appointment, therapist):
    appt = make_appointment("confirmed", therapist)
    events_before = appt.events.count()
    url = admin_url(Appointment, "change", appt.pk)
    response = admin_client.get(url)
    assert response.status_code == 200
    form_fields = set(response.context["adminform"].form.fields)
    assert form_fields == {"client", "location", "notes"}

    data = change_form_data(response)
    data.update(status="cancelled", cancellation_reason="operator", therapist="", notes="Ring the bell twice.",
                response_deadline="2000-01-01 00:00:00")
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors

    appt.refresh_from_db()
    assert appt.status == Appointment.Status.CONFIRMED
    assert appt.therapist_id == therapist.pk
    assert appt.cancellation_reason == ""
    assert appt.response_deadline.year != 2000
    assert appt.notes == "Ring the bell twice."
    assert appt.events.count() == events_before


def test_appointment_history_inline_is_oldest_first_and_read_only(admin_client, make_appointment, therapist):
    appt = make_appointment("completed", therapist)
    response = admin_client.get(admin_url(Appointment, "change", appt.pk))
    inlines = {i.opts.model: i for i in response.context["inline_admin_formsets"]}
    events = inlines[AppointmentEvent]
    kinds = [form.instance.kind for form in events.formset.forms]
    assert kinds == ["created", "assigned", "accepted", "started", "completed"]
    assert not events.has_add_permission and not events.has_change_permission
    assert not events.has_delete_permission
    assert not inlines[AppointmentRejection].has_add_permission
    # No deleting appointments or their history from the admin.
    assert admin_client.get(admin_url(Appointment, "delete", appt.pk)).status_code == 403


def test_appointment_changelist_offers_no_bulk_delete(admin_client, make_appointment):
    make_appointment("pending")
    response = admin_client.get(admin_url(Appointment, "changelist"))
    assert "delete_selected" not in response.context["cl"].model_admin.get_actions(response.wsgi_request)


# -- accounts -----------------------------------------------------------------


def disable_by_timeout(make_appointment, therapist) -> None:
    """Let the therapist miss a deadline and the workflow disable them."""
    appt = make_appointment("pending", therapist)
    Appointment.objects.filter(pk=appt.pk).update(response_deadline=timezone.now() - timedelta(seconds=1))
    workflow.expire_overdue()
    therapist.refresh_from_db()
    assert not therapist.is_active


def run_user_action(admin_client, *users):
    response = admin_client.post(admin_url(User, "changelist"), {
        "action": "reenable_therapists", "_selected_action": [u.pk for u in users],
    })
    assert response.status_code == 302
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]


def test_reenable_action_enables_a_disabled_therapist_through_the_workflow(
        admin_client, admin_user, make_appointment, therapist):
    disable_by_timeout(make_appointment, therapist)

    reported = run_user_action(admin_client, therapist)

    therapist.refresh_from_db()
    assert therapist.is_active
    assert therapist.disabled_at is None and therapist.disabled_reason == ""
    enabled = therapist.status_changes.get(action=AccountStatusChange.Action.ENABLED)
    assert enabled.changed_by == admin_user
    assert enabled.reason == "Re-enabled from the admin"
    # The history is kept: the disable is still there.
    assert therapist.status_changes.filter(action=AccountStatusChange.Action.DISABLED).count() == 1
    assert reported == [("success", "Re-enabled 1 therapist(s): Ana Cruz.")]
    assert Notification.objects.filter(recipient=therapist, kind="enabled").exists()


def test_reenable_action_reports_an_already_active_therapist(admin_client, therapist, therapist_b,
                                                            make_appointment):
    disable_by_timeout(make_appointment, therapist_b)

    reported = run_user_action(admin_client, therapist, therapist_b)

    assert ("error", "Could not re-enable Ana Cruz: Ana Cruz is already active.") in reported
    assert ("success", "Re-enabled 1 therapist(s): Bea Santos.") in reported
    assert not therapist.status_changes.exists()


def test_reenable_action_refuses_an_operator(admin_client, operator):
    User.objects.filter(pk=operator.pk).update(is_active=False)
    reported = run_user_action(admin_client, operator)
    assert reported == [("error", "Olga Operator is not a therapist.")]
    operator.refresh_from_db()
    assert not operator.is_active


def test_user_change_page_shows_the_status_history_read_only(admin_client, make_appointment, therapist):
    disable_by_timeout(make_appointment, therapist)
    response = admin_client.get(admin_url(User, "change", therapist.pk))
    assert response.status_code == 200
    form_fields = set(response.context["adminform"].form.fields)
    # A therapist's active flag and disable details belong to the workflow.
    assert not form_fields & {"is_active", "disabled_at", "disabled_reason"}
    assert {"role", "phone"} <= form_fields
    (history,) = response.context["inline_admin_formsets"]
    assert [form.instance.action for form in history.formset.forms] == ["disabled"]
    assert not history.has_add_permission and not history.has_change_permission
    assert "No response to appointment" in response.content.decode()


def test_add_a_therapist_in_the_admin(admin_client, db):
    response = admin_client.post(admin_url(User, "add"), {
        "username": "lani", "usable_password": "true", "password1": "a-long-pass-9481", "password2": "a-long-pass-9481",
        "role": "therapist", "first_name": "Lani", "last_name": "Cruz", "phone": "+63 917 222 3333", "email": "",
    })
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    lani = User.objects.get(username="lani")
    assert lani.role == "therapist" and lani.phone == "+63 917 222 3333" and lani.is_active
    assert lani.check_password("a-long-pass-9481")


def test_operator_accounts_keep_the_active_checkbox(admin_client, operator):
    response = admin_client.get(admin_url(User, "change", operator.pk))
    assert "is_active" in response.context["adminform"].form.fields


def test_user_search_by_name_username_and_phone(admin_client, db):
    make_user("rosa", "therapist", name="Rosa Mercado", phone="+63 927 111 2222")
    make_user("pedro", "therapist", name="Pedro Lim", phone="+63 927 333 4444")
    for term in ("rosa", "Mercado", "111 2222"):
        response = admin_client.get(admin_url(User, "changelist"), {"q": term})
        assert [u.username for u in response.context["cl"].result_list] == ["rosa"]
