"""The HTTP side of the ASGI application (guitara.handlers): a request enters the
synchronous middleware chain and view once, instead of crossing between the
event loop and a worker thread for every middleware hook."""

import json

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


async def test_a_request_enters_the_middleware_and_view_once(crossings):
    response = await request("GET", "/healthz").get_response(timeout=10)
    assert response["status"] == 200
    assert json.loads(response["body"])["status"] == "ok"
    # request_started's receivers, the whole chain with the view, closing the response.
    assert len(crossings) <= 4, crossings
    assert sum("get_response" in name for name in crossings) == 1, crossings


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
