from io import StringIO
from itertools import pairwise

import pytest
from django.apps import apps
from django.core.management import call_command
from django.utils import timezone

from accounts.models import AccountStatusChange, User
from scheduling import workflow
from scheduling.management.commands.seed_demo import DEFAULT_DEMO_PASSWORD, OPERATORS, THERAPISTS
from scheduling.models import Appointment, AppointmentEvent, Availability

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def row_counts() -> dict[str, int]:
    models = [m for app in ("accounts", "scheduling", "notifications") for m in apps.get_app_config(app).get_models()]
    counts = {m._meta.label: m.objects.count() for m in models}
    for model in models:
        for m2m in model._meta.local_many_to_many:
            through = m2m.remote_field.through
            counts[through._meta.label] = through.objects.count()
    return counts


def test_seed_demo_creates_the_people():
    seed()
    assert User.objects.filter(role="operator", is_superuser=False).count() == 2
    assert User.objects.filter(role="therapist").count() == 6
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.role == "operator"
    assert all(u.check_password(DEFAULT_DEMO_PASSWORD) for u in User.objects.all())
    assert all(u.phone for u in User.objects.exclude(username="admin"))


def test_seed_demo_reads_the_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "another-demo-pass")
    out = seed()
    assert User.objects.get(username="carmela").check_password("another-demo-pass")
    assert "another-demo-pass" in out


def test_every_therapist_has_a_week_of_availability_and_one_slot_crosses_midnight():
    seed()
    for therapist in User.objects.filter(role="therapist"):
        days = {timezone.localtime(slot.starts_at).date() for slot in therapist.availability.all()}
        assert len(days) >= 7
    crossing = [slot for slot in Availability.objects.all()
                if timezone.localtime(slot.starts_at).date() != timezone.localtime(slot.ends_at).date()]
    assert len(crossing) == 1


def test_seed_demo_reaches_every_status_and_every_cancellation_reason():
    seed()
    statuses = set(Appointment.objects.values_list("status", flat=True))
    assert statuses == set(Appointment.Status.values)
    reasons = set(Appointment.objects.filter(status="cancelled").values_list("cancellation_reason", flat=True))
    assert reasons == set(Appointment.CancellationReason.values)
    # Assigned and waiting with a live deadline, and one already overdue for the sweep.
    now = timezone.now()
    waiting = Appointment.objects.filter(status="pending", therapist__isnull=False)
    assert waiting.filter(response_deadline__gt=now).exists()
    assert waiting.filter(response_deadline__lte=now).count() == 1
    assert Appointment.objects.filter(status="pending", therapist__isnull=True).exists()
    # The rejections waiting for review have no decision yet.
    for appt in Appointment.objects.filter(status="rejected"):
        assert appt.rejections.get().review_decision == ""


def test_every_status_change_has_its_event():
    seed()
    appointments = Appointment.objects.prefetch_related("events")
    assert appointments.count() >= 15
    for appt in appointments:
        events = list(appt.events.all())
        assert events, f"#{appt.pk} has no history"
        assert events[0].kind == AppointmentEvent.Kind.CREATED
        assert events[0].from_status == ""
        # The events chain from one status to the next and end at the current one.
        for before, after in pairwise(events):
            assert after.from_status == before.to_status, f"#{appt.pk}: {before} then {after}"
        assert events[-1].to_status == appt.status


def test_the_timeout_disabled_its_therapist_with_history_and_the_sweep_has_work():
    seed()
    timed_out = Appointment.objects.get(cancellation_reason="response_timeout")
    therapist = timed_out.therapist
    assert not therapist.is_active
    assert therapist.status_changes.get().action == AccountStatusChange.Action.DISABLED

    counts = workflow.sweep()
    assert counts.timed_out == 1
    assert counts.therapists_disabled == 1
    assert counts.no_available_therapist == 0


def test_seed_demo_twice_changes_nothing():
    first = seed()
    before = row_counts()
    second = seed()
    assert row_counts() == before
    assert "Demo data loaded" in first
    assert "Demo data already loaded" in second


def test_output_lists_the_logins():
    out = seed()
    assert "http://127.0.0.1:8000/" in out
    assert DEFAULT_DEMO_PASSWORD in out
    for username, *_ in [("admin",), *OPERATORS, *THERAPISTS]:
        assert f"  {username} " in out
    assert "operator" in out and "therapist" in out
    # Run again, the logins are printed again.
    again = seed()
    for username, *_ in [*OPERATORS, *THERAPISTS]:
        assert f"  {username} " in again
    assert DEFAULT_DEMO_PASSWORD in again
