"""daphne's connections send at once when nothing is queued (guitara.transport),
and fall back to Twisted's buffer, in order, when the kernel does not take it all."""

import json
import socket
import sys
import time

import httpx
import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from websockets.sync.client import connect

from guitara import transport
from notifications.realtime import user_group
from tests.conftest import needs
from tests.servers import daphne, session_cookie_for


class Reactor:
    """What the connection asks of the reactor: to be told when it may write."""

    def __init__(self):
        self.writers = set()

    def addWriter(self, writer):
        self.writers.add(writer)

    def removeWriter(self, writer):
        self.writers.discard(writer)

    def addReader(self, reader):
        pass

    def removeReader(self, reader):
        pass


class Protocol:
    def makeConnection(self, transport):
        self.transport = transport


@pytest.fixture
def pair():
    server_class = transport._eager_server_class()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.settimeout(5)
    reactor = Reactor()
    connection = server_class(ours, Protocol(), ("127.0.0.1", 1), None, 1, reactor)
    connection.protocol.makeConnection(connection)
    yield connection, theirs, reactor
    ours.close()
    theirs.close()


def read_all(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = sock.recv(min(size, 65536))
        assert chunk, "the connection closed early"
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def test_a_write_with_nothing_queued_is_sent_without_asking_the_reactor(pair):
    connection, peer, reactor = pair
    connection.write(b"hello")
    connection.writeSequence([b", ", b"world"])
    assert read_all(peer, 12) == b"hello, world"
    assert reactor.writers == set()


def test_what_the_kernel_does_not_take_is_buffered_and_sent_in_order(pair):
    connection, peer, reactor = pair
    big = bytes(range(256)) * 40_000  # 10 MB: more than the socket buffers hold
    connection.write(big)
    assert reactor.writers == {connection}  # the rest waits for the socket to drain
    connection.write(b"after")  # queued behind it, never sent ahead
    received = bytearray()
    while len(received) < len(big) + 5:
        received += peer.recv(1 << 20)
        if reactor.writers:  # what the reactor does when the socket is writable again
            assert connection.doWrite() is None
    assert bytes(received) == big + b"after"
    assert reactor.writers == set()  # drained: no longer registered
    connection.write(b"again")
    assert read_all(peer, 5) == b"again"


def test_a_closing_connection_writes_the_usual_way(pair):
    connection, _, reactor = pair
    connection.disconnecting = True
    connection.write(b"late")
    assert reactor.writers == {connection}
    assert connection._tempDataBuffer == [b"late"]


def test_install_does_nothing_outside_daphne(monkeypatch):
    monkeypatch.delitem(sys.modules, "twisted.internet.reactor", raising=False)
    assert transport.install() is False


def test_a_socket_that_stops_reading_still_gets_every_message_in_order(transactional_db, redis_url, tmp_path, operator):
    """Through a real daphne: 12 MB of messages to a page that reads none for a
    while (its socket buffers fill, so sends go part at once, part through
    Twisted's buffer); once it reads, every message is there, whole and in order."""
    needs(connection.vendor == "postgresql", "PostgreSQL")
    count, pad = 3000, "x" * 4000
    with daphne(tmp_path) as server:
        cookie = session_cookie_for(operator)
        with connect(f"{server.ws_url}/ws/dashboard/", origin=server.origin, proxy=None, max_queue=4,
                     additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"}) as page:
            page.send(json.dumps({"type": "ping"}))
            assert json.loads(page.recv(timeout=5))["type"] == "pong"  # joined its groups
            send = async_to_sync(get_channel_layer().group_send)
            for seq in range(count):
                send(user_group(operator.id), {"type": "notification", "seq": seq, "pad": pad})
            time.sleep(0.5)  # the server writes while the page is not reading
            received = [json.loads(page.recv(timeout=10)) for _ in range(count)]
    assert [m["seq"] for m in received] == list(range(count))
    assert all(m["pad"] == pad for m in received)


def test_a_body_daphne_cannot_parse_as_a_form_still_gets_the_apis_json_answer(transactional_db, tmp_path, operator):
    """daphne hands the raw body to Django: a malformed multipart upload is the
    API's clear JSON error, not Twisted's own HTML "Bad Request" from parsing a
    form nobody reads, and a well-formed form login still works."""
    needs(connection.vendor == "postgresql", "PostgreSQL")
    with daphne(tmp_path) as server, httpx.Client(base_url=server.url, timeout=30, trust_env=False) as http:
        token = http.post("/api/accounts/token/", json={"username": operator.username,
                                                        "password": f"pass-{operator.username}"}).json()["token"]
        broken = http.post("/api/scheduling/appointments/", content=b"--x\r\nnot a part at all",
                           headers={"Authorization": f"Token {token}",
                                    "Content-Type": "multipart/form-data"})
        assert broken.status_code == 415
        assert broken.headers["content-type"].startswith("application/json")
        assert broken.json()["code"] == "unsupported_media_type"
        # The operators' sign-in form, urlencoded, parsed by Django as before.
        page = http.get("/accounts/login/")
        csrf = page.cookies[settings.CSRF_COOKIE_NAME]
        form = {"username": operator.username, "password": f"pass-{operator.username}", "csrfmiddlewaretoken": csrf}
        signed_in = http.post("/accounts/login/", data=form)
        assert signed_in.status_code == 302
        assert settings.SESSION_COOKIE_NAME in signed_in.cookies
