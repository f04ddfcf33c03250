"""The sweep under concurrency, on PostgreSQL (SQLite has no row locks to race on):
several hosts sweeping at the same minute, and a therapist accepting at the very
moment the deadline passes."""

import random
import sys
import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from accounts.models import AccountStatusChange, User
from notifications.models import Notification
from scheduling import workflow
from scheduling.models import Appointment, AppointmentEvent
from tests.conftest import make_therapist, make_user
from tests.scheduling.sweeps import sweeps_at_once
from tests.scheduling.test_auto_cancel_overdue import bulk_overdue
from tests.servers import server_env

pytestmark = pytest.mark.usefixtures("postgres", "transactional_db")


def test_two_sweeps_at_once_process_every_appointment_exactly_once(client_obj, service, operator, tmp_path):
    therapists = [make_user(f"t{i:02}", "therapist") for i in range(15)]
    appts = bulk_overdue(200, therapists, client=client_obj, service=service)

    lines_by_process = []
    for lines in sweeps_at_once(tmp_path, server_env()):
        assert lines[-1].startswith(("Cancelled", "Nothing due"))
        lines_by_process.append([line.split()[0] for line in lines[:-1]])
    print(f"\nper process: {[len(lines) for lines in lines_by_process]} appointments")

    reported = Counter(token for lines in lines_by_process for token in lines)
    assert reported == Counter(f"#{a.id}" for a in appts)
    assert Appointment.objects.filter(status="cancelled", cancellation_reason="response_timeout").count() == 200
    per_appointment = (AppointmentEvent.objects.filter(kind="timed_out").values("appointment")
                       .annotate(n=Count("id")).values_list("n", flat=True))
    assert sorted(per_appointment) == [1] * 200
    disables = (AccountStatusChange.objects.filter(action="disabled").values("user")
                .annotate(n=Count("id")).values_list("user", "n"))
    assert dict(disables) == {t.id: 1 for t in therapists}
    assert not User.objects.filter(role="therapist", is_active=True).exists()
    # Each operator gets one digest per batch; together they count every appointment once.
    digests = Notification.objects.filter(kind="timeouts", recipient=operator).values_list("message", flat=True)
    assert sum(int(message.split()[0]) for message in digests) == 200
    assert Notification.objects.filter(kind="timed_out", recipient__role="therapist").count() == 200


def _race(appointment_id: int, therapist: User, accept_offset: timedelta,
          sweep_offset: timedelta) -> tuple[object, object]:
    """Start an accept and an expire_overdue at exact instants around the
    appointment's deadline (an offset after it; negative: before it). Returns
    (accept outcome, sweep outcome): the appointment, a BatchResult or the
    exception raised."""
    deadline = timezone.now() + timedelta(milliseconds=150)  # time for both threads to connect
    Appointment.objects.filter(pk=appointment_id).update(response_deadline=deadline)
    ready = threading.Barrier(2, timeout=10)
    outcomes: dict[str, object] = {}

    def run(name: str, call) -> None:
        start_at = deadline + (accept_offset if name == "accept" else sweep_offset)
        try:
            connection.ensure_connection()
            ready.wait()
            while timezone.now() < start_at:
                pass  # a start line at an exact instant, which a barrier alone cannot give
            outcomes[name] = call()
        except Exception as exc:
            outcomes[name] = exc
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=("accept", lambda: workflow.accept(actor=therapist,
                                                                             appointment_id=appointment_id))),
        threading.Thread(target=run, args=("sweep", lambda: workflow.expire_overdue(batch_size=50))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes["accept"], outcomes["sweep"]


@pytest.fixture
def fast_thread_switching():
    """Hand the GIL over every 0.1 ms instead of every 5 ms, so two released
    threads really reach the database at the same moment."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)
    yield
    sys.setswitchinterval(previous)


def test_accept_racing_the_sweep_at_the_deadline_has_exactly_one_winner(make_appointment, service,
                                                                       fast_thread_switching):
    random.seed(1234)
    tally = Counter()
    for trial in range(30):
        therapist = make_therapist(f"race{trial:02}", service)
        appt = make_appointment("pending", therapist, starts_in=timedelta(hours=2))
        # Both threads start within a few milliseconds of the deadline. (An accept
        # takes some 10 ms to reach its row lock here, the sweep less.)
        accepted, swept = _race(appt.id, therapist,
                                accept_offset=timedelta(microseconds=random.randint(-15000, 3000)),
                                sweep_offset=timedelta(microseconds=random.randint(0, 8000)))

        appt.refresh_from_db()
        therapist.refresh_from_db()
        timed_out = AppointmentEvent.objects.filter(appointment=appt, kind="timed_out").count()
        assert not isinstance(swept, Exception), swept
        if isinstance(accepted, Appointment):
            tally["accepted"] += 1
            assert appt.status == "confirmed"
            assert timed_out == 0
            assert therapist.is_active
            assert appt.id not in [a.appointment_id for a in swept.actions]
        else:
            assert isinstance(accepted, workflow.WorkflowError), accepted
            by_sweep = appt.id in [a.appointment_id for a in swept.actions]
            tally["timed out by the sweep" if by_sweep else "timed out by the late accept"] += 1
            assert accepted.code in (("deadline_passed", "invalid_transition") if by_sweep else ("deadline_passed",))
            assert (appt.status, appt.cancellation_reason) == ("cancelled", "response_timeout")
            assert timed_out == 1
            assert not therapist.is_active
            assert AccountStatusChange.objects.filter(user=therapist).count() == 1
        assert AppointmentEvent.objects.filter(appointment=appt, kind="accepted").count() == (
            1 if appt.status == "confirmed" else 0)
    print(f"\naccept vs sweep outcomes: {dict(tally)}")
    assert sum(tally.values()) == 30
