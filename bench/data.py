"""Bulk builders for benchmark data, straight through the ORM.

Nothing here goes through the workflow: the benchmarks need thousands of rows
in known states in seconds, so rows are written with `bulk_create` in the states
the workflow would have left them in (with their events, so the feed and the
history look real). Passwords are unusable: HTTP clients use tokens and sockets
use sessions made here.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone
from django.utils.crypto import get_random_string
from rest_framework.authtoken.models import Token

from accounts.models import User
from notifications.models import Notification
from scheduling.models import Appointment, AppointmentEvent, AppointmentRejection, Availability, Client, Service

Status = Appointment.Status
Kind = AppointmentEvent.Kind
BATCH = 2000
# One booking per therapist per slot: a 60-minute session and 30 minutes to travel.
SLOT_MINUTES = 90
_serial = itertools.count(1)


@dataclass
class World:
    service: Service  # the massage every benchmark books
    other_service: Service  # what the idle-socket therapists are qualified for
    operators: list[User]
    clients: list[Client]
    tokens: dict[int, str] = field(default_factory=dict)
    sessions: dict[int, str] = field(default_factory=dict)

    @property
    def operator(self) -> User:
        return self.operators[0]

    def token_header(self, user: User | int) -> dict[str, str]:
        user_id = user if isinstance(user, int) else user.id
        return {"Authorization": f"Token {self.tokens[user_id]}"}


def _unusable_password() -> str:
    return make_password(None)


def create_users(count: int, *, role: str, prefix: str) -> list[User]:
    n = next(_serial)
    password = _unusable_password()
    users = [
        User(username=f"{prefix}{n}-{i}", role=role, first_name=prefix.title(), last_name=f"{n}-{i}",
             password=password, is_active=True)
        for i in range(count)
    ]
    return User.objects.bulk_create(users, batch_size=BATCH)


def create_tokens(world: World, users: list[User]) -> None:
    tokens = [Token(user=u, key=Token.generate_key()) for u in users if u.id not in world.tokens]
    Token.objects.bulk_create(tokens, batch_size=BATCH)
    world.tokens.update({t.user_id: t.key for t in tokens})


def create_sessions(world: World, users: list[User]) -> None:
    """A logged-in session per user, as `login()` would store it."""
    store = SessionStore()
    backend = settings.AUTHENTICATION_BACKENDS[0]
    expire = timezone.now() + timedelta(days=1)
    rows = []
    for user in users:
        if user.id in world.sessions:
            continue
        key = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
        data = {SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: backend, HASH_SESSION_KEY: user.get_session_auth_hash()}
        rows.append(Session(session_key=key, session_data=store.encode(data), expire_date=expire))
        world.sessions[user.id] = key
    Session.objects.bulk_create(rows, batch_size=BATCH)


def create_world(*, operators: int = 10, clients: int = 500) -> World:
    service = Service.objects.create(name="Swedish massage", duration_minutes=60, price="800.00")
    other = Service.objects.create(name="Foot reflexology", duration_minutes=45, price="500.00")
    ops = create_users(operators, role=User.Role.OPERATOR, prefix="operator")
    people = Client.objects.bulk_create([
        Client(name=f"Client {i}", phone=f"+63 917 {i:07d}", address=f"{i} Mabini St, Makati")
        for i in range(clients)
    ], batch_size=BATCH)
    world = World(service=service, other_service=other, operators=ops, clients=people)
    create_tokens(world, ops)
    create_sessions(world, ops)
    return world


def create_therapists(world: World, count: int, *, prefix: str, service: Service | None = None,
                      days: int = 60) -> list[User]:
    """Active therapists, qualified for `service` (the world's massage by default),
    with one availability slot from an hour ago for `days` days, a token and a
    session each."""
    therapists = create_users(count, role=User.Role.THERAPIST, prefix=prefix)
    service = service or world.service
    Service.therapists.through.objects.bulk_create(
        [Service.therapists.through(service_id=service.id, user_id=t.id) for t in therapists], batch_size=BATCH)
    now = timezone.now()
    Availability.objects.bulk_create([
        Availability(therapist=t, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=days))
        for t in therapists
    ], batch_size=BATCH)
    create_tokens(world, therapists)
    create_sessions(world, therapists)
    return therapists


# ---------------------------------------------------------------------------
# Appointments in given states
# ---------------------------------------------------------------------------


def _slot_start(base: datetime, index: int, per_slot: int) -> datetime:
    """Every `per_slot` appointments share a 90-minute slot: a therapist who gets
    one appointment per slot is never double-booked (60-minute sessions, then the
    30 minutes TRAVEL_BUFFER_MINUTES asks for between two clients' homes)."""
    return base + timedelta(minutes=SLOT_MINUTES * (index // per_slot))


def _insert(world: World, specs: list[dict], events: list[list[tuple]]) -> list[Appointment]:
    """specs: Appointment field values; events[i]: (kind, from, to, therapist_id, actor_id)."""
    now = timezone.now()
    appts = []
    for i, spec in enumerate(specs):
        client = world.clients[i % len(world.clients)]
        spec.setdefault("service", world.service)
        spec.setdefault("ends_at", spec["starts_at"] + timedelta(minutes=spec["service"].duration_minutes))
        appts.append(Appointment(client=client, location=client.address, created_by=world.operator,
                                 updated_at=now, **spec))
    appts = Appointment.objects.bulk_create(appts, batch_size=BATCH)
    rows = []
    for appt, evs in zip(appts, events, strict=True):
        for kind, from_status, to_status, therapist_id, actor_id in evs:
            rows.append(AppointmentEvent(appointment_id=appt.id, kind=kind, from_status=from_status,
                                         to_status=to_status, therapist_id=therapist_id, actor_id=actor_id,
                                         data={}, created_at=now))
    AppointmentEvent.objects.bulk_create(rows, batch_size=BATCH)
    return appts


def unassigned(world: World, count: int, *, per_slot: int, starts_in: timedelta = timedelta(hours=3),
               first_slot: int = 0, service: Service | None = None) -> list[Appointment]:
    """Pending bookings waiting for an operator to assign a therapist."""
    base = timezone.now() + starts_in + timedelta(minutes=SLOT_MINUTES * first_slot)
    op = world.operator.id
    specs = [{"status": Status.PENDING, "starts_at": _slot_start(base, i, per_slot),
              **({"service": service} if service else {})} for i in range(count)]
    return _insert(world, specs, [[(Kind.CREATED, "", Status.PENDING, None, op)] for _ in specs])


def assigned(world: World, therapists: list[User], count: int, *, starts_in: timedelta = timedelta(hours=3),
             deadline_in: timedelta = timedelta(minutes=25), first_slot: int = 0,
             service: Service | None = None) -> list[Appointment]:
    """Pending and assigned (round robin over `therapists`), waiting for the answer."""
    now = timezone.now()
    base = now + starts_in + timedelta(minutes=SLOT_MINUTES * first_slot)
    op = world.operator.id
    specs, events = [], []
    for i in range(count):
        therapist = therapists[i % len(therapists)]
        specs.append({"status": Status.PENDING, "starts_at": _slot_start(base, i, len(therapists)),
                      "therapist": therapist, "assigned_at": now - timedelta(minutes=5),
                      "response_deadline": now + deadline_in, **({"service": service} if service else {})})
        events.append([(Kind.CREATED, "", Status.PENDING, None, op),
                       (Kind.ASSIGNED, Status.PENDING, Status.PENDING, therapist.id, op)])
    return _insert(world, specs, events)


def overdue(world: World, therapists: list[User], count: int, *, service: Service | None = None) -> list[Appointment]:
    """Pending and assigned, their answer due a minute ago: the sweep's work."""
    now = timezone.now()
    appts = assigned(world, therapists, count, starts_in=timedelta(hours=2), deadline_in=-timedelta(minutes=1),
                     service=service)
    Appointment.objects.filter(id__in=[a.id for a in appts]).update(assigned_at=now - timedelta(minutes=31))
    return appts


def rejected(world: World, therapists: list[User], count: int, *, first_slot: int = 0) -> list[Appointment]:
    """Rejected by their therapist, the rejection waiting for an operator's review."""
    now = timezone.now()
    base = now + timedelta(hours=3) + timedelta(minutes=SLOT_MINUTES * first_slot)
    op = world.operator.id
    specs, events = [], []
    for i in range(count):
        therapist = therapists[i % len(therapists)]
        specs.append({"status": Status.REJECTED, "starts_at": _slot_start(base, i, len(therapists)),
                      "therapist": therapist, "assigned_at": now - timedelta(minutes=10),
                      "response_deadline": now + timedelta(minutes=20), "responded_at": now})
        events.append([(Kind.CREATED, "", Status.PENDING, None, op),
                       (Kind.ASSIGNED, Status.PENDING, Status.PENDING, therapist.id, op),
                       (Kind.REJECTED, Status.PENDING, Status.REJECTED, therapist.id, therapist.id)])
    appts = _insert(world, specs, events)
    AppointmentRejection.objects.bulk_create([
        AppointmentRejection(appointment=a, therapist_id=a.therapist_id, reason="Too far from my area", created_at=now)
        for a in appts
    ], batch_size=BATCH)
    # As the rejection left it: every operator told, unread until the review handles it.
    Notification.objects.bulk_create([
        Notification(recipient=op_user, kind=Notification.Kind.REJECTED, appointment=a, created_at=now,
                     message=f"Rejected #{a.id}: Too far from my area")
        for a in appts for op_user in world.operators
    ], batch_size=BATCH)
    return appts


def history(world: World, therapists: list[User], count: int) -> list[Appointment]:
    """A realistic mix for dashboards and lists, spread over sixty days around
    today: completed and cancelled in the past, confirmed/pending/rejected and
    unassigned ahead, each with the events that got it there."""
    now = timezone.now()
    op = world.operator.id
    specs, events = [], []
    for i in range(count):
        therapist = therapists[i % len(therapists)]
        tid = therapist.id
        bucket = i % 20
        created = (Kind.CREATED, "", Status.PENDING, None, op)
        assigned_ev = (Kind.ASSIGNED, Status.PENDING, Status.PENDING, tid, op)
        accepted_ev = (Kind.ACCEPTED, Status.PENDING, Status.CONFIRMED, tid, tid)
        if bucket < 8:  # 40 % completed, in the past
            start = now - timedelta(days=1 + i % 30, hours=i % 9)
            specs.append({"status": Status.COMPLETED, "starts_at": start, "therapist": therapist,
                          "assigned_at": start - timedelta(days=1), "response_deadline": start - timedelta(hours=23),
                          "responded_at": start - timedelta(hours=23), "started_at": start,
                          "completed_at": start + timedelta(hours=1)})
            events.append([created, assigned_ev, accepted_ev,
                           (Kind.STARTED, Status.CONFIRMED, Status.IN_PROGRESS, tid, tid),
                           (Kind.COMPLETED, Status.IN_PROGRESS, Status.COMPLETED, tid, tid)])
        elif bucket < 10:  # 10 % cancelled by an operator
            start = now - timedelta(days=i % 30) + timedelta(hours=i % 11)
            specs.append({"status": Status.CANCELLED, "starts_at": start, "therapist": None,
                          "cancellation_reason": Appointment.CancellationReason.OPERATOR,
                          "cancellation_note": "Client called to cancel", "cancelled_at": now})
            events.append([created, (Kind.CANCELLED, Status.PENDING, Status.CANCELLED, None, op)])
        elif bucket < 14:  # 20 % confirmed, ahead
            start = now + timedelta(days=2 + i % 28, hours=i % 9)
            specs.append({"status": Status.CONFIRMED, "starts_at": start, "therapist": therapist,
                          "assigned_at": now - timedelta(hours=1), "response_deadline": now - timedelta(minutes=30),
                          "responded_at": now - timedelta(minutes=40)})
            events.append([created, assigned_ev, accepted_ev])
        elif bucket < 16:  # 10 % waiting for the therapist's answer
            start = now + timedelta(days=2 + i % 28, hours=i % 9)
            specs.append({"status": Status.PENDING, "starts_at": start, "therapist": therapist,
                          "assigned_at": now - timedelta(minutes=5), "response_deadline": now + timedelta(minutes=25)})
            events.append([created, assigned_ev])
        elif bucket < 17:  # 5 % rejected, waiting for review
            start = now + timedelta(days=2 + i % 28, hours=i % 9)
            specs.append({"status": Status.REJECTED, "starts_at": start, "therapist": therapist,
                          "assigned_at": now - timedelta(minutes=10), "response_deadline": now + timedelta(minutes=20),
                          "responded_at": now})
            events.append([created, assigned_ev, (Kind.REJECTED, Status.PENDING, Status.REJECTED, tid, tid)])
        else:  # 15 % unassigned, in the operators' queue
            start = now + timedelta(days=2 + i % 28, hours=i % 9)
            specs.append({"status": Status.PENDING, "starts_at": start, "therapist": None})
            events.append([created])
    appts = _insert(world, specs, events)
    AppointmentRejection.objects.bulk_create([
        AppointmentRejection(appointment=a, therapist_id=a.therapist_id, reason="Not feeling well", created_at=now)
        for a in appts if a.status == Status.REJECTED
    ], batch_size=BATCH)
    # One notification per booking for each operator, a fifth of them unread.
    Notification.objects.bulk_create([
        Notification(recipient=op_user, kind="assigned", appointment=a, message=f"Appointment #{a.id} booked",
                     created_at=now, read_at=None if a.id % 5 == 0 else now)
        for a in appts for op_user in world.operators[:2]
    ], batch_size=BATCH)
    return appts
