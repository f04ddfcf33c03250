"""Load soak: the whole workflow under many concurrent users, then an audit of
the database. Not a test (not in `make test`); a bounded run on loopback.

README-soak
===========

    .venv/bin/python -m bench.soak                 # 60 s, 50 therapists, 5 operators
    .venv/bin/python -m bench.soak --duration 120 --processes 2
    .venv/bin/python -m bench.soak --keep-db       # keep guitara_soak to look inside
    .venv/bin/python -m bench.soak --reoffer       # with AUTO_REOFFER=1 (servers and sweep)

What it starts (loopback only; it refuses any other host):
- PostgreSQL: its own database `guitara_soak` (SOAK_DATABASE_URL, default
  postgres://postgres@127.0.0.1:5432/guitara_soak), dropped and created again,
  migrated, and dropped at the end unless --keep-db.
- Redis: database 4 of 127.0.0.1:6379 (SOAK_REDIS_URL) under a random
  CHANNEL_LAYER_PREFIX; only keys under that prefix are removed at the end.
- `daphne guitara.asgi:application` (--processes N, default 1, clients spread
  round robin as a proxy would) and the deadline sweep beside it
  (`auto_cancel_overdue --every 5`), with RESPONSE_DEADLINE_MINUTES=1 so that
  ignored assignments really time out within the run, and the default travel
  buffer (TRAVEL_BUFFER_MINUTES=30): bookings are at their clients' addresses.
  With --reoffer, AUTO_REOFFER=1: timeouts and accepted rejections go on to the
  next therapist instead of being cancelled or waiting.

Who it simulates (asyncio + httpx with API tokens; every therapist also keeps
the dashboard websocket open with a session cookie):
- operators (--operators, 5): book clients (some as walk-ins starting within a
  minute, whose deadline is their start), assign from `available_therapists`
  (best first, sometimes the second), review rejections (accept or deny), cancel
  a few bookings, re-enable therapists the sweep disabled, read the feed and
  the bell;
- therapists (--therapists, 50): react to their socket (and poll their list):
  accept most assignments after a random pause, reject some with a reason,
  ignore a few (those time out), start and complete what they confirmed; a
  therapist whose socket is closed with 4403 (disabled) waits to be re-enabled.

Then it audits the database:
1. no therapist double-booked (no two of one therapist's busy appointments —
   pending, confirmed, rejected, in progress — overlap, and two at different
   addresses leave the travel buffer between them);
1b. no appointment with two open offers: walking each one's events, an offer
   (`assigned`) opens only when none is open, and a pending appointment's
   therapist is the one its last offer went to;
2. every appointment in a legal state (status and fields agree: a cancelled one
   has its reason, a confirmed one a therapist, ends = start + duration ...);
3. every state change has exactly one event: each appointment's event chain
   runs from "" to pending, every event starts where the previous one ended, and
   the last ends at the current status;
4. no lost notification: each assignment, automatic ones included (and each
   denied rejection), notified its therapist, each rejection every operator, each
   timeout its therapist, each automatic take-back its previous therapist, each
   cancellation of an assigned booking its therapist — one notification per
   event, no more, no less; and each operator's digests (kinds `timeouts` and
   `unstaffed`) count every timeout and every no-available-therapist
   cancellation exactly once;
5. no server error (5xx) and no crashed consumer.

It prints the requests made, their statuses (409s are the expected losers of
races), throughput, latency percentiles, what the websockets heard and each
invariant, and exits 1 if an invariant fails. Duration is capped at 5 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

from bench.harness import Server, start_server
from scripts.devserver import Process, start_process

ROOT = Path(__file__).resolve().parent.parent
MAX_DURATION = 300
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/guitara_soak"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/4"
REASONS = ["Car broke down", "Family emergency", "Too far from my area", "Sick today", "Double-booked elsewhere"]


# ---------------------------------------------------------------------------
# Environment, database, servers
# ---------------------------------------------------------------------------


def loopback_only(url: str) -> str:
    host = urlparse(url).hostname or ""
    if host not in LOOPBACK:
        raise SystemExit(f"soak: refusing {url!r}: loopback hosts only")
    return url


def configure(*, reoffer: bool = False) -> dict[str, str]:
    database_url = loopback_only(os.environ.get("SOAK_DATABASE_URL", DEFAULT_DATABASE_URL))
    name = urlparse(database_url).path.lstrip("/")
    if not name.startswith("guitara_soak") or not name.replace("_", "").isalnum():
        raise SystemExit(f"soak: refusing database {name!r}: its name must start with guitara_soak")
    values = {
        "DJANGO_SETTINGS_MODULE": "guitara.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": loopback_only(os.environ.get("SOAK_REDIS_URL", DEFAULT_REDIS_URL)),
        "CHANNEL_LAYER_PREFIX": "guitara-soak-" + secrets.token_hex(4),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "RESPONSE_DEADLINE_MINUTES": "1",
        # Bookings lie hours ahead; therapists still start and complete what they
        # confirmed, so every transition stays in the mix.
        "START_EARLY_MINUTES": "1440",
        "TRAVEL_BUFFER_MINUTES": os.environ.get("TRAVEL_BUFFER_MINUTES", "30"),
        "AUTO_REOFFER": "1" if reoffer else "0",
        "LOGIN_THROTTLE_RATE": "100000/min",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(values)
    return values


def _admin_url() -> str:
    return os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"


def _database_name() -> str:
    return os.environ["DATABASE_URL"].rsplit("/", 1)[1]


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(_admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{_database_name()}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{_database_name()}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True)


def drop_database() -> None:
    import psycopg

    with psycopg.connect(_admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{_database_name()}" WITH (FORCE)')


def forget_redis_keys() -> int:
    """Remove this run's keys (channel layer and cache), nobody else's."""
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    removed = 0
    try:
        for key in client.scan_iter(match=os.environ["CHANNEL_LAYER_PREFIX"] + "*", count=500):
            removed += client.delete(key)
    finally:
        client.close()
    return removed


# ---------------------------------------------------------------------------
# The people (created straight in the database: a soak starts in seconds)
# ---------------------------------------------------------------------------


@dataclass
class Person:
    id: int
    username: str
    token: str
    session: str = ""


@dataclass
class Cast:
    operators: list[Person]
    therapists: list[Person]
    clients: list[tuple[int, str]]  # (id, address): each booking is at its client's address
    services: list[tuple[int, int]]  # (id, duration minutes)


def create_cast(n_operators: int, n_therapists: int) -> Cast:
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from accounts.models import User
    from scheduling.models import Availability, Client, Service

    now = timezone.now()
    services = [Service.objects.create(name=name, duration_minutes=minutes, price=price)
                for name, minutes, price in [("Swedish massage", 60, "800.00"), ("Foot reflexology", 45, "500.00"),
                                             ("Hot stone", 90, "1200.00")]]

    def people(role: str, count: int, prefix: str) -> list[Person]:
        out = []
        for i in range(count):
            user = User.objects.create_user(username=f"{prefix}{i}", password=secrets.token_urlsafe(12), role=role,
                                            first_name=prefix.title(), last_name=str(i))
            token = Token.objects.create(user=user).key
            store = SessionStore()
            store[SESSION_KEY] = str(user.pk)
            store[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
            store[HASH_SESSION_KEY] = user.get_session_auth_hash()
            store.create()
            out.append(Person(user.id, user.username, token, store.session_key))
        return out

    operators = people("operator", n_operators, "operator")
    therapists = people("therapist", n_therapists, "therapist")
    for service in services:
        service.therapists.set([t.id for t in therapists])
    Availability.objects.bulk_create([
        Availability(therapist_id=t.id, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=23))
        for t in therapists
    ])
    clients = Client.objects.bulk_create([
        Client(name=f"Client {i}", phone=f"+63 917 555 {i:04d}", address=f"{i} Mabini St, Makati")
        for i in range(40)
    ])
    return Cast(operators, therapists, [(c.id, c.address) for c in clients],
                [(s.id, s.duration_minutes) for s in services])


# ---------------------------------------------------------------------------
# The load
# ---------------------------------------------------------------------------


@dataclass
class Stats:
    statuses: Counter = field(default_factory=Counter)
    by_endpoint: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    latencies: list[float] = field(default_factory=list)
    transport_errors: Counter = field(default_factory=Counter)
    ws_messages: Counter = field(default_factory=Counter)
    ws_closed_4403: int = 0
    ws_connects: int = 0
    ws_refused: int = 0
    heard_assignments: int = 0
    actions: Counter = field(default_factory=Counter)


class Api:
    """One simulated person's HTTP client, counting everything."""

    def __init__(self, client, person: Person, stats: Stats):
        self.client = client
        self.headers = {"Authorization": f"Token {person.token}"}
        self.stats = stats

    async def call(self, method: str, path: str, label: str, body: dict | None = None):
        started = time.perf_counter()
        try:
            response = await self.client.request(method, path, headers=self.headers, json=body)
        except Exception as exc:  # counted; the soak goes on
            self.stats.transport_errors[f"{label}: {type(exc).__name__}"] += 1
            return None
        self.stats.latencies.append((time.perf_counter() - started) * 1000)
        self.stats.statuses[response.status_code] += 1
        self.stats.by_endpoint[label][response.status_code] += 1
        return response


