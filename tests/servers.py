"""Real daphne processes for websocket and browser tests.

pytest-django's live_server is WSGI only; these tests need Channels, so they run
`daphne guitara.asgi:application` subprocesses on loopback ports against the
test PostgreSQL database (which must be committed data: use `transactional_db`)
and the test run's Redis channel prefix.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """The URL of the database the tests are using right now (the test database)."""
    s = connection.settings_dict
    assert connection.vendor == "postgresql", "daphne subprocesses need the PostgreSQL test database"
    user = s.get("USER") or "postgres"
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{s['NAME']}"


def server_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "SECRET_KEY": settings.SECRET_KEY,  # sessions made here must be valid there
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DEBUG": "0",
        "PYTHONUNBUFFERED": "1",
    })
    layer = settings.CHANNEL_LAYERS["default"]
    if layer["BACKEND"].startswith("channels_redis"):
        env["REDIS_URL"] = settings.REDIS_URL
        env["CHANNEL_LAYER_PREFIX"] = layer["CONFIG"]["prefix"]
    env.update(overrides)
    return env


class DaphneServer:
    def __init__(self, port: int, process: subprocess.Popen, log_path: Path):
        self.port = port
        self.process = process
        self.log_path = log_path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def kill(self) -> None:
        """Simulate a crash: SIGKILL, no clean shutdown."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)


def start_daphne(tmp_path: Path, *, port: int | None = None, **env_overrides: str) -> DaphneServer:
    port = port or free_port()
    log_path = tmp_path / f"daphne-{port}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child process
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "guitara.asgi:application"],
        cwd=ROOT, env=server_env(**env_overrides), stdout=log, stderr=subprocess.STDOUT,
    )
    server = DaphneServer(port, process, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited early:\n{server.log()}")
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"daphne did not answer /healthz within 30 s:\n{server.log()}")


@contextmanager
def daphne(tmp_path: Path, **kwargs):
    server = start_daphne(tmp_path, **kwargs)
    try:
        yield server
    finally:
        server.stop()


def session_cookie_for(user) -> str:
    """A logged-in session (stored in the shared database) for `user`."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value
