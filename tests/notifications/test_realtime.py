"""Publishing: what reaches the channel layer, when, and what happens when the
layer is broken. The layer's real `group_send` is wrapped with a recorder, so
these tests see the calls the code really makes."""

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import time_machine
from channels.layers import channel_layers, get_channel_layer
from django.conf import settings
from django.db import transaction
from django.test import override_settings

from notifications import realtime
from notifications.models import Notification
from scheduling import workflow
from scheduling.models import Appointment, AppointmentEvent
from tests.conftest import make_user
from tests.servers import ROOT, free_port


class Recorder:
    """Wraps the layer's group_send: records each call, then makes it."""

    def __init__(self, layer):
        self.calls: list[tuple[str, dict]] = []
        self.publishes = 0
        self._send = layer.group_send
        self._send_many = getattr(layer, "group_send_many", None)

    async def __call__(self, group, message):
        self.calls.append((group, message))
        self.publishes += 1
        await self._send(group, message)

    async def many(self, envelopes):
        self.calls.extend(envelopes)
        self.publishes += 1
        await self._send_many(envelopes)

    def groups(self) -> list[str]:
        return [group for group, _ in self.calls]

    def received(self, group: str) -> list[dict]:
        """What the sockets of `group` are handed, batches unpacked."""
        out = []
        for to, message in self.calls:
            if to == group:
                out.extend(message["messages"] if message["type"] == realtime.BATCH_TYPE else [message])
        return out


class Boom(Exception):
    pass


# --- After commit, never before, never on rollback ----------------------------------------


@pytest.mark.django_db(transaction=True)
def test_rolled_back_transaction_publishes_nothing(recorder, operator, therapist, make_appointment):
    appt = make_appointment("pending")
    recorder.calls.clear()

    with pytest.raises(Boom), transaction.atomic():
        workflow.assign(actor=operator, appointment_id=appt.id, therapist_id=therapist.id)
        raise Boom

    assert recorder.calls == []
    appt.refresh_from_db()
    assert appt.therapist_id is None
    assert not AppointmentEvent.objects.filter(kind="assigned").exists()
    assert not Notification.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_refused_transition_publishes_nothing(recorder, operator, therapist, make_appointment):
    make_appointment("confirmed", therapist)  # therapist busy at that time
    appt = make_appointment("pending", location="Elsewhere")
    recorder.calls.clear()
    with pytest.raises(workflow.WorkflowError, match="already has appointment"):
        workflow.assign(actor=operator, appointment_id=appt.id, therapist_id=therapist.id)
    assert recorder.calls == []


@pytest.mark.django_db(transaction=True)
def test_committed_assignment_publishes_one_message_per_recipient_group(recorder, operator, therapist,
                                                                       make_appointment):
    appt = make_appointment("pending")
    recorder.calls.clear()

    workflow.assign(actor=operator, appointment_id=appt.id, therapist_id=therapist.id)

    assert sorted(recorder.groups()) == sorted(["operators", f"user_{therapist.id}"])
    event = AppointmentEvent.objects.get(appointment=appt, kind="assigned")
    [to_operators] = recorder.received("operators")
    assert to_operators["type"] == "appointment.event"
    assert (to_operators["event_id"], to_operators["kind"]) == (event.id, "assigned")
    assert to_operators["appointment"]["therapist"] == {"id": therapist.id, "name": "Ana Cruz", "phone": ""}
    to_therapist = recorder.received(f"user_{therapist.id}")
    assert [m["type"] for m in to_therapist] == ["appointment.event", "notification"]
    assert to_therapist[0]["event_id"] == event.id
    notification = Notification.objects.get(recipient=therapist)
    assert to_therapist[1]["notification"]["id"] == notification.id
    assert to_therapist[1]["unread"] == 1


@pytest.mark.django_db
def test_publishing_waits_for_the_commit(recorder, operator, operator2, therapist, make_appointment,
                                         django_capture_on_commit_callbacks):
    appt = make_appointment("pending", therapist)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        workflow.reject(actor=therapist, appointment_id=appt.id, reason="Sprained wrist")
        assert recorder.calls == []
    assert len(callbacks) == 1
    assert recorder.calls == []

    callbacks[0]()

    assert sorted(recorder.groups()) == sorted(["operators", f"user_{therapist.id}",
                                                f"user_{operator.id}", f"user_{operator2.id}"])
    # On the Redis layer the four groups' messages are one publish.
    assert recorder.publishes == (1 if recorder._send_many else 4)
    assert [m["kind"] for m in recorder.received("operators")] == ["rejected"]
    for person in (operator, operator2):
        [message] = recorder.received(f"user_{person.id}")
        assert message["type"] == "notification"
        assert "Sprained wrist" in message["notification"]["message"]


