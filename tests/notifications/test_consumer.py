"""The dashboard socket, driven through the real ASGI application (origin check,
session authentication, routing) with channels' WebsocketCommunicator.

The session middleware reads the database from another thread, so these tests
use committed data (transaction=True)."""

import json
from datetime import timedelta

import pytest
import time_machine
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import channel_layers, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connections
from django.utils import timezone

from accounts.models import User
from guitara.asgi import application
from notifications.consumers import CLOSE_DISABLED
from notifications.realtime import BATCH_TYPE, OPERATORS_GROUP, user_group
from scheduling import workflow
from scheduling.models import Client
from tests.servers import session_cookie_for

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = b"http://127.0.0.1"


@pytest.fixture(autouse=True)
async def fresh_channel_layer():
    """A layer made on this test's event loop (channels_redis pools are per loop);
    afterwards no connection of the sync worker thread is left open on the test
    database."""
    channel_layers.backends.clear()
    yield
    await sync_to_async(connections.close_all)()
    channel_layers.backends.clear()


async def open_socket(user: User | None, *, origin: bytes | None = ORIGIN) -> tuple[WebsocketCommunicator, bool, int]:
    headers = []
    if user is not None:
        key = await database_sync_to_async(session_cookie_for)(user)
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={key}".encode()))
    if origin is not None:
        headers.append((b"origin", origin))
    communicator = WebsocketCommunicator(application, "/ws/dashboard/", headers=headers)
    connected, code = await communicator.connect(timeout=5)
    if not connected:
        await communicator.disconnect()  # what the server does after a refused handshake
    return communicator, connected, code


async def receive_until(communicator: WebsocketCommunicator, predicate, timeout: float = 5) -> list[dict]:
    """Every message up to and including the first one matching `predicate`."""
    received = []
    while True:
        message = await communicator.receive_json_from(timeout=timeout)
        received.append(message)
        if predicate(message):
            return received


# --- Who may connect -------------------------------------------------------------------


async def test_anonymous_socket_is_refused():
    _, connected, _ = await open_socket(None)
    assert not connected


async def test_socket_from_another_origin_is_refused(operator):
    _, connected, _ = await open_socket(operator, origin=b"https://evil.example")
    assert not connected
    _, connected, _ = await open_socket(operator, origin=None)
    assert not connected


async def test_disabled_user_socket_is_refused(therapist):
    await database_sync_to_async(User.objects.filter(pk=therapist.pk).update)(is_active=False)
    _, connected, _ = await open_socket(therapist)
    assert not connected


async def test_operator_hears_the_operators_group_and_their_own(operator, therapist):
    operator_socket, connected, _ = await open_socket(operator)
    assert connected
    therapist_socket, connected, _ = await open_socket(therapist)
    assert connected
    layer = get_channel_layer()

    await layer.group_send("operators", {"type": "appointment.event", "event_id": 1, "kind": "created",
                                         "appointment": {"id": 1}})
    await layer.group_send(f"user_{operator.id}", {"type": "notification", "notification": {"id": 2}, "unread": 1})

    assert (await operator_socket.receive_json_from(timeout=5))["event_id"] == 1
    assert (await operator_socket.receive_json_from(timeout=5))["notification"] == {"id": 2}
    assert await therapist_socket.receive_nothing(timeout=0.3)
    await operator_socket.disconnect()
    await therapist_socket.disconnect()


async def test_ping_is_answered_with_pong_and_garbage_is_ignored(therapist):
    communicator, connected, _ = await open_socket(therapist)
    assert connected
    await communicator.send_to(text_data="this is not json")
    await communicator.send_json_to({"type": "hello"})
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from(timeout=5) == {"type": "pong"}
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


# --- What a therapist hears -----------------------------------------------------------------


async def test_therapist_hears_only_their_own_appointments(operator, therapist, therapist_b, service, client_obj):
    secret_client = await database_sync_to_async(Client.objects.create)(
        name="Alicia Hidalgo", phone="+63 917 555 0199", address="7 Secret Lane, Forbes Park")
    socket_a, connected, _ = await open_socket(therapist)
    assert connected
    socket_b, connected, _ = await open_socket(therapist_b)
    assert connected

    def book(person, client, location, hours):
        return workflow.create_appointment(
            actor=operator, client=client, service=service, starts_at=timezone.now() + timedelta(hours=hours),
            location=location, therapist_id=person.id)

    for_a = await database_sync_to_async(book)(therapist, secret_client, "7 Secret Lane, Forbes Park", 3)
    for_b = await database_sync_to_async(book)(therapist_b, client_obj, "12 Mabini St, Makati", 5)

    heard_by_a = await receive_until(socket_a, lambda m: m["type"] == "notification")
    assert [m["type"] for m in heard_by_a] == ["appointment.event", "notification"]
    assert heard_by_a[0]["kind"] == "assigned" and heard_by_a[0]["appointment"]["id"] == for_a.id
    assert heard_by_a[0]["appointment"]["client"]["name"] == "Alicia Hidalgo"
    assert f"#{for_a.id}" in heard_by_a[1]["notification"]["message"]

    heard_by_b = await receive_until(socket_b, lambda m: m["type"] == "notification")
    assert [m["type"] for m in heard_by_b] == ["appointment.event", "notification"]
    assert heard_by_b[0]["appointment"]["id"] == for_b.id
    assert await socket_b.receive_nothing(timeout=0.5)
    assert for_a.id not in [m["appointment"]["id"] for m in heard_by_b if "appointment" in m]
    assert for_a.id not in [m["notification"]["appointment"] for m in heard_by_b if "notification" in m]
    everything_b_heard = json.dumps(heard_by_b)
    for secret in ("Alicia", "Hidalgo", "Secret Lane", "Forbes Park", "0199"):
        assert secret not in everything_b_heard
    assert await socket_a.receive_nothing(timeout=0.2)
    await socket_a.disconnect()
    await socket_b.disconnect()


