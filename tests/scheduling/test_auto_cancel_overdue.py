"""The deadline sweep: `manage.py auto_cancel_overdue`, the two batch rules it
runs (timeout, no available therapist), its schedule and the operator's
"Run sweep now" endpoint."""

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.forms.models import model_to_dict
from django.utils import timezone
from django.utils.module_loading import import_string
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts import formatting
from accounts.models import AccountStatusChange, User
from notifications.models import Notification
from scheduling import workflow
from scheduling.models import Appointment, AppointmentEvent, Service
from tests.conftest import make_user
from tests.servers import ROOT, server_env

WINDOW = timedelta(minutes=settings.RESPONSE_DEADLINE_MINUTES)
DRY_PREFIX = "[dry run] would be "


def sweep(*args: str) -> list[str]:
    """Run the command as cron does and return its output lines."""
    out = StringIO()
    call_command("auto_cancel_overdue", *args, stdout=out)
    return out.getvalue().splitlines()


def overdue_appointment(make_appointment, therapist, *, late: timedelta = timedelta(minutes=5),
                        starts_in: timedelta = timedelta(hours=3)) -> Appointment:
    """Assigned through the real workflow so long ago that its deadline passed `late` ago."""
    with time_machine.travel(timezone.now() - WINDOW - late):
        return make_appointment("pending", therapist, starts_in=starts_in)


def bulk_overdue(count: int, therapists: list[User], *, client, service) -> list[Appointment]:
    """`count` pending appointments past their deadline, spread over `therapists`
    (set up directly: the workflow would take minutes to assign thousands)."""
    now = timezone.now()
    rows = []
    for i in range(count):
        starts = now + timedelta(hours=2, minutes=i)
        deadline = now - timedelta(minutes=1, seconds=i % 50)
        rows.append(Appointment(
            client=client, service=service, therapist=therapists[i % len(therapists)], status="pending",
            starts_at=starts, ends_at=starts + timedelta(minutes=service.duration_minutes),
            location=f"{i} Rizal Ave", assigned_at=deadline - WINDOW, response_deadline=deadline,
            updated_at=deadline - WINDOW,
        ))
    return Appointment.objects.bulk_create(rows, batch_size=500)


def snapshot() -> dict[str, list]:
    """Everything the sweep may change."""
    return {
        "appointments": [model_to_dict(a) for a in Appointment.objects.order_by("id")],
        "events": list(AppointmentEvent.objects.order_by("id").values()),
        "notifications": list(Notification.objects.order_by("id").values()),
        "users": list(User.objects.order_by("id").values("id", "is_active", "disabled_at", "disabled_reason")),
        "status_changes": list(AccountStatusChange.objects.order_by("id").values()),
    }


# --- The timeout rule ---------------------------------------------------------------


