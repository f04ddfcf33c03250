"""5. Fan-out: one event to 5,000 operator sockets.

An assign POST on server A; 5,000 operator sockets (the world's operators, five
hundred open tabs each) are in the `operators` group. Time from just before the
POST until the first, the median and the last socket has the event, per event;
reported as the median (and worst) over several events. Once with all 5,000 on
server B, once split 2,500/2,500 over A and B (what a second process buys).

The receivers are lean websocket clients (`clients.RawSocket`): per frame they
only stamp the time its bytes arrived and keep them; frames are decoded after
each event. The load generator shares the two cores with the servers, and a
full client library's work per frame (about as much as a server's) delayed the
later sockets by as much as the servers did: it measured itself.

At the end the split run's 5,000 sockets close all at once, as when a proxy
restarts: `mass_close` reports how many socket channels are still subscribed
in Redis once the servers have handled the disconnects (anything above 0 would
be a socket the servers forgot to clean up).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import time

import redis.asyncio as aioredis
from django.conf import settings

from . import data
from .clients import RawSocket, _client, close_sockets, open_raw_socket, open_sockets
from .harness import CpuMeter, percentile, servers, sized, summarize

SOCKETS = sized(5000, 500)


class Tally:
    """Counts the sockets that got a frame since `reset`; `done` fires at `total`."""

    def __init__(self, total: int):
        self.total = total
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.done = asyncio.Event()

    def hit(self) -> None:
        self.count += 1
        if self.count >= self.total:
            self.done.set()


def _arrival(socket: RawSocket, appointment_id: int) -> float | None:
    for received, text in socket.arrivals():
        message = json.loads(text)
        if message.get("type") == "appointment.event" and message["appointment"]["id"] == appointment_id:
            return received
    return None


async def _events(a, placements, world: data.World, therapist, appts, warmup: int, *,
                  mass_close: bool = False) -> dict:
    sockets: list[RawSocket] = []
    tally = Tally(sum(count for _, count in placements))
    connecting = time.perf_counter()
    try:
        for server, count in placements:
            keys = [world.sessions[world.operators[i % len(world.operators)].id] for i in range(count)]
            sockets += await open_sockets(
                server, keys, opener=lambda server, key: open_raw_socket(server, key, tally.hit))
        connect_seconds = time.perf_counter() - connecting
        await asyncio.sleep(1.0)
        headers = world.token_header(world.operator)
        firsts, medians, lasts, responded, missed = [], [], [], [], []
        async with _client(a.url, 1) as http:
            with CpuMeter([s for s, _ in placements]) as cpu:
                for index, appt in enumerate(appts):
                    for s in sockets:
                        s.reset()
                    tally.reset()
                    started = time.perf_counter()
                    response = await http.post(f"/api/scheduling/appointments/{appt.id}/assign/",
                                               json={"therapist": therapist.id}, headers=headers)
                    answered = time.perf_counter()
                    if response.status_code != 200:
                        raise RuntimeError(f"assign answered {response.status_code}: {response.text[:300]}")
                    with contextlib.suppress(TimeoutError):
                        # A socket the server dropped never answers: wait 5 s at most.
                        await asyncio.wait_for(tally.done.wait(), 5)
                    arrivals = sorted((t - started) * 1000 for s in sockets
                                      if (t := _arrival(s, appt.id)) is not None)
                    if not arrivals:
                        raise RuntimeError("no socket got the event")
                    if index >= warmup:
                        missed.append(len(sockets) - len(arrivals))
                        firsts.append(arrivals[0])
                        medians.append(percentile(arrivals, 50))
                        lasts.append(arrivals[-1])
                        responded.append((answered - started) * 1000)
                    await asyncio.sleep(0.3)
        still_open = sum(1 for s in sockets if s.is_open)
        before = await _settled_subscriptions() if mass_close else None
    finally:
        # Gradually: 25 operator sockets leave 50 groups, under the Redis pool's 100 connections.
        await close_sockets(sockets, parallel=None if mass_close else 25)
    after = await _settled_subscriptions() if mass_close else None
    return {
        "sockets": len(sockets),
        "connect_seconds": round(connect_seconds, 1),
        "events": len(lasts),
        # Sockets that did not get an event (closed by the server meanwhile).
        "missed_max": max(missed, default=0),
        "still_open_at_end": still_open,
        "first_ms": summarize(firsts),
        "median_socket_ms": summarize(medians),
        "last_ms": summarize(lasts),
        "last_ms_median_over_events": round(statistics.median(lasts), 3),
        "http_response_ms": summarize(responded),
        **cpu.result,
        **({"mass_close": {"sockets": len(sockets), "socket_channels_before": before,
                           "socket_channels_left": after}} if mass_close else {}),
    }


async def _settled_subscriptions() -> int:
    """Socket channels subscribed in Redis once the servers have handled the
    connects or disconnects (the count stable for 3 s)."""
    pattern = f"{settings.CHANNEL_LAYERS['default']['CONFIG']['prefix']}specific.*"
    client = aioredis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        sizes: list[int] = []
        for _ in range(20):
            sizes.append(len(await client.pubsub_channels(pattern)))
            if len(sizes) >= 4 and len(set(sizes[-4:])) == 1:
                break
            await asyncio.sleep(1)
        return sizes[-1]
    finally:
        await client.aclose()


def run(world: data.World) -> dict:
    events = sized(15, 4)
    warmup = 2
    therapist = data.create_therapists(world, 1, prefix="fanout")[0]
    appts = data.unassigned(world, 2 * (events + warmup), per_slot=1)
    one, two = appts[:events + warmup], appts[events + warmup:]
    with servers("daphne", 2) as (a, b):
        on_b = asyncio.run(_events(a, [(b, SOCKETS)], world, therapist, one, warmup))
        split = asyncio.run(_events(a, [(a, SOCKETS // 2), (b, SOCKETS // 2)], world, therapist, two, warmup,
                                    mass_close=True))
    return {"one_server": on_b, "split_two_servers": split}
