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