def test_appointment_is_untouched_a_second_before_its_deadline_and_cancelled_a_second_after(
        make_appointment, therapist, operator, operator2):
    appt = make_appointment("pending", therapist)
    token = Token.objects.create(user=therapist)

    with time_machine.travel(appt.response_deadline - timedelta(seconds=1), tick=False):
        lines = sweep()
    appt.refresh_from_db()
    therapist.refresh_from_db()
    assert appt.status == "pending"
    assert therapist.is_active
    assert not AppointmentEvent.objects.filter(kind="timed_out").exists()
    assert lines == ["Nothing due: no appointment is overdue or unstaffable."]

    swept_at = appt.response_deadline + timedelta(seconds=1)
    with time_machine.travel(swept_at, tick=False):
        lines = sweep()

    appt.refresh_from_db()
    assert appt.status == "cancelled"
    assert appt.cancellation_reason == "response_timeout"
    assert appt.auto_cancelled_at == swept_at

    therapist.refresh_from_db()
    assert not therapist.is_active
    assert therapist.disabled_at == swept_at
    assert f"#{appt.id}" in therapist.disabled_reason
    change = AccountStatusChange.objects.get(user=therapist)
    assert change.action == "disabled" and change.changed_by is None and f"#{appt.id}" in change.reason

    event = AppointmentEvent.objects.get(appointment=appt, kind="timed_out")
    assert (event.actor, event.from_status, event.to_status) == (None, "pending", "cancelled")
    assert event.data["therapist_disabled"] is True

    notification = Notification.objects.get(recipient=therapist, kind="timed_out")
    assert notification.appointment_id == appt.id
    assert f"#{appt.id}" in notification.message and "disabled" in notification.message
    for person in (operator, operator2):
        digest = Notification.objects.get(recipient=person)
        assert (digest.kind, digest.appointment_id) == ("timeouts", None)
        assert f"#{appt.id}" in digest.message

    assert len(lines) == 2
    assert lines[0].startswith(f"#{appt.id} cancelled: no response from Ana Cruz")
    assert lines[1].startswith("Cancelled 1 appointment(s): 1 without a response (1 therapist(s) disabled)")

    # The disabled therapist is locked out of the API: no new token, the old one refused.
    anonymous = APIClient()
    response = anonymous.post("/api/accounts/token/", {"username": "ana", "password": "pass-ana"}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "account_disabled"
    with_token = APIClient()
    with_token.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    for path in ("/api/accounts/me/", "/api/scheduling/appointments/"):
        response = with_token.get(path)
        assert (response.status_code, response.json()["code"]) == (403, "account_disabled")


def test_therapist_with_several_overdue_appointments_is_disabled_once(make_appointment, therapist, operator):
    appts = [overdue_appointment(make_appointment, therapist, starts_in=timedelta(hours=h)) for h in (3, 5, 7)]

    lines = sweep()

    assert AccountStatusChange.objects.filter(user=therapist).count() == 1
    therapist.refresh_from_db()
    assert not therapist.is_active
    # The reason names the first deadline missed.
    assert f"#{appts[0].id}" in therapist.disabled_reason
    for appt in appts:
        appt.refresh_from_db()
        assert (appt.status, appt.cancellation_reason) == ("cancelled", "response_timeout")
        assert AppointmentEvent.objects.filter(appointment=appt, kind="timed_out").count() == 1
        assert Notification.objects.filter(appointment=appt, recipient=therapist, kind="timed_out").count() == 1
    # Operators get one digest for the batch, naming all three in order.
    [digest] = Notification.objects.filter(recipient=operator)
    assert digest.kind == "timeouts"
    assert digest.message == ("3 appointments cancelled without a response: "
                              + ", ".join(f"#{a.id}" for a in appts) + "; 1 therapist disabled.")
    assert [line.split()[0] for line in lines[:-1]] == [f"#{a.id}" for a in appts]
    assert lines[-1].startswith("Cancelled 3 appointment(s): 3 without a response (1 therapist(s) disabled)")


def test_deadline_missed_after_being_disabled_cancels_without_a_second_disable(make_appointment, therapist):
    missed = overdue_appointment(make_appointment, therapist)
    still_open = make_appointment("pending", therapist, starts_in=timedelta(hours=6))
    sweep()
    assert Appointment.objects.get(pk=still_open.pk).status == "pending"

    with time_machine.travel(still_open.response_deadline + timedelta(seconds=1), tick=False):
        lines = sweep()

    assert AccountStatusChange.objects.filter(user=therapist).count() == 1
    therapist.refresh_from_db()
    assert f"#{missed.id}" in therapist.disabled_reason
    deadline = formatting.when(still_open.response_deadline, always_date=True)
    assert lines[0] == (f"#{still_open.id} cancelled: no response from Ana Cruz by {deadline}; "
                        "Ana Cruz was already disabled")
    assert lines[1].startswith("Cancelled 1 appointment(s): 1 without a response (0 therapist(s) disabled)")
    event = AppointmentEvent.objects.get(appointment=still_open, kind="timed_out")
    assert event.data["therapist_disabled"] is False


# --- The no-available-therapist rule ----------------------------------------------------


def test_unassigned_booking_whose_start_has_passed_is_cancelled(make_appointment, therapist, operator, operator2):
    appt = make_appointment("pending", starts_in=timedelta(hours=2))
    with time_machine.travel(appt.starts_at + timedelta(seconds=1), tick=False):
        lines = sweep()
    appt.refresh_from_db()
    assert (appt.status, appt.cancellation_reason) == ("cancelled", "no_available_therapist")
    assert appt.auto_cancelled_at == appt.starts_at + timedelta(seconds=1)
    assert lines[0] == (f"#{appt.id} cancelled: Swedish massage for Maria Lopez at "
                        f"{formatting.when(appt.starts_at, always_date=True)}, its start time has passed")
    assert lines[1].startswith("Cancelled 1 appointment(s): 0 without a response (0 therapist(s) disabled), "
                               "1 with no available therapist")
    event = AppointmentEvent.objects.get(appointment=appt, kind="no_available_therapist")
    assert (event.actor, event.from_status, event.to_status) == (None, "pending", "cancelled")
    for person in (operator, operator2):
        assert f"#{appt.id}" in Notification.objects.get(recipient=person, kind="unstaffed").message
    assert not Notification.objects.filter(recipient=therapist).exists()
    therapist.refresh_from_db()
    assert therapist.is_active


def test_unassigned_booking_starting_within_the_response_window_with_nobody_available_is_cancelled(
        make_appointment, operator):
    appt = make_appointment("pending", starts_in=WINDOW + timedelta(hours=1))

    with time_machine.travel(appt.starts_at - WINDOW - timedelta(seconds=1), tick=False):
        assert sweep() == ["Nothing due: no appointment is overdue or unstaffable."]
    appt.refresh_from_db()
    assert appt.status == "pending"

    with time_machine.travel(appt.starts_at - WINDOW + timedelta(seconds=1), tick=False):
        lines = sweep()
    appt.refresh_from_db()
    assert (appt.status, appt.cancellation_reason) == ("cancelled", "no_available_therapist")
    assert lines[0].startswith(f"#{appt.id} cancelled:") and lines[0].endswith("no therapist is available for it")
    notification = Notification.objects.get(recipient=operator, kind="unstaffed")
    assert notification.appointment_id is None and f"#{appt.id}" in notification.message


def test_unassigned_booking_starting_soon_stays_pending_while_someone_can_take_it(make_appointment, therapist):
    appt = make_appointment("pending", starts_in=WINDOW / 2)
    assert sweep() == ["Nothing due: no appointment is overdue or unstaffable."]
    appt.refresh_from_db()
    assert appt.status == "pending"
    assert not Notification.objects.exists()


def test_unassigned_booking_further_ahead_stays_pending_with_nobody_available(make_appointment):
    appt = make_appointment("pending", starts_in=WINDOW + timedelta(minutes=1))
    assert sweep() == ["Nothing due: no appointment is overdue or unstaffable."]
    appt.refresh_from_db()
    assert appt.status == "pending"


def test_busy_or_disabled_therapists_do_not_count_as_available(make_appointment, therapist, therapist_b, operator):
    make_appointment("confirmed", therapist, starts_in=WINDOW / 2)
    User.objects.filter(pk=therapist_b.pk).update(is_active=False)
    appt = make_appointment("pending", starts_in=WINDOW / 2, location="Other place")
    sweep()
    appt.refresh_from_db()
    assert (appt.status, appt.cancellation_reason) == ("cancelled", "no_available_therapist")


# --- --dry-run, nothing due, output -----------------------------------------------------


def test_dry_run_changes_nothing_and_prints_the_lines_of_the_real_run(make_appointment, therapist, therapist_b,
                                                                      operator):
    overdue_appointment(make_appointment, therapist)
    overdue_appointment(make_appointment, therapist_b, starts_in=timedelta(hours=5))
    make_appointment("pending", starts_in=timedelta(hours=4))  # further ahead: stays
    nobody = Service.objects.create(name="Hot stone", duration_minutes=90, price="1200.00")
    unstaffable = make_appointment("pending", service=nobody, starts_in=WINDOW / 2)
    before = snapshot()

    dry = sweep("--dry-run")

    assert snapshot() == before
    assert all(line.startswith(DRY_PREFIX) for line in dry[:-1])
    assert dry[-1].startswith("Dry run: would cancel 3 appointment(s): 2 without a response "
                              "(2 therapist(s) disabled), 1 with no available therapist")

    real = sweep()
    assert [line.removeprefix(DRY_PREFIX) for line in dry[:-1]] == real[:-1]
    assert real[-1].startswith("Cancelled 3 appointment(s)")
    assert real[-2].startswith(f"#{unstaffable.id} cancelled")


def test_dry_run_names_the_same_appointment_as_the_one_that_disables_the_therapist(make_appointment, therapist):
    later_deadline = overdue_appointment(make_appointment, therapist, late=timedelta(minutes=1))
    earlier_deadline = overdue_appointment(make_appointment, therapist, late=timedelta(minutes=9),
                                           starts_in=timedelta(hours=6))
    assert later_deadline.id < earlier_deadline.id
    dry = sweep("--dry-run")
    real = sweep()
    assert sorted(line.removeprefix(DRY_PREFIX) for line in dry[:-1]) == sorted(real[:-1])


def test_dry_run_counts_a_therapist_once_across_batches(make_appointment, therapist):
    for hours in (3, 5, 7):
        overdue_appointment(make_appointment, therapist, starts_in=timedelta(hours=hours))
    dry = sweep("--dry-run", "--batch-size", "1")
    real = sweep("--batch-size", "1")
    assert "(1 therapist(s) disabled)" in real[-1]
    assert "(1 therapist(s) disabled)" in dry[-1]


def test_nothing_due_does_nothing_and_says_so(make_appointment, therapist, operator):
    make_appointment("pending", therapist)
    make_appointment("confirmed", therapist, starts_in=timedelta(hours=6))
    make_appointment("pending", starts_in=timedelta(hours=8))
    before = snapshot()
    assert sweep() == ["Nothing due: no appointment is overdue or unstaffable."]
    assert sweep("--dry-run") == ["Nothing due: no appointment is overdue or unstaffable."]
    assert snapshot() == before


def test_batch_size_must_be_a_positive_integer(db):
    with pytest.raises(CommandError, match="at least 1"):
        sweep("--batch-size", "0")
    with pytest.raises(CommandError, match="invalid int value"):
        sweep("--batch-size", "many")
    with pytest.raises(CommandError, match="positive number of seconds"):
        sweep("--every", "0")


def test_small_batches_process_everything(make_appointment, therapist, therapist_b, client_obj, service):
    appts = bulk_overdue(7, [therapist, therapist_b], client=client_obj, service=service)
    lines = sweep("--batch-size", "2")
    assert sorted(line.split()[0] for line in lines[:-1]) == sorted(f"#{a.id}" for a in appts)
    assert Appointment.objects.filter(status="cancelled", cancellation_reason="response_timeout").count() == 7
    assert lines[-1].startswith("Cancelled 7 appointment(s): 7 without a response (2 therapist(s) disabled)")


# --- The real command in its own process (PostgreSQL: it must see committed rows) -----


def run_manage(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env or server_env(),
                          capture_output=True, text=True, timeout=timeout)


def test_manage_py_sweep_prints_a_line_per_appointment_and_a_summary(postgres, transactional_db, make_appointment,
                                                                     therapist):
    appt = overdue_appointment(make_appointment, therapist)
    unstaffable = make_appointment("pending", service=Service.objects.create(
        name="Hot stone", duration_minutes=90, price="1200.00"), starts_in=WINDOW / 2)

    result = run_manage("auto_cancel_overdue")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"#{appt.id} cancelled: no response from Ana Cruz by ")
    assert lines[1].startswith(f"#{unstaffable.id} cancelled: Hot stone for Maria Lopez")
    assert lines[2].startswith("Cancelled 2 appointment(s): 1 without a response (1 therapist(s) disabled), "
                               "1 with no available therapist")
    assert len(lines) == 3
    # cron appends both streams to one log: each line must be there once.
    assert f"#{appt.id}" not in result.stderr and "Cancelled" not in result.stderr
    assert "Traceback" not in result.stderr
    appt.refresh_from_db()
    assert appt.status == "cancelled"

    again = run_manage("auto_cancel_overdue")
    assert again.returncode == 0
    assert again.stdout.splitlines() == ["Nothing due: no appointment is overdue or unstaffable."]


