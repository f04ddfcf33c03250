"""The embedded default, started the way `make run` starts it: SQLite in a file, the
in-memory channel layer, DEBUG on, and the deadline sweep inside the daphne process
(EMBEDDED_SWEEP_SECONDS). A deadline that passes while an operator and the
therapist watch is swept and reaches both pages over their sockets within a few
seconds, not at the next 30 s catch-up; "Run sweep now" then says honestly that
nothing was left to do."""

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from scripts.devserver import ROOT, start_server

from .conftest import screenshot

pytestmark = pytest.mark.browser

SWEEP_EVERY = "1"
# Within this the sweep (every second) has run and its socket messages have arrived;
# the pages' safety-net catch-up comes only every 30 s.
LIVE_WITHIN_MS = 6000

SET_UP = """
from datetime import timedelta
from django.utils import timezone
from accounts.models import User
from scheduling import workflow
from scheduling.models import Availability, Client, Service

olga = User.objects.create_user("olga", password="pass-olga", role="operator", first_name="Olga", last_name="Operator")
ana = User.objects.create_user("ana", password="pass-ana", role="therapist", first_name="Ana", last_name="Cruz")
service = Service.objects.create(name="Swedish massage", duration_minutes=60, price="800.00")
service.therapists.add(ana)
now = timezone.now()
Availability.objects.create(therapist=ana, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=48))
client = Client.objects.create(name="Maria Lopez", phone="+63 917 555 0101", address="12 Mabini St, Makati")
appt = workflow.create_appointment(actor=olga, client=client, service=service, starts_at=now + timedelta(hours=3),
                                   location="12 Mabini St, Makati", therapist_id=ana.id)
print(appt.id)
"""

# What the test does behind the pages' backs: the deadline passes (reads never
# change state, and nothing is published: only the sweep can tell the pages).
DEADLINE_PASSES = """
from datetime import timedelta
from django.utils import timezone
from scheduling.models import Appointment
Appointment.objects.filter(pk={id}).update(response_deadline=timezone.now() - timedelta(seconds=1))
"""


def embedded_env(tmp_path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CHANNEL_LAYER_PREFIX", None)
    env.update({
        "DJANGO_SETTINGS_MODULE": "guitara.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REDIS_URL": "",  # the in-memory channel layer (empty also wins over a .env file)
        "DEBUG": "1",
        "SECRET_KEY": "embedded-default-test-key",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "EMBEDDED_SWEEP_SECONDS": SWEEP_EVERY,
        "DJANGO_ALLOW_ASYNC_UNSAFE": "",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def embedded(tmp_path):
    env = embedded_env(tmp_path)
    manage(env, "migrate", "--noinput", "-v", "0")
    appointment_id = int(manage(env, "shell", "-c", SET_UP).strip().splitlines()[-1])
    server = start_server(env=env, log_dir=tmp_path)
    try:
        yield SimpleNamespace(server=server, env=env, appointment_id=appointment_id)
    finally:
        server.stop()


@pytest.fixture
def server(embedded):
    """The pages of this module are opened on the embedded server."""
    return embedded.server


def test_make_runs_sweep_reaches_both_pages_live(open_page, embedded):
    # Once disabled, the therapist's page may race its own reload: a refused socket
    # or feed call (403) is expected there, and says so in the console.
    open_page.allow(r"Unexpected response code: 403|status of 403 \(Forbidden\)")
    olga_user, ana_user = SimpleNamespace(username="olga"), SimpleNamespace(username="ana")
    appt = embedded.appointment_id

    olga = open_page(olga_user, "/operator/?tab=timeouts")
    expect(olga.locator("#live-status")).to_have_text("Live")
    waiting = olga.locator(f'#timeouts-list [data-appointment-id="{appt}"]')
    expect(waiting.locator(".countdown")).to_contain_text("left to answer")
    ana = open_page(ana_user, "/therapist/")
    expect(ana.locator("#live-status")).to_have_text("Live")
    card = ana.locator(f'#waiting-list [data-appointment-id="{appt}"]')
    expect(card.get_by_role("button", name="Accept", exact=True)).to_be_visible()
    heard_before = olga.evaluate("window.liveConnection.delivered")

    manage(embedded.env, "shell", "-c", DEADLINE_PASSES.format(id=appt))

    # The operator's card goes, Ana is listed as disabled: through the socket.
    expect(waiting).to_have_count(0, timeout=LIVE_WITHIN_MS)
    expect(olga.get_by_text("No therapist owes an answer right now")).to_be_visible()
    expect(olga.locator('[data-count="timeouts"]')).to_have_text("0")
    expect(olga.locator("#disabled-list article", has_text="Ana Cruz")).to_contain_text(
        f"No response to appointment #{appt}", timeout=LIVE_WITHIN_MS)
    heard_after = olga.evaluate("window.liveConnection.delivered")
    assert heard_after["socket"] > heard_before["socket"], "the sweep's event came over the socket"
    assert heard_after["feed"] == heard_before["feed"]

    # The therapist's socket was closed (disabled): the page is the disabled notice,
    # with the cancelled booking.
    expect(ana.get_by_role("heading", name="Your account is disabled")).to_be_visible(timeout=LIVE_WITHIN_MS)
    expect(ana.locator(f'[data-appointment-id="{appt}"] .status')).to_have_text("Cancelled")
    screenshot(ana, "embedded-therapist-disabled")

    # "Run sweep now" after the server's own sweep: honest about having nothing to do.
    olga.get_by_role("button", name="Run sweep now").click()
    expect(olga.locator("#sweep-result")).to_contain_text("nothing was due")
    expect(waiting).to_have_count(0)
    screenshot(olga, "embedded-operator-after-sweep")
