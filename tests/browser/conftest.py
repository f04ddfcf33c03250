"""Browser tests: Debian chromium driven by playwright against real daphne
processes on the test PostgreSQL database (committed data: `transactional_db`)
and the run's Redis channel prefix, so the tests and the server share one
channel layer.

Every page opened through `open_page` is watched: a console error, an uncaught
exception, a failed request or an error response for a page resource fails the
test at teardown. A test that provokes an error on purpose says so with
`open_page.allow(pattern)`.
"""

import os
import re
import threading
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connections
from playwright.sync_api import expect, sync_playwright

from tests.conftest import needs
from tests.servers import daphne

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}
# Resource types whose loads must never fail (API calls report through the console).
ASSETS = {"document", "stylesheet", "script", "image", "font", "media", "manifest", "other"}


@pytest.fixture(scope="module")
def browser():
    needs(os.path.exists(CHROMIUM), f"Debian chromium at {CHROMIUM}")
    with pytest.MonkeyPatch.context() as mp:
        # The sync playwright API keeps an event loop in this thread; the tests' ORM
        # calls (and pytest-django's flush) are still plain synchronous code.
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            expect.set_options(timeout=10_000)
            yield browser
            browser.close()


@pytest.fixture
def server(transactional_db, postgres, redis_url, tmp_path):
    # The server gets the safety check back: only the test process needs it off.
    with daphne(tmp_path, DJANGO_ALLOW_ASYNC_UNSAFE="") as server:
        yield server


class Problems:
    def __init__(self):
        self.found: list[str] = []
        self.allowed: list[re.Pattern] = []

    def add(self, text: str) -> None:
        if not any(pattern.search(text) for pattern in self.allowed):
            self.found.append(text)


def login(page, username: str, next_path: str) -> None:
    """Through the real login form, landing on `next_path`."""
    page.goto(f"/accounts/login/?next={quote(next_path)}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f"pass-{username}")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(next_path.split("?")[0])))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def open_page(browser, server, request):
    """open_page(user, path, viewport=DESKTOP) -> a logged-in page in its own context."""
    problems = Problems()
    contexts = []

    def watch(page, label: str) -> None:
        def on_console(message):
            if message.type == "error":
                problems.add(f"[{label}] console error: {message.text} at {message.location.get('url')}")

        def on_request_failed(request):
            failure = request.failure or ""
            # Requests cut short by a navigation or reload are not failures.
            if "ERR_ABORTED" not in failure:
                problems.add(f"[{label}] request failed: {request.method} {request.url} {failure}")

        def on_response(response):
            kind = response.request.resource_type
            if response.status >= 500 or (response.status >= 400 and kind in ASSETS):
                problems.add(f"[{label}] {response.status} for {kind} {response.url}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: problems.add(f"[{label}] uncaught: {error}"))
        page.on("requestfailed", on_request_failed)
        page.on("response", on_response)

    def open_(user, path: str, *, viewport: dict | None = None, before=None):
        """`before(page)` runs ahead of logging in (routes to hold or change responses)."""
        context = browser.new_context(viewport=viewport or DESKTOP, base_url=server.url,
                                      timezone_id="UTC", locale="en-US")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        watch(page, user.username)
        if before is not None:
            before(page)
        login(page, user.username, path)
        return page

    def allow(pattern: str) -> None:
        problems.allowed.append(re.compile(pattern))

    open_.allow = allow
    open_.server = server
    yield open_
    found = list(problems.found)
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        for number, context in enumerate(contexts):
            for page in context.pages:
                screenshot(page, f"failed-{request.node.name}-{number}")
    for context in contexts:
        context.close()
    assert not found, "The pages reported problems:\n" + "\n".join(found)


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def in_thread(fn, /, *args, **kwargs):
    """Run workflow code the way the server runs it: in a thread without an event
    loop (the playwright one in this thread makes async_to_sync refuse, so nothing
    would be published), on its own database connection, closed afterwards."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed back to the test below
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), f"{fn.__name__} did not finish within 30 s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
