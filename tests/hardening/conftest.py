"""Hardening fixtures: the six roles of the permission table and a small world of
objects in every state, built through the real workflow.

Roles: anonymous, therapist A (ana), therapist B (bea), operator (olga), a
disabled therapist (dina) and an admin (adam: is_staff + is_superuser, role
operator). Every appointment belongs to therapist A, so therapist B is the one
who must get 404 on them.
"""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.cache import caches
from django.test import override_settings
from django.utils import timezone
from rest_framework.authtoken.models import Token

from accounts.models import AccountStatusChange, User
from notifications.models import Notification, PushSubscription
from scheduling import workflow
from scheduling.models import (
    Appointment,
    AppointmentEvent,
    AppointmentRejection,
    Availability,
    Client,
    Service,
)
from tests.conftest import early_enough, make_therapist, make_user

ROLES = ("anonymous", "therapist_a", "therapist_b", "operator", "disabled", "admin")
PASSWORD = {"therapist_a": "pass-ana", "therapist_b": "pass-bea", "operator": "pass-olga",
            "disabled": "pass-dina", "admin": "pass-adam"}

# The tables whose rows a refused request must leave untouched.
SNAPSHOT_MODELS = (Appointment, AppointmentEvent, Notification, AppointmentRejection, Availability, Client, Service,
                   User, AccountStatusChange, PushSubscription)


@dataclass
class World:
    users: dict[str, User]
    tokens: dict[str, str]
    service: Service
    client: Client
    pending: Appointment  # therapist A, waiting for an answer
    confirmed: Appointment
    in_progress: Appointment
    rejected: Appointment
    unassigned: Appointment
    free_slot: Availability  # therapist A's, with no appointment in it
    notification: Notification  # therapist A's
    extra: dict = field(default_factory=dict)

    @property
    def ana(self) -> User:
        return self.users["therapist_a"]

    @property
    def bea(self) -> User:
        return self.users["therapist_b"]

    @property
    def olga(self) -> User:
        return self.users["operator"]

    @property
    def dina(self) -> User:
        return self.users["disabled"]


def device_keys() -> dict[str, str]:
    """A browser's push subscription keys (base64url): a P-256 public key and an auth secret."""
    import base64
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    public = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {"p256dh": b64(public), "auth": b64(os.urandom(16))}


def build_world() -> World:
    now = timezone.now()
    service = Service.objects.create(name="Swedish massage", duration_minutes=60, price="800.00")
    ana = make_therapist("ana", service, name="Ana Cruz")
    bea = make_therapist("bea", service, name="Bea Santos")
    dina = make_therapist("dina", service, name="Dina Reyes")
    dina.is_active = False
    dina.disabled_at = now
    dina.disabled_reason = "No response to appointment #1 by 10:00"
    dina.save()
    AccountStatusChange.objects.create(user=dina, action=AccountStatusChange.Action.DISABLED,
                                       reason=dina.disabled_reason, created_at=now)
    olga = make_user("olga", "operator", name="Olga Operator")
    adam = make_user("adam", "operator", name="Adam Admin", is_staff=True, is_superuser=True)
    users = {"therapist_a": ana, "therapist_b": bea, "operator": olga, "disabled": dina, "admin": adam}
    client = Client.objects.create(name="Maria Lopez", phone="+63 917 555 0101", address="12 Mabini St, Makati")

    def book(hours: float, therapist: User | None = ana) -> Appointment:
        return workflow.create_appointment(
            actor=olga, client=client, service=service, starts_at=now + timedelta(hours=hours),
            location="12 Mabini St, Makati", therapist_id=therapist.id if therapist else None)

    pending = book(3)
    # Starts in 15 minutes: inside the start window, so "start" can succeed.
    confirmed = book(0.25)
    workflow.accept(actor=ana, appointment_id=confirmed.id)
    in_progress = book(7)
    workflow.accept(actor=ana, appointment_id=in_progress.id)
    with override_settings(START_EARLY_MINUTES=early_enough(in_progress)):
        workflow.start(actor=ana, appointment_id=in_progress.id)
    rejected = book(9)
    workflow.reject(actor=ana, appointment_id=rejected.id, reason="Family emergency")
    unassigned = book(11, None)
    free_slot = Availability.objects.create(therapist=ana, starts_at=now + timedelta(days=3),
                                            ends_at=now + timedelta(days=3, hours=2))
    Group.objects.create(name="Front desk")
    tokens = {role: Token.objects.create(user=user).key for role, user in users.items()}
    # Reaching the therapist: a phone of therapist A's that gets Web Push, and her calendar feed.
    device = device_keys()
    PushSubscription.objects.create(user=ana, endpoint="https://93.184.215.14/push/ana-phone", created_at=now,
                                    **device)
    ana.rotate_calendar_secret()
    return World(
        users=users, tokens=tokens, service=service, client=client,
        pending=Appointment.objects.get(pk=pending.pk), confirmed=Appointment.objects.get(pk=confirmed.pk),
        in_progress=Appointment.objects.get(pk=in_progress.pk), rejected=Appointment.objects.get(pk=rejected.pk),
        unassigned=Appointment.objects.get(pk=unassigned.pk), free_slot=free_slot,
        notification=Notification.objects.filter(recipient=ana).order_by("id").first(),
        extra={"push_endpoint": "https://93.184.215.14/push/ana-phone", "device": device,
               "calendar_secret": ana.calendar_secret},
    )


@pytest.fixture
def world(db) -> World:
    return build_world()


@pytest.fixture
def private_cache(settings, request):
    """A fresh per-test LocMem cache, so lockout counts never leak between tests
    (nor into the shared Redis the rest of the suite may use)."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": f"hardening-{request.node.nodeid}"}}
    yield caches["default"]
    caches["default"].clear()


def db_snapshot() -> dict[str, tuple[int, str]]:
    """Row count and a hash of every row, per table that a refused request must not touch."""
    snapshot = {}
    for model in SNAPSHOT_MODELS:
        rows = list(model.objects.order_by("pk").values())
        digest = hashlib.sha256(json.dumps(rows, default=str, sort_keys=True).encode()).hexdigest()
        snapshot[model._meta.label] = (len(rows), digest)
    return snapshot
