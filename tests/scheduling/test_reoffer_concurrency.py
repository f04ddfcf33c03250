"""Re-offer under concurrency, on PostgreSQL: two sweeps at once never offer one
appointment twice nor book one therapist twice (travel included); a late accept
racing the sweep has exactly one winner; an operator's assign and a re-offer
reaching for the same therapist never both get her."""

import random
import threading
from collections import Counter, defaultdict
from datetime import timedelta
from itertools import pairwise

import pytest
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from accounts.models import AccountStatusChange, User
from scheduling import workflow
from scheduling.availability import available_therapists, place_key
from scheduling.models import Appointment, AppointmentEvent
from tests.conftest import make_therapist, make_user
from tests.scheduling.sweeps import sweeps_at_once
from tests.scheduling.test_auto_cancel_overdue import bulk_overdue
from tests.scheduling.test_races import race
from tests.scheduling.test_sweep_concurrency import _race, fast_thread_switching  # noqa: F401 - a fixture
from tests.servers import server_env

pytestmark = pytest.mark.usefixtures("postgres", "transactional_db")

BUFFER = timedelta(minutes=30)


@pytest.fixture(autouse=True)
def reoffer_on(settings):
    settings.AUTO_REOFFER = True
    return settings


def assert_nobody_double_booked() -> None:
    """No two open appointments of one therapist overlap, and between two at
    different places there is the travel buffer."""
    by_therapist = defaultdict(list)
    for appt in Appointment.objects.filter(status__in=Appointment.BUSY_STATUSES, therapist__isnull=False):
        by_therapist[appt.therapist_id].append(appt)
    for appts in by_therapist.values():
        appts.sort(key=lambda a: a.starts_at)
        for before, after in pairwise(appts):
            gap = BUFFER if place_key(before.location) != place_key(after.location) else timedelta(0)
            assert after.starts_at >= before.ends_at + gap, (before.id, after.id)


def assert_one_offer_at_a_time() -> None:
    """Walking each appointment's history, an offer opens only when none is open."""
    holder: dict[int, int | None] = {}
    for event in AppointmentEvent.objects.order_by("id"):
        current = holder.get(event.appointment_id)
        if event.kind == "assigned":
            assert current is None, f"#{event.appointment_id} offered to {event.therapist_id} while {current} held it"
            holder[event.appointment_id] = event.therapist_id
        elif event.kind in ("timed_out", "rejection_accepted", "reassigned", "cancelled", "no_available_therapist"):
            holder[event.appointment_id] = None


def test_two_sweeps_at_once_reoffer_every_appointment_once_and_book_nobody_twice(
        client_obj, service, operator, tmp_path):
    late = [make_user(f"late{i:02}", "therapist") for i in range(15)]
    free = [make_therapist(f"free{i:02}", service) for i in range(20)]
    appts = bulk_overdue(200, late, client=client_obj, service=service)

    timed_out_lines = []
    per_process = []
    for lines in sweeps_at_once(tmp_path, server_env(AUTO_REOFFER="1")):
        assert lines[-1].startswith(("Handled:", "Nothing due")), lines[-1]
        mine = [line.split()[0] for line in lines if " timed out: " in line]
        per_process.append(len(mine))
        timed_out_lines += mine
    print(f"\nper process: {per_process} timeouts")

    assert Counter(timed_out_lines) == Counter(f"#{a.id}" for a in appts)
    per_appointment = (AppointmentEvent.objects.filter(kind="timed_out").values("appointment")
                       .annotate(n=Count("id")).values_list("n", flat=True))
    assert sorted(per_appointment) == [1] * 200
    auto = Counter(AppointmentEvent.objects.filter(kind="assigned", actor__isnull=True)
                   .values_list("appointment_id", flat=True))
    assert auto and max(auto.values()) == 1
    # Nothing is cancelled for a timeout: each booking is offered on, or waits.
    assert not Appointment.objects.filter(cancellation_reason="response_timeout").exists()
    offered = Appointment.objects.filter(id__in=auto, therapist__in=free, status="pending")
    assert offered.count() == len(auto)
    assert Appointment.objects.filter(id__in=[a.id for a in appts], therapist__isnull=True).count() == 200 - len(auto)
    assert_nobody_double_booked()
    assert_one_offer_at_a_time()
    disables = (AccountStatusChange.objects.filter(action="disabled").values("user")
                .annotate(n=Count("id")).values_list("user", "n"))
    assert dict(disables) == {t.id: 1 for t in late}
    assert User.objects.filter(id__in=[t.id for t in free], is_active=True).count() == 20


