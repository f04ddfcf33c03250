"""Django's connection pool on PostgreSQL: a server process never holds more than
DB_POOL_MAX_SIZE connections however many requests arrive at once, reuses them
between requests, and leaves none behind when it stops."""

import threading
import time

import httpx
import pytest
from django.db import connection

from tests.servers import daphne

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("postgres", "transactional_db")]


def server_connections(also_mine: int = 0) -> int:
    """Connections to the test database other than this test's own (and `also_mine`)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid() AND pid <> %s", [also_mine])
        return cursor.fetchone()[0]


def my_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_a_server_stays_within_its_pool_and_leaves_nothing_behind(tmp_path, operator, therapist):
    assert server_connections() == 0
    with daphne(tmp_path, DB_POOL_MAX_SIZE="3") as server, \
            httpx.Client(base_url=server.url, timeout=30, trust_env=False) as http:
        token = http.post("/api/accounts/token/", json={"username": "olga", "password": "pass-olga"}).json()["token"]
        headers = {"Authorization": f"Token {token}"}
        statuses: list[int] = []
        peak = 0
        done = threading.Event()
        main_pid = my_pid()

        def burst():
            with httpx.Client(base_url=server.url, timeout=30, trust_env=False) as own:
                for _ in range(10):
                    statuses.append(own.get("/api/scheduling/appointments/", headers=headers).status_code)

        def watch():
            nonlocal peak
            while not done.is_set():
                peak = max(peak, server_connections(also_mine=main_pid))
                time.sleep(0.005)
            connection.close()  # the watcher thread's own connection

        watcher = threading.Thread(target=watch)
        watcher.start()
        workers = [threading.Thread(target=burst) for _ in range(16)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        done.set()
        watcher.join()

        assert statuses == [200] * 160
        assert 1 <= peak <= 3
        # Between requests the connections wait in the pool instead of being closed.
        assert 1 <= server_connections() <= 3
    deadline = time.monotonic() + 10
    while server_connections() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server_connections() == 0