WALK_IN_SHARE = 0.12


def walk_in_start(rng: random.Random) -> str:
    from django.utils import timezone

    return (timezone.localtime() + timedelta(seconds=rng.uniform(20, 45))).replace(microsecond=0).isoformat()


def iso_in(hours: float) -> str:
    from django.utils import timezone

    start = timezone.localtime() + timedelta(hours=hours)
    return start.replace(minute=start.minute // 15 * 15, second=0, microsecond=0).isoformat()


async def operator_loop(api: Api, cast: Cast, rng: random.Random, stop: asyncio.Event) -> None:
    while not stop.is_set():
        roll = rng.random()
        if roll < 0.45:
            await book_and_assign(api, cast, rng)
        elif roll < 0.70:
            await review_rejections(api, rng)
        elif roll < 0.78:
            await cancel_one(api, rng)
        elif roll < 0.88:
            await enable_disabled(api)
        else:
            await api.call("GET", "/api/scheduling/events/?after=0", "GET events")
            await api.call("GET", "/api/notifications/", "GET notifications")
        await asyncio.sleep(rng.uniform(0.1, 0.6))


async def book_and_assign(api: Api, cast: Cast, rng: random.Random) -> None:
    service_id, _ = rng.choice(cast.services)
    # Some are walk-ins starting in well under a minute: their deadline is their
    # start, so an unanswered one times out (and an unstaffable one is cancelled)
    # within a short run.
    walk_in = rng.random() < WALK_IN_SHARE
    starts_at = walk_in_start(rng) if walk_in else iso_in(rng.uniform(1.5, 21))
    client, address = rng.choice(cast.clients)
    body = {"client": client, "service": service_id, "location": address, "starts_at": starts_at}
    response = await api.call("POST", "/api/scheduling/appointments/", "POST create", body)
    if response is None or response.status_code != 201:
        return
    appt = response.json()["id"]
    await asyncio.sleep(rng.uniform(0.05, 0.3))
    await assign_best(api, appt, rng)


async def assign_best(api: Api, appt: int, rng: random.Random) -> None:
    response = await api.call("GET", f"/api/scheduling/appointments/{appt}/available_therapists/",
                              "GET available_therapists")
    if response is None or response.status_code != 200:
        return
    ranked = response.json()
    if not ranked:
        # Half are cancelled by hand; the rest wait in the queue (a walk-in among
        # them is the sweep's to cancel: no_available_therapist).
        if rng.random() < 0.5:
            await api.call("POST", f"/api/scheduling/appointments/{appt}/cancel/", "POST cancel",
                           {"reason": "Nobody can take it"})
        return
    choice = ranked[0] if len(ranked) == 1 or rng.random() < 0.8 else ranked[1]
    response = await api.call("POST", f"/api/scheduling/appointments/{appt}/assign/", "POST assign",
                              {"therapist": choice["id"]})
    if response is not None and response.status_code == 200:
        api.stats.actions["assigned"] += 1


async def review_rejections(api: Api, rng: random.Random) -> None:
    response = await api.call("GET", "/api/scheduling/appointments/?needs_review=true&page_size=20",
                              "GET needs_review")
    if response is None or response.status_code != 200:
        return
    for appt in response.json()["results"][:3]:
        decision = "deny" if rng.random() < 0.3 else "accept"
        note = "Please take it" if decision == "deny" else ""
        answer = await api.call("POST", f"/api/scheduling/appointments/{appt['id']}/review_rejection/",
                                "POST review_rejection", {"review_decision": decision, "review_note": note})
        if answer is not None and answer.status_code == 200:
            api.stats.actions[f"review_{decision}"] += 1
            body = answer.json()
            if decision == "accept" and body["status"] == "pending" and body["therapist"] is None:
                await assign_best(api, appt["id"], rng)


async def cancel_one(api: Api, rng: random.Random) -> None:
    response = await api.call("GET", "/api/scheduling/appointments/?status=pending,confirmed&ordering=-updated_at"
                              "&page_size=30", "GET open")
    if response is None or response.status_code != 200 or not response.json()["results"]:
        return
    appt = rng.choice(response.json()["results"])
    answer = await api.call("POST", f"/api/scheduling/appointments/{appt['id']}/cancel/", "POST cancel",
                            {"reason": "Client called it off"})
    if answer is not None and answer.status_code == 200:
        api.stats.actions["cancelled"] += 1


async def enable_disabled(api: Api) -> None:
    response = await api.call("GET", "/api/accounts/therapists/?is_active=false", "GET disabled therapists")
    if response is None or response.status_code != 200:
        return
    for therapist in response.json()["results"][:5]:
        answer = await api.call("POST", f"/api/accounts/therapists/{therapist['id']}/enable/", "POST enable",
                                {"note": "Talked to them"})
        if answer is not None and answer.status_code == 200:
            api.stats.actions["enabled"] += 1


async def therapist_loop(api: Api, person: Person, server_url: str, rng: random.Random, stop: asyncio.Event,
                         ignore_rate: float) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    wake = asyncio.Event()
    ignored: set[int] = set()
    ws_url = server_url.replace("http://", "ws://") + "/ws/dashboard/"

    async def listen() -> None:
        while not stop.is_set():
            try:
                async with connect(ws_url, origin=server_url, open_timeout=10, proxy=None,
                                   additional_headers={"Cookie": f"sessionid={person.session}"}) as ws:
                    api.stats.ws_connects += 1
                    async for raw in ws:
                        message = json.loads(raw)
                        api.stats.ws_messages[message.get("type", "?")] += 1
                        if message.get("type") == "appointment.event" and message.get("kind") in (
                                "assigned", "rejection_denied"):
                            api.stats.heard_assignments += 1
                        wake.set()
                    if ws.close_code == 4403:
                        api.stats.ws_closed_4403 += 1
            except ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code == 4403:
                    api.stats.ws_closed_4403 += 1  # disabled while connected: wait to be re-enabled
                else:
                    api.stats.ws_refused += 1
            except Exception:  # refused while disabled, or the run is ending
                api.stats.ws_refused += 1
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=rng.uniform(1.0, 3.0))

    listener = asyncio.create_task(listen())
    try:
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=rng.uniform(1.5, 4.0))
            wake.clear()
            if stop.is_set():
                break
            response = await api.call("GET", "/api/scheduling/appointments/?status=pending,confirmed,in_progress"
                                      "&page_size=100", "GET mine")
            if response is None or response.status_code != 200:
                continue
            for appt in response.json()["results"]:
                if stop.is_set():
                    break
                await act_on(api, appt, rng, ignored, ignore_rate)
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listener


