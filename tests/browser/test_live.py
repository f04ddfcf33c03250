"""The live connection when it is not live: updates still arrive by polling while
the socket is down, and the page reconnects and catches up after the server
restarts. The badge says which state the page is in."""

import re

import pytest
from playwright.sync_api import expect

from scheduling import workflow
from tests.servers import start_daphne

from .conftest import in_thread, screenshot

pytestmark = pytest.mark.browser


def badge(page):
    return page.locator("#live-status")


def delivered(page) -> dict:
    return page.evaluate("window.liveConnection.delivered")


def test_updates_arrive_by_polling_while_the_socket_is_down(open_page, operator, therapist, make_appointment):
    ana = open_page(therapist, "/therapist/")
    expect(badge(ana)).to_have_text("Live")

    # From here on the socket endpoint refuses every connection (as a proxy that
    # drops websockets would) and the open socket is cut; plain HTTP still works.
    refuse = {"on": True}

    def socket_route(ws):
        if refuse["on"]:
            ws.close(code=1013, reason="Try again later")
        else:
            ws.connect_to_server()

    ana.route_web_socket(re.compile(r"/ws/dashboard/$"), socket_route)
    ana.evaluate("window.liveConnection.socket.close()")
    expect(badge(ana)).to_have_text("Polling")
    before = delivered(ana)

    appointment = in_thread(make_appointment, "pending", therapist)
    card = ana.locator(f'#waiting-list [data-appointment-id="{appointment.id}"]')
    expect(card.locator(".countdown")).to_contain_text("left to answer")
    after = delivered(ana)
    assert after["feed"] > before["feed"], "the update came through the events feed"
    assert after["socket"] == before["socket"]
    expect(badge(ana)).to_have_text("Polling")
    screenshot(ana, "therapist-polling")

    # The socket comes back: the badge says so and updates flow through it again.
    refuse["on"] = False
    expect(badge(ana)).to_have_text("Live")
    in_thread(workflow.cancel, actor=operator, appointment_id=appointment.id, reason="Client called off")
    done = ana.locator(f'#history-list [data-appointment-id="{appointment.id}"]')
    expect(done).to_contain_text("Client called off")
    expect(done.locator(".status")).to_have_text("Cancelled")
    expect(card).to_have_count(0)


def test_page_reconnects_and_catches_up_after_a_server_restart(open_page, operator, therapist, make_appointment,
                                                               tmp_path):
    # While the server is down the browser reports the refused connections.
    open_page.allow(r"ERR_CONNECTION_(REFUSED|RESET)|ERR_EMPTY_RESPONSE|WebSocket connection to .* failed")
    olga = open_page(operator, "/operator/?tab=timeouts")
    expect(badge(olga)).to_have_text("Live")
    expect(olga.get_by_text("No therapist owes an answer right now")).to_be_visible()

    server = open_page.server
    server.kill()
    expect(badge(olga)).to_have_text("Reconnecting…")
    # A booking made while nothing answers the page.
    appointment = in_thread(make_appointment, "pending", therapist)

    (tmp_path / "restarted").mkdir()
    replacement = start_daphne(tmp_path / "restarted", port=server.port, DJANGO_ALLOW_ASYNC_UNSAFE="")
    try:
        expect(badge(olga)).to_have_text("Live")
        waiting = olga.locator(f'#timeouts-list [data-appointment-id="{appointment.id}"]')
        expect(waiting.locator(".countdown")).to_contain_text("left to answer")
        expect(olga.locator('[data-count="timeouts"]')).to_have_text("1")
    finally:
        olga.context.close()
        replacement.stop()
