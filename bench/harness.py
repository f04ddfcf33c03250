"""What every benchmark shares: the environment, a fresh database, server
subprocesses (daphne or uvicorn, started by `scripts.devserver`, the launcher the
tests use too) on loopback ports, statistics, CPU accounting
and machine facts.

`configure()` must run before Django is imported: it fixes the settings the
bench process and every server it starts will read.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import resource
import secrets
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from scripts import devserver
from scripts.devserver import ROOT, Server

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/guitara_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/3"

QUICK = os.environ.get("QUICK", "") not in ("", "0")
LOG_DIR = Path(tempfile.mkdtemp(prefix="guitara-bench-"))


def sized(full: int, quick: int) -> int:
    return quick if QUICK else full


def configure() -> dict[str, str]:
    """Point this process (and the servers it will start) at the bench database
    and a private Redis database/prefix, with production-like settings."""
    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    values = {
        "DJANGO_SETTINGS_MODULE": "guitara.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CHANNEL_LAYER_PREFIX": "guitara-bench-" + secrets.token_hex(4),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Plain HTTP on loopback: the session cookie is sent by hand anyway.
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(values)
    raise_fd_limit()
    # The settings filter this WhiteNoise warning by module; the test client's
    # middleware set-up reports it from Django's module instead.
    warnings.filterwarnings("ignore", message="No directory at")
    return values


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def database_name() -> str:
    return os.environ["DATABASE_URL"].rsplit("/", 1)[1]


def admin_url() -> str:
    """The same server's `postgres` database, to drop and create ours from."""
    return os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"


def recreate_database() -> None:
    """Drop and create the bench database (connecting to the `postgres` db)."""
    import psycopg

    name = database_name()
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"refusing odd database name {name!r}")
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database() -> None:
    import psycopg

    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database_name()}" WITH (FORCE)')


def flush_redis_db() -> None:
    """Empty the bench's own Redis database number (never another one)."""
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        client.flushdb()
    finally:
        client.close()


def migrate() -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True)
    return time.monotonic() - started


# ---------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------


_RUNNING: list[Server] = []
# "Exception inside application: ..." lines of the servers stopped since the
# last `take_server_errors()`: a consumer or view that crashed.
_ERRORS: dict[str, int] = {}


def uvicorn_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("uvicorn") is not None


def start_server(kind: str = "daphne", **env_overrides: str) -> Server:
    """A server with this process's environment (see `configure()`) plus the overrides."""
    server = devserver.start_server(env={**os.environ, **env_overrides}, log_dir=LOG_DIR, kind=kind)
    _RUNNING.append(server)
    return server


def stop_server(server: Server) -> None:
    server.stop()
    if server in _RUNNING:
        _RUNNING.remove(server)
        for message, n in server.crashes().items():
            _ERRORS[message] = _ERRORS.get(message, 0) + n


def take_server_errors() -> dict[str, int]:
    errors = dict(_ERRORS)
    _ERRORS.clear()
    return errors


@contextlib.contextmanager
def servers(kind: str = "daphne", count: int = 1, **env_overrides: str):
    started: list[Server] = []
    try:
        for _ in range(count):
            started.append(start_server(kind, **env_overrides))
        yield started
    finally:
        for server in started:
            stop_server(server)


def stop_all_servers() -> None:
    for server in list(_RUNNING):
        stop_server(server)


# ---------------------------------------------------------------------------
# CPU accounting
# ---------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


class CpuMeter:
    """CPU used by the servers, by this (client) process and by the whole machine
    while the block runs: tells whether the server, the load generator or the
    machine (PostgreSQL included) was the limit."""

    def __init__(self, servers: list[Server]):
        self.servers = servers

    def __enter__(self) -> CpuMeter:
        self._wall = time.perf_counter()
        self._client = time.process_time()
        self._servers = [process_cpu_seconds(s.process.pid) for s in self.servers]
        self._machine = machine_busy_ticks()
        return self

    def __exit__(self, *exc) -> None:
        wall = time.perf_counter() - self._wall
        busy0, total0 = self._machine
        busy1, total1 = machine_busy_ticks()
        cores = os.cpu_count() or 1
        self.server_seconds = sum(process_cpu_seconds(s.process.pid) - c
                                  for s, c in zip(self.servers, self._servers, strict=True))
        # Every process on the machine: the servers, this client, PostgreSQL, Redis.
        self.machine_seconds = (busy1 - busy0) / _TICK
        self.result = {
            "server_cpu_pct": round(100 * self.server_seconds / wall, 1),
            "client_cpu_pct": round(100 * (time.process_time() - self._client) / wall, 1),
            # 100 % = one core; the machine has `cores` of them.
            "machine_cpu_pct": round(100 * cores * (busy1 - busy0) / max(1, total1 - total0), 1),
        }


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(samples_ms: list[float]) -> dict[str, float]:
    values = sorted(samples_ms)
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "median": round(percentile(values, 50), 3),
        "p95": round(percentile(values, 95), 3),
        "p99": round(percentile(values, 99), 3),
        "min": round(values[0], 3),
        "max": round(values[-1], 3),
    }


def ratio(a: float, b: float) -> float | None:
    if not b or a != a or b != b:
        return None
    return round(a / b, 2)


# ---------------------------------------------------------------------------
# Machine facts
# ---------------------------------------------------------------------------


def machine_info() -> dict:
    import psycopg
    import redis

    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    with psycopg.connect(admin_url()) as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
        pg_max_conn = int(conn.execute("SHOW max_connections").fetchone()[0])
    client = redis.Redis.from_url(os.environ.get("REDIS_URL", DEFAULT_REDIS_URL))
    try:
        redis_version = client.info("server").get("redis_version")
    finally:
        client.close()
    versions = {}
    from importlib import metadata

    for dist in ("Django", "djangorestframework", "channels", "channels-redis", "daphne", "Twisted", "psycopg",
                 "redis", "uvicorn", "httpx", "websockets"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    commit = ""
    with contextlib.suppress(Exception):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=5).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "postgresql_max_connections": pg_max_conn,
        "redis": redis_version,
        "kernel": platform.release(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "packages": versions,
        "git_commit": commit,
    }
