"""The load generator (asyncio + httpx) and websocket helpers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable
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
        "machine_cpu_ms_per_request": round(1000 * cpu.machine_seconds / max(1, len(timed)), 2),
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


async def open_sockets(server: Server, session_keys: list[str], *, parallel: int = 25,
                       opener: Callable | None = None) -> list:
    """`parallel` handshakes at a time; `opener(server, key)` opens one (default: `open_socket`)."""
    gate = asyncio.Semaphore(parallel)
    opener = opener or open_socket

    async def one(key: str):
        async with gate:
            return await opener(server, key)

    return list(await asyncio.gather(*(one(k) for k in session_keys)))


async def close_sockets(sockets: list[ClientConnection], *, parallel: int | None = None) -> None:
    """Close them all at once, or `parallel` at a time (as browsers leaving one by one)."""
    step = parallel or max(1, len(sockets))
    for start in range(0, len(sockets), step):
        await asyncio.gather(*(s.close() for s in sockets[start:start + step]), return_exceptions=True)


# ---------------------------------------------------------------------------
# Lean receivers (fan-out): thousands of sockets read by one process
# ---------------------------------------------------------------------------


class RawSocket(asyncio.Protocol):
    """A websocket client that does almost nothing per frame: it stamps each
    text frame with the time its last bytes arrived and keeps its bytes, decoded
    only when asked (`arrivals()`), and answers the server's pings. With
    thousands of sockets in one load-generator process, a full client library
    (message assembly, UTF-8 checks, a queue and a task wake-up per frame) would
    be what the fan-out measures, not the servers."""

    def __init__(self, key: bytes, on_first: Callable[[], None] | None = None):
        self.key = key
        self.on_first = on_first
        self.transport: asyncio.Transport | None = None
        self.handshake = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.buffer = bytearray()
        self.open = False
        self.frames: list[tuple[float, bytes]] = []

    def reset(self) -> None:
        self.frames = []

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.open:
            self._frames(time.perf_counter())
            return
        head, sep, rest = bytes(self.buffer).partition(b"\r\n\r\n")
        if not sep:
            return
        status = head.split(b"\r\n", 1)[0]
        expected = base64.b64encode(hashlib.sha1(self.key + _WS_GUID).digest())  # noqa: S324 - the protocol's hash
        if self.handshake.done():
            return
        if b" 101 " not in status or expected not in head:
            self.handshake.set_exception(ConnectionError(f"websocket handshake refused: {status!r}"))
            return
        self.open = True
        self.buffer = bytearray(rest)
        self.handshake.set_result(None)
        self._frames(time.perf_counter())

    def _frames(self, now: float) -> None:
        buf = self.buffer
        while len(buf) >= 2:
            opcode, length, start = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if length == 126:
                if len(buf) < 4:
                    return
                length, start = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length, start = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < start + length:
                return
            payload = bytes(buf[start:start + length])
            del buf[:start + length]
            if opcode == 0x1:
                self.frames.append((now, payload))
                if len(self.frames) == 1 and self.on_first:
                    self.on_first()
            elif opcode == 0x9:
                self._send(0xA, payload)
            elif opcode == 0x8:
                self.transport.close()

    def _send(self, opcode: int, payload: bytes) -> None:
        # Client frames are masked (RFC 6455); payloads here are < 126 bytes.
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def arrivals(self) -> list[tuple[float, str]]:
        """(arrival time, text) of every text frame since `reset()`."""
        return [(received, payload.decode()) for received, payload in self.frames]

    @property
    def is_open(self) -> bool:
        return self.open

    def connection_lost(self, exc) -> None:
        self.open = False
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    async def close(self) -> None:
        if self.transport and not self.transport.is_closing():
            self._send(0x8, (1000).to_bytes(2, "big"))
            self.transport.close()
        await self.closed


_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455


async def open_raw_socket(server: Server, session_key: str, on_first: Callable[[], None] | None = None) -> RawSocket:
    """Like `open_socket` (Origin header, session cookie), as a `RawSocket`."""
    key = base64.b64encode(os.urandom(16))
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(lambda: RawSocket(key, on_first), "127.0.0.1", server.port)
    protocol.transport.write(
        b"GET /ws/dashboard/ HTTP/1.1\r\n"
        + f"Host: 127.0.0.1:{server.port}\r\nOrigin: {server.origin}\r\n".encode()
        + b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        + b"Sec-WebSocket-Key: " + key + b"\r\n"
        + f"Cookie: sessionid={session_key}\r\n\r\n".encode())
    await asyncio.wait_for(protocol.handshake, 60)
    return protocol