@pytest.mark.django_db
def test_event_about_an_appointment_taken_away_shows_its_old_therapist_only_its_status(
        recorder, operator, therapist, therapist_b, make_appointment, django_capture_on_commit_callbacks):
    appt = make_appointment("rejected", therapist)
    with django_capture_on_commit_callbacks(execute=True):
        workflow.review_rejection(actor=operator, appointment_id=appt.id, decision="accept")
    [to_therapist] = recorder.received(f"user_{therapist.id}")
    assert to_therapist["kind"] == "rejection_accepted"
    assert to_therapist["appointment"] == {"id": appt.id, "status": "pending", "therapist": None,
                                           "is_mine": False}
    [to_operators] = recorder.received("operators")
    assert to_operators["appointment"]["client"]["name"] == "Maria Lopez"
    assert f"user_{therapist_b.id}" not in recorder.groups()


# --- A sweep of many appointments -------------------------------------------------------------


@pytest.mark.django_db
def test_sweep_hands_each_group_its_messages_in_a_few_layer_messages(recorder, operator, client_obj, service,
                                                                    django_capture_on_commit_callbacks):
    from tests.scheduling.test_auto_cancel_overdue import bulk_overdue

    therapists = [make_user(f"t{i}", "therapist") for i in range(5)]
    appts = bulk_overdue(250, therapists, client=client_obj, service=service)

    with django_capture_on_commit_callbacks(execute=True):
        workflow.sweep(batch_size=500)

    to_operators = recorder.received("operators")
    assert sorted(m["appointment"]["id"] for m in to_operators) == sorted(a.id for a in appts)
    assert {m["kind"] for m in to_operators} == {"timed_out"}
    assert recorder.groups().count("operators") == 3  # 250 events, 100 a layer message
    [digest] = recorder.received(f"user_{operator.id}")
    assert digest["notification"]["kind"] == "timeouts" and digest["unread"] == 1
    for therapist in therapists:
        heard = recorder.received(f"user_{therapist.id}")
        assert [m["type"] for m in heard] == ["appointment.event"] * 50 + ["notification"] * 50 + [
            "account.disabled"]
        assert recorder.groups().count(f"user_{therapist.id}") == 2
    assert len(recorder.calls) == 3 + 1 + 5 * 2


def test_coalesce_keeps_each_groups_order_and_sends_a_lone_message_as_it_is():
    messages = [("a", {"type": "x", "n": 1}), ("b", {"type": "x", "n": 2}), ("a", {"type": "x", "n": 3})]
    assert realtime.coalesce(messages) == [
        ("a", {"type": realtime.BATCH_TYPE, "messages": [{"type": "x", "n": 1}, {"type": "x", "n": 3}]}),
        ("b", {"type": "x", "n": 2}),
    ]
    many = [("g", {"type": "x", "n": n}) for n in range(250)]
    envelopes = realtime.coalesce(many)
    assert [len(m["messages"]) for _, m in envelopes] == [100, 100, 50]
    assert [m["n"] for _, e in envelopes for m in e["messages"]] == list(range(250))


# --- A broken channel layer never fails a request -----------------------------------------------


@pytest.mark.django_db
def test_broken_layer_is_logged_not_raised(monkeypatch, operator, therapist, make_appointment, caplog,
                                           django_capture_on_commit_callbacks):
    channel_layers.backends.clear()
    layer = get_channel_layer()

    async def refuse(*args):
        raise ConnectionError("Connection refused")

    monkeypatch.setattr(layer, "group_send", refuse)
    if hasattr(layer, "group_send_many"):
        monkeypatch.setattr(layer, "group_send_many", refuse)
    appt = make_appointment("pending")
    with caplog.at_level("WARNING", logger="notifications.realtime"), \
            django_capture_on_commit_callbacks(execute=True):
        workflow.assign(actor=operator, appointment_id=appt.id, therapist_id=therapist.id)
    assert Appointment.objects.get(pk=appt.pk).therapist_id == therapist.id
    [record] = [r for r in caplog.records if r.name == "notifications.realtime"]
    assert record.levelname == "WARNING"
    assert "ConnectionError: Connection refused" in record.getMessage()
    channel_layers.backends.clear()