async def act_on(api: Api, appt: dict, rng: random.Random, ignored: set[int], ignore_rate: float) -> None:
    base = f"/api/scheduling/appointments/{appt['id']}"
    status = appt["status"]
    if status == "pending":
        if appt["id"] in ignored:
            return
        # Walk-ins (deadline within a minute or two) are the ones left unanswered
        # most: their timeouts then happen inside a short run.
        starts_in = (datetime.fromisoformat(appt["starts_at"]) - datetime.now(UTC)).total_seconds()
        rate = ignore_rate * (4 if starts_in < 120 else 1)
        if rng.random() < rate:
            ignored.add(appt["id"])  # never answers: the sweep will time it out
            api.stats.actions["ignored"] += 1
            return
        await asyncio.sleep(rng.uniform(0.05, 1.5))
        if rng.random() < 0.78:
            response = await api.call("POST", f"{base}/accept/", "POST accept")
            if response is not None and response.status_code == 200:
                api.stats.actions["accepted"] += 1
        else:
            response = await api.call("POST", f"{base}/reject/", "POST reject",
                                      {"rejection_reason": rng.choice(REASONS)})
            if response is not None and response.status_code == 200:
                api.stats.actions["rejected"] += 1
    elif status == "confirmed" and rng.random() < 0.5:
        response = await api.call("POST", f"{base}/start/", "POST start")
        if response is not None and response.status_code == 200:
            api.stats.actions["started"] += 1
    elif status == "in_progress" and rng.random() < 0.5:
        response = await api.call("POST", f"{base}/complete/", "POST complete")
        if response is not None and response.status_code == 200:
            api.stats.actions["completed"] += 1