def test_manage_py_sweep_with_an_unreachable_database_fails_with_a_clear_message(tmp_path):
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", SECRET_KEY="unreachable-test-key",
               DATABASE_URL="postgres://postgres@127.0.0.1:1/nope", DEBUG="0")

    result = run_manage("auto_cancel_overdue", env=env)

    assert result.returncode != 0
    [message] = result.stderr.splitlines()
    assert message.startswith("CommandError: Sweep failed: the database is unreachable or refused the work (")
    assert "127.0.0.1" in message and "port 1" in message
    assert result.stdout == ""


def test_manage_py_sweep_every_loops_until_interrupted(postgres, transactional_db, make_appointment, therapist,
                                                      tmp_path):
    stderr_path = tmp_path / "sweep.err"
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "auto_cancel_overdue", "--every", "0.5"], cwd=ROOT, env=server_env(),
            stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line.rstrip("\n")) for line in process.stdout], daemon=True)
    reader.start()
    try:
        assert lines.get(timeout=30) == "Nothing due: no appointment is overdue or unstaffable."
        # A deadline that passes while the loop runs is swept by a later pass.
        appt = overdue_appointment(make_appointment, therapist)
        seen = []
        give_up = time.monotonic() + 5
        while not any(line.startswith(f"#{appt.id} cancelled") for line in seen):
            seen.append(lines.get(timeout=max(0.01, give_up - time.monotonic())))
        time.sleep(1.5)  # let it run a few more passes
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=5)
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    errors = stderr_path.read_text()
    assert process.returncode == 0, errors
    assert rest[-1] == "Sweep stopped."
    assert rest.count("Nothing due: no appointment is overdue or unstaffable.") >= 2
    assert "Traceback" not in errors and "KeyboardInterrupt" not in errors
    appt.refresh_from_db()
    assert appt.status == "cancelled"