@pytest.mark.django_db
def test_with_redis_down_answers_still_work_and_are_stored(api, operator, therapist, make_appointment, caplog,
                                                           django_capture_on_commit_callbacks):
    dead_redis = {"default": {"BACKEND": "notifications.layer.ChannelLayer",
                              "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}/0"]}}}
    to_accept = make_appointment("pending")
    to_reject = make_appointment("pending", starts_in=timedelta(hours=6))
    with override_settings(CHANNEL_LAYERS=dead_redis), \
            caplog.at_level("WARNING", logger="notifications.realtime"), \
            django_capture_on_commit_callbacks(execute=True):
        assert type(get_channel_layer()).__name__ == "ChannelLayer"
        started = time.monotonic()
        for appt in (to_accept, to_reject):
            response = api(operator).post(f"/api/scheduling/appointments/{appt.id}/assign/",
                                          {"therapist": therapist.id}, format="json")
            assert response.status_code == 200, response.json()
        assert api(therapist).post(f"/api/scheduling/appointments/{to_accept.id}/accept/").status_code == 200
        response = api(therapist).post(f"/api/scheduling/appointments/{to_reject.id}/reject/",
                                       {"rejection_reason": "Car broke down"}, format="json")
        assert response.status_code == 200
        elapsed = time.monotonic() - started
    channel_layers.backends.clear()

    assert elapsed < 4 * settings.PUBLISH_TIMEOUT_SECONDS + 2  # each publish gives up, none hangs
    warnings = [r for r in caplog.records if r.name == "notifications.realtime"]
    assert len(warnings) == 4 and all(r.levelname == "WARNING" for r in warnings)

    feed = api(therapist).get("/api/scheduling/events/").json()["results"]
    assert [(e["appointment"]["id"], e["kind"]) for e in feed] == [
        (to_accept.id, "assigned"), (to_reject.id, "assigned"), (to_accept.id, "accepted"),
        (to_reject.id, "rejected")]
    bell = api(therapist).get("/api/notifications/").json()
    assert bell["unread"] == 2
    operator_bell = api(operator).get("/api/notifications/").json()
    assert [n["kind"] for n in operator_bell["results"]] == ["rejected"]
    assert "Car broke down" in operator_bell["results"][0]["message"]


@pytest.mark.django_db
def test_sweep_with_redis_down_still_times_out(operator, therapist, make_appointment, caplog,
                                               django_capture_on_commit_callbacks):
    appt = make_appointment("pending", therapist)
    dead_redis = {"default": {"BACKEND": "notifications.layer.ChannelLayer",
                              "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}/0"]}}}
    with override_settings(CHANNEL_LAYERS=dead_redis), \
            time_machine.travel(appt.response_deadline + timedelta(seconds=1)), \
            caplog.at_level("WARNING", logger="notifications.realtime"), \
            django_capture_on_commit_callbacks(execute=True):
        counts = workflow.sweep()
    channel_layers.backends.clear()
    assert counts.timed_out == 1
    assert Appointment.objects.get(pk=appt.pk).status == "cancelled"
    assert [r.levelname for r in caplog.records if r.name == "notifications.realtime"] == ["WARNING"]


# --- Configuration ----------------------------------------------------------------------------


def _layers_for(redis_url: str) -> dict:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="guitara.settings", SECRET_KEY="layer-config-test",
               REDIS_URL=redis_url, DATABASE_URL="", DEBUG="0")
    code = ("import json, django; django.setup(); from django.conf import settings; "
            "print(json.dumps(settings.CHANNEL_LAYERS))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60, check=True)
    return json.loads(result.stdout)


def test_with_redis_url_the_layer_is_channels_redis_pubsub():
    layer = _layers_for("redis://127.0.0.1:6379/3")["default"]
    # Pub/sub: one publish per group, each server process receives it once.
    assert layer["BACKEND"] == "notifications.layer.ChannelLayer"
    assert [host["address"] for host in layer["CONFIG"]["hosts"]] == ["redis://127.0.0.1:6379/3"]
    # A dead Redis must fail a publish fast, not hang it.
    assert all(host["socket_connect_timeout"] <= 5 for host in layer["CONFIG"]["hosts"])


def test_without_redis_url_the_layer_is_in_memory():
    assert _layers_for("")["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"


def test_an_idle_channel_outlives_the_layers_read_timeouts(redis_url):
    """A dashboard socket with nothing to receive must not die of the layer's own
    read timeouts (channels_redis polls in 0.1 s and blocks up to 5 s): waiting 6 s
    on an empty channel ends by our timeout, not by a Redis read error."""
    layer = get_channel_layer()

    async def wait_idle():
        channel = await layer.new_channel()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(layer.receive(channel), 6)

    asyncio.run(wait_idle())