async def run_load(cast: Cast, servers: list[Server], duration: float, seed: int, ignore_rate: float) -> tuple[
        Stats, float]:
    import httpx

    stats = Stats()
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    clients = [httpx.AsyncClient(base_url=s.url, timeout=30, limits=limits, trust_env=False) for s in servers]
    rng = random.Random(seed)
    tasks = []
    for i, person in enumerate(cast.operators):
        api = Api(clients[i % len(clients)], person, stats)
        tasks.append(asyncio.create_task(operator_loop(api, cast, random.Random(rng.random()), stop)))
    for i, person in enumerate(cast.therapists):
        server = servers[i % len(servers)]
        api = Api(clients[i % len(clients)], person, stats)
        tasks.append(asyncio.create_task(therapist_loop(api, person, server.url, random.Random(rng.random()), stop,
                                                        ignore_rate)))
    started = time.perf_counter()
    await asyncio.sleep(duration)
    stop.set()
    _, pending = await asyncio.wait(tasks, timeout=15)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    elapsed = time.perf_counter() - started
    for client in clients:
        await client.aclose()
    return stats, elapsed


# ---------------------------------------------------------------------------
# The audit
# ---------------------------------------------------------------------------


@dataclass
class Invariant:
    name: str
    checked: int = 0
    violations: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.violations.append(message)

    @property
    def ok(self) -> bool:
        return not self.violations


