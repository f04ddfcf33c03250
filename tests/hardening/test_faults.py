"""Faults, injected for real on loopback: Redis dying under a running workflow,
PostgreSQL dropping the sweep's connection mid-batch, and a daphne process
SIGKILLed while dashboards are connected.

Each test owns what it breaks: a private redis-server on a free port, the
sweep's own backend (found by its application_name), the daphne processes it
started. The shared Redis and PostgreSQL are never touched.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils import timezone
from rest_framework.authtoken.models import Token
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from accounts.models import AccountStatusChange, User
from notifications.models import Notification
from scheduling.models import Appointment, AppointmentEvent, Client, Service
from tests.conftest import make_therapist, make_user, needs
from tests.servers import ROOT, daphne, database_url, free_port, server_env, session_cookie_for

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("postgres", "transactional_db")]

WAIT = 5  # seconds a message may take before the test gives up on it


# --- helpers ---------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of our own on a free loopback port, to kill and bring back."""

    def __init__(self, tmp_path: Path):
        self.port = free_port()
        self.tmp_path = tmp_path
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
            if ping.stdout.strip() == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)


def dashboard_socket(server, user):
    cookie = session_cookie_for(user)
    return connect(f"{server.ws_url}/ws/dashboard/", origin=f"http://127.0.0.1:{server.port}", proxy=None,
                   additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"}, open_timeout=WAIT)


def next_event(socket, appointment_id: int | None = None, kind: str | None = None) -> dict:
    give_up = time.monotonic() + WAIT
    while True:
        message = json.loads(socket.recv(timeout=max(0.01, give_up - time.monotonic())))
        if message["type"] == "appointment.event" and (
                appointment_id is None or message["appointment"]["id"] == appointment_id) and (
                kind is None or message["kind"] == kind):
            return message


def api(server, user) -> httpx.Client:
    token, _ = Token.objects.get_or_create(user=user)
    return httpx.Client(base_url=server.url, timeout=WAIT * 3, trust_env=False,
                        headers={"Authorization": f"Token {token.key}"})


def feed_after(http: httpx.Client, after: int) -> list[dict]:
    """Every event after `after`, following the feed's pages."""
    events, url = [], f"/api/scheduling/events/?after={after}"
    while url:
        body = http.get(url).json()
        events.extend(body["results"])
        url = body["next"]
    return events


@pytest.fixture
def staff(db):
    service = Service.objects.create(name="Swedish massage", duration_minutes=60, price="800.00")
    operator = make_user("olga", "operator", name="Olga Operator")
    therapists = [make_therapist(name, service, hours=72) for name in ("ana", "bea", "cora")]
    client = Client.objects.create(name="Maria Lopez", phone="+63 917 555 0101")
    return operator, therapists, client, service


def book(http: httpx.Client, client: Client, service: Service, hours: float, therapist: User | None = None) -> dict:
    body = {"client": client.id, "service": service.id, "location": "12 Mabini St",
            "starts_at": (timezone.now() + timedelta(hours=hours)).isoformat()}
    if therapist:
        body["therapist"] = therapist.id
    response = http.post("/api/scheduling/appointments/", json=body)
    assert response.status_code == 201, response.text
    return response.json()


# --- Redis dies during a workflow -------------------------------------------------------


def test_redis_down_during_a_workflow_then_back(redis_url, staff, tmp_path):
    """With the channel layer's Redis killed mid-workflow every request still
    succeeds, every event is stored, and the feed hands all of them over — and
    once Redis is back a (re)connected dashboard is live again."""
    needs(shutil.which("redis-server") is not None, "redis-server")
    operator, (ana, bea, _), client, service = staff
    redis = PrivateRedis(tmp_path)
    redis.start()
    try:
        with daphne(tmp_path, REDIS_URL=redis.url) as server, api(server, operator) as ops, \
                api(server, ana) as ana_http, api(server, bea) as bea_http:
            with dashboard_socket(server, operator) as socket:
                # Starts in 15 minutes, inside the start window: Ana can start it below.
                first = book(ops, client, service, 0.25, ana)
                last_seen = next_event(socket, first["id"], "assigned")["event_id"]

                redis.kill()  # ---- the fault ----
                during = [book(ops, client, service, 4 + n, therapist) for n, therapist in
                          enumerate([ana, bea, ana, bea])]
                steps = [
                    (ana_http, f"{first['id']}/accept/", None),
                    (ana_http, f"{first['id']}/start/", None),
                    (ana_http, f"{first['id']}/complete/", None),
                    (bea_http, f"{during[1]['id']}/reject/", {"rejection_reason": "Flat tyre"}),
                    (ops, f"{during[1]['id']}/review_rejection/", {"review_decision": "deny", "review_note": "Go"}),
                    (ana_http, f"{during[0]['id']}/accept/", None),
                    (ops, f"{during[2]['id']}/cancel/", {"reason": "Client called"}),
                ]
                for http, path, body in steps:
                    response = http.post(f"/api/scheduling/appointments/{path}", json=body)
                    assert response.status_code == 200, (path, response.text)
                # Signing in needs the cache, which is this dead Redis too: it fails open.
                login = httpx.post(f"{server.url}/api/accounts/token/", trust_env=False, timeout=WAIT * 3,
                                   json={"username": "olga", "password": "pass-olga"})
                assert login.status_code == 200, login.text
                # The socket that was open when Redis died is closed by the server, so
                # its page knows to fall back to polling the feed.
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        socket.recv(timeout=WAIT)
                assert closed.value.rcvd.code == 4503  # not 4403: the page reconnects, it does not reload

            stored = list(AppointmentEvent.objects.filter(id__gt=last_seen).order_by("id").values_list("id", flat=True))
            # created + assigned for each of 4 bookings, then the 7 steps
            assert len(stored) == 4 * 2 + 7
            assert [e["id"] for e in feed_after(ops, last_seen)] == stored, "the feed returns every stored event"

            redis.start()  # ---- back (empty: group memberships are gone) ----
            with dashboard_socket(server, operator) as socket:
                socket.send(json.dumps({"type": "ping"}))
                give_up = time.monotonic() + WAIT
                while json.loads(socket.recv(timeout=max(0.01, give_up - time.monotonic())))["type"] != "pong":
                    pass
                after_outage = book(ops, client, service, 9, bea)
                live = next_event(socket, after_outage["id"])
                assert live["kind"] == "created"
            assert server.process.poll() is None, "daphne survived the outage"
            log = server.log()
            assert "realtime publish of" in log, "the outage was felt (and logged) while publishing"
            # No request failed and nothing crashed: the layer noticed, closed the socket
            # on purpose, and the only tracebacks are channels_redis's own log of the
            # channel it could not unsubscribe from the dead Redis (two chained each).
            assert "Internal Server Error" not in log and " 500 " not in log
            assert "Exception inside application" not in log
            assert "channel layer lost Redis" in log
            assert log.count("Traceback") <= 2 * log.count("Unexpected exception while cleaning-up channel")
    finally:
        redis.kill()


# --- PostgreSQL drops the sweep's connection ---------------------------------------------

SWEEP_APP = "sweep-under-test"


def overdue_bookings(operator: User, client: Client, service: Service, *, therapists: int, each: int) -> list[int]:
    """`therapists` x `each` appointments assigned 2 hours ago whose 30-minute
    deadline has passed, each with its `created` and `assigned` events (set up in
    bulk: the workflow would take a while for hundreds)."""
    now = timezone.now()
    assigned_at = now - timedelta(hours=2)
    deadline = assigned_at + timedelta(minutes=settings.RESPONSE_DEADLINE_MINUTES)
    people = [make_therapist(f"late{n}", service, hours=48) for n in range(therapists)]
    rows = []
    for person in people:
        for i in range(each):
            starts = now + timedelta(hours=1 + i)
            rows.append(Appointment(client=client, service=service, therapist=person, status="pending",
                                    starts_at=starts, ends_at=starts + timedelta(minutes=60), location="Makati",
                                    created_by=operator, assigned_at=assigned_at, response_deadline=deadline,
                                    updated_at=assigned_at))
    appts = Appointment.objects.bulk_create(rows)
    events = []
    for a in appts:
        events.append(AppointmentEvent(appointment=a, kind="created", actor=operator, from_status="",
                                       to_status="pending", created_at=assigned_at))
        events.append(AppointmentEvent(appointment=a, kind="assigned", actor=operator, therapist=a.therapist,
                                       from_status="pending", to_status="pending", created_at=assigned_at,
                                       data={"response_deadline": deadline.isoformat()}))
    AppointmentEvent.objects.bulk_create(events)
    return [a.id for a in appts]


def sweep_process(batch_size: int) -> subprocess.Popen:
    env = server_env(DATABASE_URL=f"{database_url()}?application_name={SWEEP_APP}")
    return subprocess.Popen([sys.executable, "manage.py", "auto_cancel_overdue", "--batch-size", str(batch_size)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def sweep_backend_pids() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [SWEEP_APP])
        return [row[0] for row in cursor.fetchall()]


def test_postgres_connection_dropped_mid_sweep(staff):
    """The sweep's backend is terminated while it works through small batches: it
    exits non-zero with a clear message, nothing is half-done (a batch either
    committed whole or not at all), and the next sweep finishes the work."""
    operator, _, client, service = staff
    ids = overdue_bookings(operator, client, service, therapists=30, each=10)
    operators = list(User.objects.filter(role="operator", is_active=True).values_list("id", flat=True))

    process = sweep_process(batch_size=2)
    killed = False
    give_up = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < give_up:
        # Wait until some batches have committed, then pull the plug.
        if not killed and AppointmentEvent.objects.filter(kind="timed_out").count() >= 10:
            pids = sweep_backend_pids()
            if pids:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE application_name = %s", [SWEEP_APP])
                killed = True
        time.sleep(0.005)
    out, err = process.communicate(timeout=30)
    assert killed, f"the sweep finished before its connection could be dropped:\n{out}\n{err}"
    assert process.returncode != 0, f"exit 0 after its connection was dropped:\n{out}\n{err}"
    assert "Sweep failed: the database is unreachable" in err, err
    assert "Traceback" not in err, err

    timed_out_first = AppointmentEvent.objects.filter(kind="timed_out").count()
    assert 10 <= timed_out_first < len(ids), "the fault hit in the middle of the work"
    assert_nothing_half_done(ids, operators)

    second = sweep_process(batch_size=50)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, out + err
    assert f"Cancelled {len(ids) - timed_out_first} appointment(s)" in out, out

    assert_nothing_half_done(ids, operators)
    assert not Appointment.objects.filter(status="pending", therapist__isnull=False,
                                          response_deadline__lte=timezone.now()).exists()
    assert Appointment.objects.filter(id__in=ids, status="cancelled",
                                      cancellation_reason="response_timeout").count() == len(ids)


def assert_nothing_half_done(ids: list[int], operators: list[int]) -> None:
    """Every timed-out appointment has exactly one timed_out event, its therapist
    is disabled (with one history row), the therapist got exactly one notification
    about it and every operator's digests count it once; every other one is untouched."""
    appts = {a.id: a for a in Appointment.objects.filter(id__in=ids).select_related("therapist")}
    timed_out_events = Counter(AppointmentEvent.objects.filter(appointment_id__in=ids, kind="timed_out")
                               .values_list("appointment_id", flat=True))
    notes = Counter(Notification.objects.filter(appointment_id__in=ids, kind="timed_out")
                    .values_list("appointment_id", "recipient_id"))
    disables = dict(AccountStatusChange.objects.filter(action="disabled").values("user_id")
                    .annotate(n=Count("id")).values_list("user_id", "n"))
    for appt_id, appt in appts.items():
        if appt.status == "cancelled":
            assert appt.cancellation_reason == "response_timeout" and appt.auto_cancelled_at, appt_id
            assert timed_out_events[appt_id] == 1, f"#{appt_id}: {timed_out_events[appt_id]} timed_out events"
            assert not appt.therapist.is_active and appt.therapist.disabled_at, f"#{appt_id}: therapist active"
            assert disables.get(appt.therapist_id) == 1, f"therapist {appt.therapist_id}: disable history"
            assert notes[(appt_id, appt.therapist_id)] == 1, f"#{appt_id}: notifications to its therapist"
        else:
            assert appt.status == "pending", appt_id
            assert timed_out_events[appt_id] == 0 and not any(k[0] == appt_id for k in notes), appt_id
    # Each operator's digests (one per committed batch) count every cancelled appointment once.
    cancelled = sum(1 for appt in appts.values() if appt.status == "cancelled")
    for operator_id in operators:
        digests = Notification.objects.filter(recipient_id=operator_id, kind="timeouts").values_list("message",
                                                                                                    flat=True)
        assert sum(int(message.split()[0]) for message in digests) == cancelled, f"digests to {operator_id}"


# --- a daphne process is killed with dashboards connected ---------------------------------


def test_daphne_killed_with_clients_connected(redis_url, staff, tmp_path):
    """SIGKILL one of two daphne processes: a dashboard on the other keeps
    hearing events, and the dashboard that lost its server reconnects to the
    survivor and catches up from the events feed with no gap."""
    operator, (ana, bea, cora), client, service = staff
    with daphne(tmp_path) as doomed, daphne(tmp_path) as survivor, api(survivor, operator) as ops, \
            api(survivor, ana) as ana_http, ExitStack() as sockets:
        lost = sockets.enter_context(dashboard_socket(doomed, operator))
        steady = sockets.enter_context(dashboard_socket(survivor, operator))
        sockets.enter_context(dashboard_socket(doomed, ana))
        first = book(ops, client, service, 2, ana)
        last_seen = next_event(lost, first["id"], "assigned")["event_id"]
        next_event(steady, first["id"], "assigned")

        doomed.kill()  # ---- the fault: SIGKILL, no goodbye ----
        with pytest.raises(ConnectionClosed):
            while True:
                lost.recv(timeout=WAIT)

        made = [book(ops, client, service, 4, bea), book(ops, client, service, 6, cora)]
        assert ana_http.post(f"/api/scheduling/appointments/{first['id']}/accept/").status_code == 200
        heard = next_event(steady, made[0]["id"])
        assert heard["kind"] == "created", "the survivor's dashboard hears the next event"

        # The lost dashboard reconnects (to the survivor) and catches up.
        stored = list(AppointmentEvent.objects.filter(id__gt=last_seen).order_by("id").values_list("id", flat=True))
        caught_up = feed_after(ops, last_seen)
        assert [e["id"] for e in caught_up] == stored, "every event after the last one seen, in order"
        assert {e["appointment"]["id"] for e in caught_up} == {first["id"], *(m["id"] for m in made)}
        with dashboard_socket(survivor, operator) as reconnected:
            after = book(ops, client, service, 8, ana)
            assert next_event(reconnected, after["id"])["kind"] == "created"

        # The therapist's view of the gap is scoped to her own events.
        ana_feed = feed_after(ana_http, 0)
        assert {e["appointment"]["id"] for e in ana_feed} == {first["id"], after["id"]}
        assert survivor.process.poll() is None
        assert "Traceback" not in survivor.log()