def test_manage_py_sweep_every_keeps_going_while_the_database_is_down(tmp_path):
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", SECRET_KEY="unreachable-test-key",
               DATABASE_URL="postgres://postgres@127.0.0.1:1/nope", DEBUG="0")
    stdout_path = tmp_path / "sweep.out"
    with open(stdout_path, "w") as stdout:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "auto_cancel_overdue", "--every", "0.5"], cwd=ROOT, env=env,
            stdout=stdout, stderr=subprocess.PIPE, text=True,
        )
    failures: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [failures.put(line) for line in process.stderr
                                              if "Sweep failed" in line], daemon=True)
    reader.start()
    try:
        for _ in range(2):  # two passes fail, the loop goes on
            assert "the database is unreachable" in failures.get(timeout=30)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert stdout_path.read_text().splitlines() == ["Sweep stopped."]


# --- Cost: a fixed number of queries per batch ---------------------------------------


def test_sweeping_a_thousand_overdue_appointments_costs_a_few_queries_per_batch(
        django_assert_max_num_queries, client_obj, service, operator, operator2):
    therapists = [make_user(f"t{i}", "therapist") for i in range(8)]
    bulk_overdue(1000, therapists, client=client_obj, service=service)

    # Two full batches (about a dozen statements each), then an empty one that
    # ends the timeout rule and one for the no-available-therapist rule. SQLite
    # splits each bulk insert of 500 rows into several statements (it takes at
    # most 999 parameters), PostgreSQL does not.
    per_batch = 13 if settings.DATABASES["default"]["ENGINE"].endswith("postgresql") else 26
    with django_assert_max_num_queries(2 * per_batch + 8):
        counts = workflow.sweep(batch_size=500)

    assert counts.as_dict() == {"timed_out": 1000, "therapists_disabled": 8, "no_available_therapist": 0,
                                "reminded": 0, "escalated": 0}
    assert AppointmentEvent.objects.filter(kind="timed_out").count() == 1000
    # The therapists hear of each of theirs; each operator gets one digest per batch.
    assert Notification.objects.filter(recipient__role="therapist").count() == 1000
    assert Notification.objects.filter(recipient=operator).count() == 2
    assert Notification.objects.filter(recipient=operator2).count() == 2
    assert AccountStatusChange.objects.count() == 8


