"""The HTTP side of the ASGI application (guitara.handlers): a request enters the
synchronous middleware chain and view once, instead of crossing between the
event loop and a worker thread for every middleware hook."""

import json
from pathlib import Path

import pytest
from asgiref.sync import SyncToAsync
from channels.testing import HttpCommunicator

from guitara.asgi import application

HOST = [(b"host", b"127.0.0.1")]


def request(method: str, path: str, **kwargs) -> HttpCommunicator:
    headers = HOST + kwargs.pop("headers", [])
    return HttpCommunicator(application, method, path, headers=headers, **kwargs)


@pytest.fixture
def crossings(monkeypatch):
    """How many times sync code is entered from the event loop."""
    calls = []
    original = SyncToAsync.__call__

    async def counted(self, *args, **kwargs):
        calls.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted)
    return calls


@pytest.fixture
def lifecycle():
    """The request signals, in the order they are sent."""
    from django.core import signals

    sent = []

    def started(**kwargs):
        sent.append("started")

    def finished(**kwargs):
        sent.append("finished")

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    yield sent
    signals.request_started.disconnect(started)
    signals.request_finished.disconnect(finished)


async def test_a_request_enters_sync_code_once(crossings, lifecycle):
    """request_started, the middleware chain with the view and closing the
    response (request_finished: the database connection goes back) are one
    crossing from the event loop, not three."""
    response = await request("GET", "/healthz").get_response(timeout=10)
    assert response["status"] == 200
    assert json.loads(response["body"])["status"] == "ok"
    assert crossings == ["SyncChainASGIHandler._respond"]
    assert lifecycle == ["started", "finished"]


# Django's own note that it reads a file's synchronous iterator for the event loop.
@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators")
async def test_a_streamed_file_is_sent_whole_and_closed_after_it(crossings, lifecycle):
    from asgiref.testing import ApplicationCommunicator

    body = (Path(__file__).resolve().parent.parent / "static" / "js" / "common.js").read_bytes()
    scope = {"type": "http", "http_version": "1.1", "method": "GET", "path": "/static/js/common.js",
             "raw_path": b"/static/js/common.js", "query_string": b"", "headers": HOST, "scheme": "http",
             "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000)}
    app = ApplicationCommunicator(application, scope)
    await app.send_input({"type": "http.request", "body": b""})
    start = await app.receive_output(10)
    assert start["status"] == 200
    received = b""
    while True:
        message = await app.receive_output(10)
        received += message.get("body", b"")
        if not message.get("more_body"):
            break
    await app.wait(10)
    assert received == body
    assert crossings[0] == "SyncChainASGIHandler._respond"
    assert lifecycle == ["started", "finished"]  # closed once, when it was all sent


@pytest.mark.django_db(transaction=True)
async def test_the_middleware_still_runs(crossings):
    """Security headers, the session/CSRF checks and the login redirect are all applied."""
    response = await request("GET", "/").get_response(timeout=10)
    headers = {name.decode().lower(): value.decode() for name, value in response["headers"]}
    assert response["status"] == 302
    assert "/login" in headers["location"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    post = await request("POST", "/api/scheduling/appointments/", body=b"{}",
                         headers=[(b"content-type", b"application/json")]).get_response(timeout=10)
    assert post["status"] in (401, 403)


async def test_threads_are_reused_but_never_shared_by_two_requests_at_once(monkeypatch):
    import asyncio
    import threading

    from guitara.handlers import SyncChainASGIHandler

    seen: list[int] = []
    first_inside = threading.Event()
    release_first = threading.Event()
    original = SyncChainASGIHandler.get_response

    def recording(self, request):
        seen.append(threading.get_ident())
        if len(seen) == 1:
            first_inside.set()
            release_first.wait(10)
        return original(self, request)

    monkeypatch.setattr(SyncChainASGIHandler, "get_response", recording)
    slow = asyncio.ensure_future(request("GET", "/healthz").get_response(timeout=10))
    await asyncio.get_running_loop().run_in_executor(None, first_inside.wait, 10)
    # While the first request holds its thread, the second gets another one.
    assert (await request("GET", "/healthz").get_response(timeout=10))["status"] == 200
    release_first.set()
    assert (await slow)["status"] == 200
    assert seen[0] != seen[1]
    # Later requests reuse an idle thread instead of starting a new one.
    for _ in range(3):
        assert (await request("GET", "/healthz").get_response(timeout=10))["status"] == 200
    assert set(seen[2:]) <= set(seen[:2])
