"""Realtime across processes, for real: two daphne servers sharing PostgreSQL and
Redis, as behind the production proxy. An assignment made through one server's
REST API reaches a dashboard connected to the other; with Redis gone, requests
still succeed and everything is stored.

Run with -s to see the assignment-to-socket latency over 100 trials."""

import json
import statistics
import time
from datetime import timedelta

import httpx
import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.authtoken.models import Token
from websockets.sync.client import connect

from scheduling import workflow
from scheduling.models import Appointment
from tests.conftest import make_therapist
from tests.servers import daphne, free_port, session_cookie_for

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("postgres", "transactional_db")]

WAIT = 5  # seconds a message may take before the test gives up on it


def dashboard_socket(server, user):
    cookie = session_cookie_for(user)
    return connect(f"{server.ws_url}/ws/dashboard/", origin=f"http://127.0.0.1:{server.port}", proxy=None,
                   additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"}, open_timeout=WAIT)


def wait_for(socket, predicate) -> dict:
    give_up = time.monotonic() + WAIT
    while True:
        message = json.loads(socket.recv(timeout=max(0.01, give_up - time.monotonic())))
        if predicate(message):
            return message


def unassigned_bookings(operator, client, service, count: int) -> list[Appointment]:
    """Back-to-back hour-long bookings from two hours ahead, nobody assigned yet."""
    start = timezone.now() + timedelta(hours=2)
    return [workflow.create_appointment(actor=operator, client=client, service=service,
                                        starts_at=start + timedelta(hours=n), location="12 Mabini St, Makati")
            for n in range(count)]


def test_assignment_through_one_server_reaches_a_dashboard_on_the_other(redis_url, tmp_path, operator,
                                                                        client_obj, service):
    therapist = make_therapist("ana", service, name="Ana Cruz", hours=120)
    first, *trials = unassigned_bookings(operator, client_obj, service, 101)

    with daphne(tmp_path) as server_a, daphne(tmp_path) as server_b, \
            httpx.Client(base_url=server_a.url, timeout=WAIT * 2, trust_env=False) as http:
        token = http.post("/api/accounts/token/", json={"username": "olga", "password": "pass-olga"}).json()["token"]
        http.headers["Authorization"] = f"Token {token}"
        with dashboard_socket(server_b, therapist) as socket:
            socket.send(json.dumps({"type": "ping"}))
            wait_for(socket, lambda m: m["type"] == "pong")  # joined its groups on B

            started = time.perf_counter()
            response = http.post(f"/api/scheduling/appointments/{first.id}/assign/", json={"therapist": therapist.id})
            assert response.status_code == 200, response.text
            event = wait_for(socket, lambda m: m["type"] == "appointment.event")
            latency = time.perf_counter() - started
            assert (event["kind"], event["appointment"]["id"]) == ("assigned", first.id)
            assert event["appointment"]["therapist"] == {"id": therapist.id, "name": "Ana Cruz", "phone": ""}
            notification = wait_for(socket, lambda m: m["type"] == "notification")
            assert notification["notification"]["appointment"] == first.id
            assert notification["unread"] == 1

            feed = http.get("/api/scheduling/events/", params={"after": event["event_id"] - 1}).json()["results"]
            assert (feed[0]["id"], feed[0]["kind"], feed[0]["appointment"]["id"]) == (
                event["event_id"], "assigned", first.id)
            print(f"\nfirst assignment on A heard on B after {latency * 1000:.1f} ms")

            latencies, answers = [], []
            for appt in trials:
                started = time.perf_counter()
                response = http.post(f"/api/scheduling/appointments/{appt.id}/assign/",
                                     json={"therapist": therapist.id})
                answers.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text
                event = wait_for(socket, lambda m, appt=appt: m["type"] == "appointment.event"
                                 and m["appointment"]["id"] == appt.id)
                latencies.append(time.perf_counter() - started)
                assert event["kind"] == "assigned"
    assert len(latencies) == 100
    print(f"assignment (POST on A) to socket (on B), 100 trials: median {statistics.median(latencies) * 1000:.1f} ms, "
          f"worst {max(latencies) * 1000:.1f} ms, best {min(latencies) * 1000:.1f} ms "
          f"(the POST's own answer: median {statistics.median(answers) * 1000:.1f} ms)")


def test_with_redis_down_the_servers_still_answer_and_store_everything(postgres, tmp_path, operator, therapist,
                                                                       client_obj, service):
    to_accept, to_reject = unassigned_bookings(operator, client_obj, service, 2)
    tokens = {user.id: Token.objects.create(user=user).key for user in (operator, therapist)}
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"

    def as_user(user):
        return {"Authorization": f"Token {tokens[user.id]}"}

    with daphne(tmp_path, REDIS_URL=dead_redis) as server, \
            httpx.Client(base_url=server.url, timeout=WAIT * 2, trust_env=False) as http:
        timings = {}
        for name, user, path, body in [
            ("assign", operator, f"{to_accept.id}/assign/", {"therapist": therapist.id}),
            ("assign", operator, f"{to_reject.id}/assign/", {"therapist": therapist.id}),
            ("accept", therapist, f"{to_accept.id}/accept/", None),
            ("reject", therapist, f"{to_reject.id}/reject/", {"rejection_reason": "Car broke down"}),
        ]:
            started = time.perf_counter()
            response = http.post(f"/api/scheduling/appointments/{path}", json=body, headers=as_user(user))
            timings.setdefault(name, []).append(time.perf_counter() - started)
            assert response.status_code == 200, response.text

        feed = http.get("/api/scheduling/events/", headers=as_user(therapist)).json()["results"]
        bell = http.get("/api/notifications/", headers=as_user(operator)).json()
        log = server.log()

    print("\nwith Redis down: " + ", ".join(f"{name} {max(t) * 1000:.0f} ms" for name, t in timings.items()))
    assert [(e["appointment"]["id"], e["kind"]) for e in feed] == [
        (to_accept.id, "assigned"), (to_reject.id, "assigned"), (to_accept.id, "accepted"),
        (to_reject.id, "rejected")]
    assert [n["kind"] for n in bell["results"]] == ["rejected"]
    assert "Car broke down" in bell["results"][0]["message"]
    assert log.count("WARNING notifications.realtime realtime publish of") == 4
    assert "Traceback" not in log
