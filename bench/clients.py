"""The load generator (asyncio + httpx) and websocket helpers."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
from websockets.asyncio.client import ClientConnection, connect

from .harness import CpuMeter, Server, summarize


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    json: dict | None = None


def _client(base_url: str, concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60)


async def _drive(clients: list[httpx.AsyncClient], requests: list[Request], concurrency: int,
                 latencies: list[float] | None, codes: Counter) -> None:
    position = 0

    async def worker(index: int) -> None:
        nonlocal position
        client = clients[index % len(clients)]
        while position < len(requests):
            req = requests[position]
            position += 1
            started = time.perf_counter()
            response = await client.request(req.method, req.path, headers=req.headers, json=req.json)
            await response.aread()
            if latencies is not None:
                latencies.append((time.perf_counter() - started) * 1000)
            codes[response.status_code] += 1

    await asyncio.gather(*(worker(i) for i in range(concurrency)))


async def load(servers: list[Server], requests: list[Request], concurrency: int, *, warmup: int = 0) -> dict:
    """Send `requests` with `concurrency` in flight (the first `warmup` of them
    untimed); with several servers, workers spread over them round robin."""
    clients = [_client(s.url, max(1, concurrency // len(servers) + 1)) for s in servers]
    try:
        await _drive(clients, requests[:warmup], concurrency, None, Counter())
        timed = requests[warmup:]
        latencies: list[float] = []
        codes: Counter = Counter()
        with CpuMeter(servers) as cpu:
            started = time.perf_counter()
            await _drive(clients, timed, concurrency, latencies, codes)
            wall = time.perf_counter() - started
    finally:
        for client in clients:
            await client.aclose()
    errors = {str(code): n for code, n in codes.items() if code >= 400}
    return {
        "concurrency": concurrency,
        "requests": len(timed),
        "seconds": round(wall, 3),
        "rps": round(len(timed) / wall, 1),
        "latency_ms": summarize(latencies),
        "errors": errors,
        **cpu.result,
        # Robust to a busy machine, unlike req/s: what one request cost the server.
        "server_cpu_ms_per_request": round(1000 * cpu.server_seconds / max(1, len(timed)), 2),
    }


async def timed_gets(server: Server, path: str, headers: dict[str, str], *, count: int, warmup: int = 3) -> dict:
    """`count` sequential GETs; latency and response size."""
    async with _client(server.url, 1) as client:
        size = 0
        for _ in range(warmup):
            response = await client.get(path, headers=headers)
            response.raise_for_status()
            size = len(response.content)
        latencies = []
        for _ in range(count):
            started = time.perf_counter()
            response = await client.get(path, headers=headers)
            await response.aread()
            latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
    return {"latency_ms": summarize(latencies), "bytes": size}


# ---------------------------------------------------------------------------
# Websockets
# ---------------------------------------------------------------------------


async def open_socket(server: Server, session_key: str) -> ClientConnection:
    # Like a browser: an Origin header, the session cookie, no client pings.
    return await connect(server.dashboard_ws_url, origin=server.origin,
                         additional_headers={"Cookie": f"sessionid={session_key}"},
                         ping_interval=None, open_timeout=60, max_queue=None)


async def open_sockets(server: Server, session_keys: list[str], *, parallel: int = 25) -> list[ClientConnection]:
    gate = asyncio.Semaphore(parallel)

    async def one(key: str) -> ClientConnection:
        async with gate:
            return await open_socket(server, key)

    return list(await asyncio.gather(*(one(k) for k in session_keys)))


async def close_sockets(sockets: list[ClientConnection], *, parallel: int | None = None) -> None:
    """Close them all at once, or `parallel` at a time (as browsers leaving one by one)."""
    step = parallel or max(1, len(sockets))
    for start in range(0, len(sockets), step):
        await asyncio.gather(*(s.close() for s in sockets[start:start + step]), return_exceptions=True)
