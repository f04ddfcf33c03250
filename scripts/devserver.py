"""Start and stop the project's server processes on loopback ports: the one
launcher the test suite (websocket, browser and fault tests) and the benchmarks
share.

`start_server()` runs `daphne guitara.asgi:application` (or uvicorn, for the
comparison benchmark) as a subprocess with exactly the environment it is given,
logs to a file, and returns once `/healthz` answers; `Process.stop()` asks
politely (SIGTERM) and kills what does not listen. What each caller puts in the
environment (the test database, the bench database, a channel prefix) stays
with the caller.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRASH_MARKER = "Exception inside application: "


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Process:
    name: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def crashes(self) -> dict[str, int]:
        """The "Exception inside application" lines of the log (a view or consumer
        that crashed), counted by message."""
        counts: dict[str, int] = {}
        for line in self.log().splitlines():
            if CRASH_MARKER in line:
                message = line.split(CRASH_MARKER, 1)[1].strip()[:120]
                counts[message] = counts.get(message, 0) + 1
        return counts

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def kill(self) -> None:
        """A crash: SIGKILL, no clean shutdown."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)


@dataclass
class Server(Process):
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def origin(self) -> str:
        return self.url

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def dashboard_ws_url(self) -> str:
        return f"{self.ws_url}/ws/dashboard/"


def server_command(kind: str, port: int) -> list[str]:
    if kind == "daphne":
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "guitara.asgi:application"]
    if kind == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "guitara.asgi:application", "--host", "127.0.0.1",
                "--port", str(port), "--lifespan", "off", "--no-access-log", "--log-level", "warning"]
    raise ValueError(f"unknown server kind {kind!r}")


def start_process(name: str, command: list[str], *, env: dict[str, str], log_dir: Path,
                  cwd: Path = ROOT) -> Process:
    """Any project command (the sweep, say) with its output in `log_dir/<name>.log`."""
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    return Process(name, process, log_path)


def start_server(*, env: dict[str, str], log_dir: Path, kind: str = "daphne", port: int | None = None,
                 ready_within: float = 60, cwd: Path = ROOT) -> Server:
    """A server on a loopback port (a free one unless given), once `/healthz` answers."""
    port = port or free_port()
    started = start_process(f"{kind}-{port}", server_command(kind, port), env=env, log_dir=log_dir, cwd=cwd)
    server = Server(started.name, started.process, started.log_path, port)
    deadline = time.monotonic() + ready_within
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{kind} exited early:\n{server.log()}")
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=1) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{kind} did not answer /healthz within {ready_within:.0f} s:\n{server.log()}")