def audit() -> list[Invariant]:
    from django.conf import settings

    from accounts.models import User
    from notifications.models import Notification
    from scheduling.availability import place_key
    from scheduling.models import Appointment, AppointmentEvent, AppointmentRejection

    busy = set(Appointment.BUSY_STATUSES)
    travel = timedelta(minutes=settings.TRAVEL_BUFFER_MINUTES)
    appts = list(Appointment.objects.select_related("service").order_by("id"))
    operator_ids = set(User.objects.filter(role="operator").values_list("id", flat=True))

    double = Invariant("no therapist double-booked (travel included)")
    by_therapist: dict[int, list] = defaultdict(list)
    for a in appts:
        if a.therapist_id and a.status in busy:
            by_therapist[a.therapist_id].append(a)
    for therapist_id, items in by_therapist.items():
        items.sort(key=lambda a: a.starts_at)
        double.checked += len(items)
        for earlier, later in itertools.pairwise(items):
            if later.starts_at < earlier.ends_at:
                double.fail(f"therapist {therapist_id}: #{earlier.id} ({earlier.status}) overlaps "
                            f"#{later.id} ({later.status})")
            elif place_key(later.location) != place_key(earlier.location) and \
                    later.starts_at < earlier.ends_at + travel:
                double.fail(f"therapist {therapist_id}: #{earlier.id} ends {later.starts_at - earlier.ends_at} "
                            f"before #{later.id} starts elsewhere (travel {travel})")

    legal = Invariant("every appointment in a legal state")
    open_rejections = set(AppointmentRejection.objects.filter(review_decision="").values_list("appointment_id",
                                                                                             flat=True))
    for a in appts:
        legal.checked += 1
        problems = []
        if a.ends_at != a.starts_at + timedelta(minutes=a.service.duration_minutes):
            problems.append("ends_at is not starts_at + duration")
        if a.status != "cancelled" and a.cancellation_reason:
            problems.append(f"cancellation_reason {a.cancellation_reason!r} while {a.status}")
        if a.status == "pending":
            if a.therapist_id and not (a.assigned_at and a.response_deadline):
                problems.append("assigned without assigned_at/response_deadline")
            if a.therapist_id and a.response_deadline > a.starts_at:
                problems.append("deadline after the start")
            if not a.therapist_id and (a.assigned_at or a.response_deadline):
                problems.append("unassigned with a deadline")
        elif a.status == "confirmed":
            if not (a.therapist_id and a.responded_at):
                problems.append("confirmed without therapist/responded_at")
        elif a.status == "rejected":
            if not a.therapist_id or a.id not in open_rejections:
                problems.append("rejected without therapist or open rejection")
        elif a.status == "in_progress":
            if not (a.therapist_id and a.started_at):
                problems.append("in progress without therapist/started_at")
        elif a.status == "completed":
            if not (a.therapist_id and a.started_at and a.completed_at):
                problems.append("completed without therapist/started_at/completed_at")
        elif a.status == "cancelled":
            if a.cancellation_reason not in ("operator", "response_timeout", "no_available_therapist"):
                problems.append(f"cancelled with reason {a.cancellation_reason!r}")
            if not a.cancelled_at:
                problems.append("cancelled without cancelled_at")
            if a.cancellation_reason == "operator" and not a.cancellation_note:
                problems.append("operator cancel without a note")
            if a.cancellation_reason == "response_timeout" and not (a.therapist_id and a.auto_cancelled_at):
                problems.append("timeout without therapist/auto_cancelled_at")
        else:
            problems.append(f"unknown status {a.status!r}")
        if a.status != "rejected" and a.id in open_rejections:
            problems.append("an unreviewed rejection while not rejected")
        if problems:
            legal.fail(f"#{a.id} {a.status}: " + "; ".join(problems))

    chain = Invariant("every state change has exactly one event (continuous chains)")
    events: dict[int, list] = defaultdict(list)
    for e in AppointmentEvent.objects.order_by("id").values("appointment_id", "kind", "from_status", "to_status",
                                                             "therapist_id", "id", "data"):
        events[e["appointment_id"]].append(e)
    for a in appts:
        chain.checked += 1
        items = events.get(a.id, [])
        if not items or items[0]["kind"] != "created" or items[0]["from_status"] != "" \
                or items[0]["to_status"] != "pending":
            chain.fail(f"#{a.id}: does not start with created ''->pending")
            continue
        for previous, current in itertools.pairwise(items):
            if current["from_status"] != previous["to_status"]:
                chain.fail(f"#{a.id}: event {current['id']} ({current['kind']}) starts at "
                           f"{current['from_status']!r}, previous ended at {previous['to_status']!r}")
                break
        if items[-1]["to_status"] != a.status:
            chain.fail(f"#{a.id}: chain ends at {items[-1]['to_status']!r}, status is {a.status!r}")

    offers = Invariant("no appointment with two open offers")
    closes = {"accepted", "rejected", "timed_out", "rejection_accepted", "reassigned", "cancelled",
              "no_available_therapist"}
    for a in appts:
        offers.checked += 1
        holder = None  # the therapist an open offer waits on
        for e in events.get(a.id, []):
            if e["kind"] == "assigned":
                if holder is not None:
                    offers.fail(f"#{a.id}: offered to {e['therapist_id']} (event {e['id']}) while the offer to "
                                f"{holder} was still open")
                holder = e["therapist_id"]
            elif e["kind"] == "rejection_denied":
                holder = e["therapist_id"]
            elif e["kind"] in closes:
                holder = None
        if a.status == "pending" and a.therapist_id != holder:
            offers.fail(f"#{a.id}: pending with therapist {a.therapist_id}, but the open offer is to {holder}")

    lost = Invariant("no lost notification (one per event and recipient)")
    expected: Counter = Counter()
    for a in appts:
        for e in events.get(a.id, []):
            kind, therapist = e["kind"], e["therapist_id"]
            if kind in ("assigned", "rejection_denied"):
                expected[(a.id, kind, therapist)] += 1
            elif kind == "rejected":
                for op in operator_ids:
                    expected[(a.id, "rejected", op)] += 1
            elif kind == "timed_out":
                expected[(a.id, "timed_out", therapist)] += 1
            elif kind == "reassigned" and e["data"].get("auto"):
                expected[(a.id, "reassigned", therapist)] += 1
            elif kind == "cancelled" and therapist:
                expected[(a.id, "cancelled", therapist)] += 1
    # needs_attention notes name what waits for the operators (one per waiting booking,
    # or one for a batch): not one per event, so they are not counted here.
    actual = Counter(Notification.objects.filter(appointment__isnull=False).exclude(kind="needs_attention")
                     .values_list("appointment_id", "kind", "recipient_id"))
    lost.checked = sum(expected.values())
    for key in sorted(set(expected) | set(actual), key=str):
        if expected[key] != actual[key]:
            lost.fail(f"#{key[0]} {key[1]} to user {key[2]}: {actual[key]} notification(s), "
                      f"{expected[key]} event(s)")
    # The operators' digests: each counts its batch ("3 appointments ...", or the one
    # appointment's own line "#12 cancelled: ..."); together, every event once.
    for digest_kind, event_kind in (("timeouts", "timed_out"), ("unstaffed", "no_available_therapist")):
        happened = sum(1 for items in events.values() for e in items if e["kind"] == event_kind)
        for op in operator_ids:
            messages = Notification.objects.filter(kind=digest_kind, recipient_id=op).values_list("message", flat=True)
            counted = sum(1 if m.startswith("#") else int(m.split()[0]) for m in messages)
            lost.checked += 1
            if counted != happened:
                lost.fail(f"operator {op}: {digest_kind} digests count {counted}, {happened} {event_kind} event(s)")
    return [double, offers, legal, chain, lost]


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def report(stats: Stats, elapsed: float, invariants: list[Invariant], crashes: dict[str, int], cast: Cast,
           totals: dict[str, int]) -> None:
    requests = sum(stats.statuses.values())
    errors = {code: n for code, n in sorted(stats.statuses.items()) if code >= 400}
    print(f"\n== Soak: {len(cast.therapists)} therapists + {len(cast.operators)} operators for {elapsed:.1f} s ==")
    print(f"requests: {requests}  ({requests / elapsed:.1f} req/s)   transport errors: "
          f"{sum(stats.transport_errors.values())} {dict(stats.transport_errors) or ''}")
    print(f"latency ms: median {statistics.median(stats.latencies) if stats.latencies else 0:.1f}, "
          f"p95 {percentile(stats.latencies, 95):.1f}, p99 {percentile(stats.latencies, 99):.1f}, "
          f"max {max(stats.latencies, default=0):.1f}")
    print(f"statuses: {dict(sorted(stats.statuses.items()))}")
    print(f"errors by status: {errors} (refusals, not failures: 409 = the loser of a race or a state that already "
          "moved on; 403 = a disabled therapist's own calls until re-enabled)")
    for label, codes in sorted(stats.by_endpoint.items()):
        print(f"  {label:<28} {dict(sorted(codes.items()))}")
    print(f"workflow actions that succeeded: {dict(sorted(stats.actions.items()))}")
    print(f"database: {totals}")
    print(f"websockets: {stats.ws_connects} connects, {stats.ws_refused} refused/dropped, "
          f"{stats.ws_closed_4403} closed 4403 (disabled), messages {dict(stats.ws_messages)}, "
          f"assignments heard live {stats.heard_assignments}")
    print(f"server crashes (Exception inside application): {crashes or 'none'}")
    print("invariants:")
    for inv in invariants:
        mark = "ok  " if inv.ok else "FAIL"
        print(f"  [{mark}] {inv.name} ({inv.checked} checked)")
        for violation in inv.violations[:10]:
            print(f"         - {violation}")
        if len(inv.violations) > 10:
            print(f"         ... and {len(inv.violations) - 10} more")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=60, help="seconds of load (capped at 300)")
    parser.add_argument("--therapists", type=int, default=50)
    parser.add_argument("--operators", type=int, default=5)
    parser.add_argument("--processes", type=int, default=1, help="daphne processes")
    parser.add_argument("--ignore-rate", type=float, default=0.08,
                        help="share of assignments a therapist never answers (they time out)")
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--reoffer", action="store_true", help="AUTO_REOFFER=1 for the servers and the sweep")
    args = parser.parse_args(argv)
    duration = max(1.0, min(args.duration, MAX_DURATION))

    configure(reoffer=args.reoffer)
    print(f"soak: AUTO_REOFFER={os.environ['AUTO_REOFFER']}, "
          f"TRAVEL_BUFFER_MINUTES={os.environ['TRAVEL_BUFFER_MINUTES']}; "
          f"database {_database_name()}, redis {os.environ['REDIS_URL']} "
          f"(prefix {os.environ['CHANNEL_LAYER_PREFIX']}), {duration:.0f} s", flush=True)
    recreate_database()
    import django

    django.setup()
    from django.db import connection

    cast = create_cast(args.operators, args.therapists)
    connection.close()
    log_dir = Path(tempfile.mkdtemp(prefix="guitara-soak-"))
    processes: list[Process] = []
    try:
        servers = [start_server("daphne") for _ in range(max(1, args.processes))]
        processes.extend(servers)
        processes.append(start_process("sweep", [sys.executable, "manage.py", "auto_cancel_overdue", "--every", "5"],
                                       env=dict(os.environ), log_dir=log_dir))
        print(f"soak: {len(servers)} daphne on {', '.join(s.url for s in servers)}; logs in {log_dir}", flush=True)
        stats, elapsed = asyncio.run(run_load(cast, servers, duration, args.seed, args.ignore_rate))
    finally:
        for process in processes:
            process.stop()

    crashes: Counter = Counter()
    for process in processes:
        crashes.update(process.crashes())
    from accounts.models import User
    from notifications.models import Notification
    from scheduling.models import Appointment, AppointmentEvent

    invariants = audit()
    server_errors = Invariant("no server error (5xx) and no crashed consumer")
    server_errors.checked = sum(stats.statuses.values())
    for code, n in stats.statuses.items():
        if code >= 500:
            server_errors.fail(f"{n} × HTTP {code}")
    for message, n in crashes.items():
        server_errors.fail(f"{n} × crash: {message}")
    invariants.append(server_errors)
    totals = {
        "appointments": Appointment.objects.count(),
        "by_status": dict(Counter(Appointment.objects.values_list("status", flat=True))),
        "cancelled_by_reason": dict(Counter(Appointment.objects.filter(status="cancelled").values_list(
            "cancellation_reason", flat=True))),
        "events_by_kind": dict(Counter(AppointmentEvent.objects.values_list("kind", flat=True))),
        "events": AppointmentEvent.objects.count(),
        "notifications": Notification.objects.count(),
        "therapists_disabled_now": User.objects.filter(role="therapist", is_active=False).count(),
    }
    report(stats, elapsed, invariants, dict(crashes), cast, totals)
    connection.close()
    removed = forget_redis_keys()
    if args.keep_db:
        print(f"kept database {_database_name()}")
    else:
        drop_database()
    print(f"cleaned up: {removed} redis keys of this run" + ("" if args.keep_db else f", database {_database_name()}"))
    return 0 if all(inv.ok for inv in invariants) else 1


if __name__ == "__main__":
    sys.exit(main())
