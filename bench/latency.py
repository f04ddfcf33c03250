"""1. Assignment-to-notified latency, and the Redis floor under it.

An operator's assign POST goes to server A; the therapist's socket is on server
B; the two processes share only Redis (and PostgreSQL). Latency is from just
before the POST is sent until the therapist's socket receives the
`appointment.event` of that appointment. B also holds N idle sockets of other
therapists (each in its own `user_<id>` group, so they receive nothing): the
cost of merely being connected.

The floor is what Redis alone costs on this machine: a PING round trip, and a
`group_send` -> `receive` round trip through a channel layer configured like
the servers' (channels_redis pub/sub).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time

import redis.asyncio as aioredis
from django.conf import settings
from django.utils.module_loading import import_string

from . import data
from .clients import _client, close_sockets, open_socket, open_sockets
from .harness import Server, ratio, servers, sized, summarize


async def redis_floor(samples: int) -> dict:
    client = aioredis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        for _ in range(20):
            await client.ping()
        pings = []
        for _ in range(samples):
            started = time.perf_counter()
            await client.ping()
            pings.append((time.perf_counter() - started) * 1000)
    finally:
        await client.aclose()

    config = dict(settings.CHANNEL_LAYERS["default"]["CONFIG"])
    config["prefix"] = "guitara-bench-floor-" + secrets.token_hex(4)
    layer = import_string(settings.CHANNEL_LAYERS["default"]["BACKEND"])(**config)
    channel = await layer.new_channel()
    await layer.group_add("floor", channel)
    message = {"type": "appointment.event", "event_id": 0, "kind": "assigned", "appointment": {"id": 0}}
    trips = []
    for i in range(samples + 20):
        started = time.perf_counter()
        await layer.group_send("floor", {**message, "event_id": i})
        await layer.receive(channel)
        if i >= 20:
            trips.append((time.perf_counter() - started) * 1000)
    await layer.group_discard("floor", channel)
    await layer.flush()  # also closes its connections
    return {"ping_ms": summarize(pings), "group_send_receive_ms": summarize(trips)}


class EventWaiter:
    """Reads one socket, resolving a future per awaited appointment id."""

    def __init__(self, socket):
        self.socket = socket
        self.waiting: dict[int, asyncio.Future] = {}
        self.task = asyncio.create_task(self._read())

    def expect(self, appointment_id: int) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.waiting[appointment_id] = future
        return future

    async def _read(self) -> None:
        async for raw in self.socket:
            received = time.perf_counter()
            message = json.loads(raw)
            if message.get("type") != "appointment.event":
                continue
            future = self.waiting.pop(message["appointment"]["id"], None)
            if future is not None and not future.done():
                future.set_result(received)

    async def close(self) -> None:
        self.task.cancel()
        await self.socket.close()


async def assign_trials(a: Server, b: Server, world: data.World, therapist, appointments, *, warmup: int) -> dict:
    """Assign each appointment to `therapist` (POST on A) and time the event's
    arrival on the therapist's socket on B. A trial whose event never comes (the
    server dropped the socket) is counted as lost and the socket reopened."""
    session = world.sessions[therapist.id]
    waiter = EventWaiter(await open_socket(b, session))
    headers = world.token_header(world.operator)
    notified, responded, after_response = [], [], []
    lost = 0
    try:
        async with _client(a.url, 1) as http:
            for index, appt in enumerate(appointments):
                if waiter.task.done():
                    await waiter.close()
                    waiter = EventWaiter(await open_socket(b, session))
                future = waiter.expect(appt.id)
                started = time.perf_counter()
                response = await http.post(f"/api/scheduling/appointments/{appt.id}/assign/",
                                           json={"therapist": therapist.id}, headers=headers)
                answered = time.perf_counter()
                if response.status_code != 200:
                    raise RuntimeError(f"assign answered {response.status_code}: {response.text[:300]}")
                try:
                    received = await asyncio.wait_for(future, 3)
                except TimeoutError:
                    lost += 1
                    await waiter.close()
                    waiter = EventWaiter(await open_socket(b, session))
                    continue
                if index >= warmup:
                    notified.append((received - started) * 1000)
                    responded.append((answered - started) * 1000)
                    after_response.append((received - answered) * 1000)
                await asyncio.sleep(0.005)
    finally:
        await waiter.close()
    return {
        "notified_ms": summarize(notified),
        "http_response_ms": summarize(responded),
        # Negative: the event reached the socket before the HTTP answer did.
        "event_minus_response_ms": summarize(after_response),
        "events_lost": lost,
    }


async def latency_levels(a: Server, b: Server, world: data.World, idle_sessions: list[str], plan: list,
                         warmup: int) -> dict:
    results = {}
    idle = []
    try:
        for level, therapist, appts in plan:
            # Grow the idle crowd on B up to `level`.
            idle += await open_sockets(b, idle_sessions[len(idle):level])
            await asyncio.sleep(0.5)
            result = await assign_trials(a, b, world, therapist, appts, warmup=warmup)
            result["idle_sockets"] = len(idle)
            # Idle sockets the server closed while they sat there.
            result["idle_sockets_dropped"] = sum(1 for s in idle if s.close_code is not None)
            results[str(level)] = result
    finally:
        await close_sockets(idle, parallel=50)
    return results


def idle_crowd(world: data.World, count: int) -> list[str]:
    """Sessions of `count` therapists of another service: sockets that only idle."""
    therapists = data.create_therapists(world, count, prefix="idle", service=world.other_service)
    return [world.sessions[t.id] for t in therapists]


def plan_levels(world: data.World, levels: list[int], trials: int, warmup: int) -> list:
    """Per level a fresh therapist and enough unassigned bookings, one per slot."""
    return [(level, data.create_therapists(world, 1, prefix="latency")[0],
             data.unassigned(world, trials + warmup, per_slot=1)) for level in levels]


def run(world: data.World, *, kind: str = "daphne", levels: list[int] | None = None,
        idle_sessions: list[str] | None = None) -> dict:
    levels = levels or [1, 100, 1000]
    trials = sized(300, 40)
    warmup = 10
    idle_sessions = idle_sessions or idle_crowd(world, max(levels))
    plan = plan_levels(world, levels, trials, warmup)
    floor = None
    with servers(kind, 2) as (a, b):
        if kind == "daphne":
            floor = asyncio.run(redis_floor(sized(1000, 200)))
        by_level = asyncio.run(latency_levels(a, b, world, idle_sessions, plan, warmup))
    out = {"server": kind, "trials_per_level": trials, "levels": by_level}
    if floor:
        out["floor"] = floor
        base = floor["group_send_receive_ms"]
        for result in by_level.values():
            ours = result["notified_ms"]
            result["x_floor_median"] = ratio(ours["median"], base["median"])
            result["x_floor_p99"] = ratio(ours["p99"], base["p99"])
    return out
