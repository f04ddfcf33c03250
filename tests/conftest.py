"""Shared fixtures: people, a bookable service, and an appointment factory that
drives the real workflow to reach each state."""

import os
import socket
from datetime import timedelta
from urllib.parse import urlparse

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User
from scheduling import workflow
from scheduling.models import Appointment, Availability, Client, Service

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def _answers(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def pytest_configure(config):
    if not REQUIRE_SERVICES:
        return
    problems = []
    db_url = os.environ.get("DATABASE_URL", "")
    if not db_url.startswith("postgres") or not _answers(db_url, 5432):
        problems.append(f"PostgreSQL (DATABASE_URL={db_url or 'unset'})")
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url or not _answers(redis_url, 6379):
        problems.append(f"Redis (REDIS_URL={redis_url or 'unset'})")
    if not os.path.exists("/usr/bin/chromium"):
        problems.append("Debian chromium at /usr/bin/chromium")
    if problems:
        raise pytest.UsageError("REQUIRE_SERVICES=1 but these are missing: " + ", ".join(problems))


def needs(condition: bool, what: str):
    """Skip only outside CI; with REQUIRE_SERVICES=1 a missing service is an error."""
    if condition:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required (REQUIRE_SERVICES=1)")
    pytest.skip(f"{what} is not available")


@pytest.fixture
def postgres(db):
    needs(connection.vendor == "postgresql", "PostgreSQL")


@pytest.fixture
def redis_url():
    url = os.environ.get("REDIS_URL", "")
    needs(bool(url) and _answers(url, 6379), "Redis")
    return url


def make_user(username: str, role: str, **extra) -> User:
    first, _, last = extra.pop("name", username.title()).partition(" ")
    user = User.objects.create_user(username=username, password="pass-" + username, role=role,
                                    first_name=first, last_name=last, **extra)
    return user


@pytest.fixture
def operator(db):
    return make_user("olga", "operator", name="Olga Operator")


@pytest.fixture
def operator2(db):
    return make_user("oscar", "operator", name="Oscar Operator")


@pytest.fixture
def service(db):
    return Service.objects.create(name="Swedish massage", duration_minutes=60, price="800.00")


def make_therapist(username: str, service: Service | None = None, *, name: str | None = None,
                   hours: int = 48) -> User:
    """A therapist qualified for `service` and available from an hour ago for `hours`."""
    user = make_user(username, "therapist", name=name or f"{username.title()} Cruz")
    if service is not None:
        service.therapists.add(user)
    now = timezone.now()
    Availability.objects.create(therapist=user, starts_at=now - timedelta(hours=1),
                                ends_at=now + timedelta(hours=hours))
    return user


@pytest.fixture
def therapist(service):
    return make_therapist("ana", service, name="Ana Cruz")


@pytest.fixture
def therapist_b(service):
    return make_therapist("bea", service, name="Bea Santos")


@pytest.fixture
def client_obj(db):
    return Client.objects.create(name="Maria Lopez", phone="+63 917 555 0101", address="12 Mabini St, Makati")


@pytest.fixture
def make_appointment(operator, client_obj, service):
    """make_appointment(status, therapist=None, starts_in=timedelta(hours=3)) reaches
    `status` through the real workflow."""

    def factory(status: str = "pending", therapist: User | None = None, *,
                starts_in: timedelta = timedelta(hours=3), **kwargs) -> Appointment:
        appt = workflow.create_appointment(
            actor=operator, client=kwargs.get("client", client_obj), service=kwargs.get("service", service),
            starts_at=timezone.now() + starts_in, location=kwargs.get("location", "12 Mabini St, Makati"),
            therapist_id=therapist.id if therapist else None,
        )
        if status == "pending":
            return Appointment.objects.get(pk=appt.pk)
        assert therapist is not None, f"status {status} needs a therapist"
        if status == "rejected":
            workflow.reject(actor=therapist, appointment_id=appt.pk, reason="Family emergency")
        elif status == "cancelled":
            workflow.cancel(actor=operator, appointment_id=appt.pk, reason="Client called off")
        else:
            workflow.accept(actor=therapist, appointment_id=appt.pk)
            if status in ("in_progress", "completed"):
                # A session hours ahead may be started here; the start window has its own tests.
                with override_settings(START_EARLY_MINUTES=early_enough(appt)):
                    workflow.start(actor=therapist, appointment_id=appt.pk)
            if status == "completed":
                workflow.complete(actor=therapist, appointment_id=appt.pk)
        appt = Appointment.objects.get(pk=appt.pk)
        assert appt.status == status
        return appt

    return factory


def early_enough(appt: Appointment) -> int:
    """A START_EARLY_MINUTES under which `appt` can be started right now."""
    return max(0, int((appt.starts_at - timezone.now()).total_seconds() // 60) + 1)


def api_for(user: User | None) -> APIClient:
    api = APIClient()
    if user is not None:
        api.force_authenticate(user=user)
    return api


@pytest.fixture
def api():
    return api_for


@pytest.fixture
def recorder(monkeypatch):
    """The channel layer's group sends, recorded instead of sent (tests.notifications.test_realtime.Recorder)."""
    from channels.layers import channel_layers, get_channel_layer

    from tests.notifications.test_realtime import Recorder

    channel_layers.backends.clear()
    layer = get_channel_layer()
    recorder = Recorder(layer)
    monkeypatch.setattr(layer, "group_send", recorder)
    if hasattr(layer, "group_send_many"):  # the Redis layer sends a transaction's groups together
        monkeypatch.setattr(layer, "group_send_many", recorder.many)
    yield recorder
    channel_layers.backends.clear()