def test_a_late_accept_racing_the_sweep_with_reoffer_has_exactly_one_winner(
        make_appointment, service, fast_thread_switching):  # noqa: F811 - the fixture
    random.seed(4321)
    tally = Counter()
    for trial in range(20):
        therapist = make_therapist(f"race{trial:02}", service)
        backup = make_therapist(f"backup{trial:02}", service)
        appt = make_appointment("pending", therapist, starts_in=timedelta(hours=2, minutes=3 * trial))
        # A wider spread than the plain race: with the re-offer the losing side does
        # more work, and every outcome should turn up.
        accepted, swept = _race(appt.id, therapist,
                                accept_offset=timedelta(microseconds=random.randint(-40000, 3000)),
                                sweep_offset=timedelta(microseconds=random.randint(0, 8000)))

        appt.refresh_from_db()
        therapist.refresh_from_db()
        assert not isinstance(swept, Exception), swept
        timed_out = AppointmentEvent.objects.filter(appointment=appt, kind="timed_out").count()
        auto_offers = AppointmentEvent.objects.filter(appointment=appt, kind="assigned", actor__isnull=True).count()
        if isinstance(accepted, Appointment):
            tally["accepted"] += 1
            assert (appt.status, appt.therapist_id) == ("confirmed", therapist.id)
            assert (timed_out, auto_offers) == (0, 0)
            assert therapist.is_active
        else:
            assert isinstance(accepted, workflow.WorkflowError), accepted
            assert accepted.code == "deadline_passed", accepted.detail
            assert "offered to another therapist" in accepted.detail
            by_sweep = appt.id in [a.appointment_id for a in swept.actions]
            tally["re-offered by the sweep" if by_sweep else "re-offered by the late accept"] += 1
            assert (appt.status, appt.therapist_id) == ("pending", backup.id)
            assert (timed_out, auto_offers) == (1, 1)
            assert not therapist.is_active
        # The backup is not racing anyone else: free again for the next trial.
        workflow.cancel(actor=User.objects.get(username="olga"), appointment_id=appt.id, reason="next trial")
        User.objects.filter(pk=backup.pk).update(is_active=False)
    print(f"\naccept vs sweep (re-offer on): {dict(tally)}")
    assert sum(tally.values()) == 20
    assert_one_offer_at_a_time()


def test_an_operator_and_a_reoffer_reaching_for_one_therapist_never_both_get_her(
        make_appointment, operator, service, client_obj):
    for trial in range(10):
        late = make_therapist(f"late{trial:02}", service)
        bea = make_therapist(f"bea{trial:02}", service)
        offset = timedelta(hours=2 + 2 * trial)
        overdue = make_appointment("pending", late, starts_in=offset)
        Appointment.objects.filter(pk=overdue.pk).update(response_deadline=timezone.now() - timedelta(seconds=1))
        # Same time, another address: whoever gets Bea, the other cannot have her.
        other = workflow.create_appointment(actor=operator, client=client_obj, service=service,
                                            starts_at=overdue.starts_at + timedelta(minutes=30),
                                            location="8 Scout Tuason Ave, Quezon City")

        outcomes = race(
            lambda: workflow.assign(actor=operator, appointment_id=other.id, therapist_id=bea.id),  # noqa: B023
            lambda: workflow.expire_overdue(batch_size=50),
        )

        assert outcomes[1][0] == "ok", outcomes
        assert outcomes[0] in (("refused", "therapist_unavailable"),) or outcomes[0][0] == "ok", outcomes
        held_by_bea = Appointment.objects.filter(pk__in=[overdue.pk, other.pk], therapist=bea).count()
        assert held_by_bea == 1, outcomes
        # Out of the way of the next trial.
        User.objects.filter(pk__in=[late.pk, bea.pk]).update(is_active=False)
    assert_nobody_double_booked()


def test_a_therapist_someone_else_is_booking_is_passed_over_not_waited_for(make_appointment, operator, service):
    """Bea ranks first, but another transaction holds her row (an operator's assign
    in flight): the sweep does not wait for it, the booking goes to the next one."""
    ana = make_therapist("ana", service, name="Ana Cruz")
    bea = make_therapist("bea", service, name="Bea Santos")
    cara = make_therapist("cara", service, name="Cara Reyes")
    # Cara ranks after Bea: busier that day, or (across midnight) more recently busy.
    make_appointment("confirmed", cara, starts_in=timedelta(hours=1))
    appt = make_appointment("pending", ana)
    Appointment.objects.filter(pk=appt.pk).update(response_deadline=timezone.now() - timedelta(seconds=1))
    holding, release = threading.Event(), threading.Event()

    def hold_bea() -> None:
        try:
            with transaction.atomic():
                User.objects.select_for_update().get(pk=bea.pk)
                holding.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_bea)
    holder.start()
    try:
        assert holding.wait(timeout=10)
        result = workflow.expire_overdue(batch_size=10)
    finally:
        release.set()
        holder.join(timeout=10)

    appt.refresh_from_db()
    assert result.actions[0].reoffered
    assert appt.therapist_id == cara.id
    # With Bea's row free again she is first in line for the next one.
    later = make_appointment("pending", starts_in=timedelta(hours=20))
    assert [r.therapist.id for r in available_therapists(later)][:1] == [bea.id]