# --- The schedule ------------------------------------------------------------------------


def test_cronjobs_run_the_sweep_every_minute(make_appointment, therapist, capsys):
    jobs = [job for job in settings.CRONJOBS if "auto_cancel_overdue" in repr(job)]
    assert len(jobs) == 1
    schedule, function, args, *rest = jobs[0]
    assert schedule == "* * * * *"
    appt = overdue_appointment(make_appointment, therapist)

    import_string(function)(*args, **(rest[0] if rest else {}))

    appt.refresh_from_db()
    assert appt.status == "cancelled"
    assert f"#{appt.id} cancelled" in capsys.readouterr().out


def test_cron_line_loads_the_project_env_and_never_overlaps_itself():
    assert settings.CRONTAB_LOCK_JOBS is True
    prefix = settings.CRONTAB_COMMAND_PREFIX
    assert f'cd "{settings.BASE_DIR}"' in prefix
    assert ". ./.env" in prefix and "set -a" in prefix


# --- The operator's endpoint --------------------------------------------------------------


def test_sweep_endpoint_answers_integer_counts(api, operator, therapist, make_appointment):
    overdue_appointment(make_appointment, therapist)
    make_appointment("pending", service=Service.objects.create(
        name="Hot stone", duration_minutes=90, price="1200.00"), starts_in=WINDOW / 2)

    response = api(operator).post("/api/scheduling/appointments/auto_cancel_overdue/")

    assert response.status_code == 200
    assert response.json() == {"timed_out": 1, "therapists_disabled": 1, "no_available_therapist": 1,
                               "reminded": 0, "escalated": 0}
    again = api(operator).post("/api/scheduling/appointments/auto_cancel_overdue/")
    assert again.json() == {"timed_out": 0, "therapists_disabled": 0, "no_available_therapist": 0,
                            "reminded": 0, "escalated": 0}


def test_sweep_endpoint_is_for_operators_only(api, therapist, make_appointment, therapist_b):
    appt = overdue_appointment(make_appointment, therapist_b)
    response = api(therapist).post("/api/scheduling/appointments/auto_cancel_overdue/")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert api(None).post("/api/scheduling/appointments/auto_cancel_overdue/").status_code in (401, 403)
    appt.refresh_from_db()
    assert appt.status == "pending"
