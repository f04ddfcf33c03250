"""Real daphne processes for websocket and browser tests.

pytest-django's live_server is WSGI only; these tests need Channels, so they run
`daphne guitara.asgi:application` subprocesses on loopback ports against the
test PostgreSQL database (which must be committed data: use `transactional_db`)
and the test run's Redis channel prefix. The launcher itself is
`scripts.devserver`, shared with the benchmarks.
"""

import os
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

from scripts.devserver import ROOT, Server, free_port, start_server

__all__ = ["ROOT", "Server", "daphne", "database_url", "free_port", "server_env", "session_cookie_for",
           "start_daphne"]


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


def start_daphne(tmp_path: Path, *, port: int | None = None, **env_overrides: str) -> Server:
    return start_server(env=server_env(**env_overrides), log_dir=tmp_path, port=port, ready_within=30)


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