async def test_operator_hears_every_event_of_a_booking(operator, therapist, make_appointment):
    socket, connected, _ = await open_socket(operator)
    assert connected
    appt = await database_sync_to_async(make_appointment)("confirmed", therapist)
    heard = await receive_until(socket, lambda m: m.get("kind") == "accepted")
    assert [m["kind"] for m in heard] == ["created", "assigned", "accepted"]
    assert all(m["appointment"]["id"] == appt.id for m in heard)
    assert heard[-1]["appointment"]["status"] == "confirmed"
    assert heard[0]["event_id"] < heard[1]["event_id"] < heard[2]["event_id"]
    await socket.disconnect()


async def test_timeout_closes_the_disabled_therapists_socket_with_4403(operator, therapist, make_appointment):
    appt = await database_sync_to_async(make_appointment)("pending", therapist)
    socket, connected, _ = await open_socket(therapist)
    assert connected
    operator_socket, connected, _ = await open_socket(operator)
    assert connected

    def sweep_after_deadline():
        with time_machine.travel(appt.response_deadline + timedelta(seconds=1)):
            return workflow.sweep()

    counts = await database_sync_to_async(sweep_after_deadline)()
    assert counts.therapists_disabled == 1

    heard = []
    while True:
        output = await socket.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            break
        heard.append(json.loads(output["text"]))
    assert output["code"] == CLOSE_DISABLED
    assert [m["type"] for m in heard] == ["appointment.event", "notification"]
    assert heard[0]["kind"] == "timed_out" and heard[0]["appointment"]["status"] == "cancelled"
    assert "disabled" in heard[1]["notification"]["message"]

    # The operator's dashboard stays open and hears the timeout.
    operator_heard = await receive_until(operator_socket, lambda m: m.get("kind") == "timed_out")
    assert operator_heard[-1]["appointment"]["id"] == appt.id
    await operator_socket.send_json_to({"type": "ping"})
    assert await receive_until(operator_socket, lambda m: m["type"] == "pong")
    await operator_socket.disconnect()

    # And the disabled therapist cannot come back.
    _, connected, _ = await open_socket(therapist)
    assert not connected


async def test_closed_sockets_leave_nothing_subscribed_in_redis(operator, operator2, therapist, redis_url):
    """Membership lives in the server process: once the sockets are gone, so are
    their channels and groups in Redis (a proxy restart leaves no stale members)."""
    import redis.asyncio as aioredis

    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    redis = aioredis.Redis.from_url(settings.REDIS_URL)
    try:
        sockets = []
        for user in (operator, operator2, therapist):
            communicator, connected, _ = await open_socket(user)
            assert connected
            sockets.append(communicator)
        subscribed = {name.decode().removeprefix(prefix) for name in await redis.pubsub_channels(f"{prefix}*")}
        # Three sockets, and the groups they are in: the operators', and each user's own.
        assert sum(name.startswith("specific.") for name in subscribed) == 3
        assert {name for name in subscribed if name.startswith("__group__")} == {
            "__group__operators", f"__group__user_{operator.id}", f"__group__user_{operator2.id}",
            f"__group__user_{therapist.id}"}
        for communicator in sockets:
            await communicator.disconnect()
        assert await redis.pubsub_channels(f"{prefix}*") == []
    finally:
        await redis.aclose()


async def test_group_messages_reach_the_page_in_the_order_they_were_sent(operator, redis_url):
    """An operator's socket is in two groups; what it is sent, singly or several
    in one envelope, reaches the page in the order it was sent, whether the layer
    hands it over at once or queues it."""
    communicator, connected, _ = await open_socket(operator)
    assert connected
    layer = get_channel_layer()
    try:
        await communicator.send_json_to({"type": "ping"})
        assert (await communicator.receive_json_from(timeout=5))["type"] == "pong"
        expected = []
        for n in range(90):
            if n % 3 == 0:
                group, message = OPERATORS_GROUP, {"type": "appointment.event", "event_id": n, "kind": "assigned",
                                                   "appointment": {"id": n}}
                expected.append(message)
            elif n % 3 == 1:
                group, message = user_group(operator.id), {"type": "notification", "n": n}
                expected.append(message)
            else:
                items = [{"type": "notification", "n": n}, {"type": "notification", "n": n + 0.5}]
                group, message = user_group(operator.id), {"type": BATCH_TYPE, "messages": items}
                expected += items
            await layer.group_send(group, message)
        received = [await communicator.receive_json_from(timeout=5) for _ in expected]
        assert received == expected
        assert layer._get_layer().direct  # the socket took the direct path
    finally:
        await communicator.disconnect()
    assert not layer._get_layer().direct  # and gave it up when it closed
