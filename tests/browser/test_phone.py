"""A 375 px phone: no sideways scrolling, and the therapist can answer, by touch
and by keyboard, and keep their availability."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from scheduling import workflow

from .conftest import PHONE, in_thread, screenshot

pytestmark = pytest.mark.browser


def assert_no_sideways_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width}px wide on a {PHONE['width']}px screen"


def test_therapist_answers_on_a_phone(open_page, operator, therapist, make_appointment):
    first = in_thread(make_appointment, "pending", therapist, starts_in=timedelta(hours=3))
    second = in_thread(make_appointment, "pending", therapist, starts_in=timedelta(hours=5))
    third = in_thread(make_appointment, "pending", therapist, starts_in=timedelta(hours=10))
    in_thread(make_appointment, "confirmed", therapist, starts_in=timedelta(hours=8))
    ana = open_page(therapist, "/therapist/", viewport=PHONE)
    expect(ana.locator("#live-status")).to_have_text("Live")
    expect(ana.locator('[data-count="waiting"]')).to_have_text("3")
    assert_no_sideways_scroll(ana)
    screenshot(ana, "therapist-phone")

    one = ana.locator(f'[data-appointment-id="{first.id}"]')
    one.get_by_role("button", name="Accept", exact=True).click()
    expect(one.locator(".status")).to_have_text("Confirmed")
    # It starts in 3 hours: Start is offered from 30 minutes before.
    expect(one).to_contain_text("You can start this session from")
    expect(one.get_by_role("button", name="Start session")).to_have_count(0)

    # Reject with the keyboard alone.
    two = ana.locator(f'[data-appointment-id="{second.id}"]')
    two.get_by_role("button", name="Reject", exact=True).focus()
    ana.keyboard.press("Enter")
    dialog = ana.get_by_role("dialog", name=f"Reject #{second.id}?")
    expect(dialog.get_by_label("Reason for rejecting")).to_be_focused()
    box = dialog.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert_no_sideways_scroll(ana)
    ana.keyboard.type("Car broke down")
    ana.keyboard.press("Tab")  # the hint is text, so the next stop is a button
    while ana.evaluate("document.activeElement.textContent") != "Reject appointment":
        ana.keyboard.press("Tab")
    ana.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(two).to_contain_text("You rejected this: Car broke down")
    assert_no_sideways_scroll(ana)

    # The operator cancels while the therapist is typing: the server's refusal is
    # shown inside the modal, which stays open.
    open_page.allow(r"status of 409")  # refused writes, as the browser logs them
    three = ana.locator(f'[data-appointment-id="{third.id}"]')
    three.get_by_role("button", name="Reject", exact=True).click()
    dialog = ana.get_by_role("dialog", name=f"Reject #{third.id}?")
    in_thread(workflow.cancel, actor=operator, appointment_id=third.id, reason="Client called off")
    expect(ana.locator(f'#history-list [data-appointment-id="{third.id}"]')).to_contain_text("Client called off")
    dialog.get_by_label("Reason for rejecting").fill("Too far")
    dialog.get_by_role("button", name="Reject appointment").click()
    expect(dialog.get_by_role("alert")).to_contain_text(f"Cannot reject appointment #{third.id}: it is cancelled")
    expect(dialog).to_be_visible()
    ana.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(ana.get_by_text("Nothing is waiting for your answer")).to_be_visible()

    # Availability: add a slot, remove it, and be told why a busy one stays.
    start = timezone.localtime(timezone.now() + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    ana.get_by_label("From").fill(start.strftime("%Y-%m-%dT%H:%M"))
    ana.get_by_label("Until").fill((start + timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M"))
    ana.get_by_role("button", name="Add availability").click()
    slots = ana.locator("#availability-list li")
    expect(slots).to_have_count(2)
    expect(ana.locator("#toasts")).to_contain_text("Availability added")
    slots.nth(1).get_by_role("button", name=re.compile("^Remove")).click()
    expect(slots).to_have_count(1)

    slots.nth(0).get_by_role("button", name=re.compile("^Remove")).click()
    expect(ana.locator("#availability-error")).to_contain_text(
        re.compile(r"Could not remove .*: Appointment #\d+ at .* lies in this slot; cancel or reassign it first"))
    expect(slots).to_have_count(1)
    assert_no_sideways_scroll(ana)
    screenshot(ana, "therapist-phone-answered")


def test_operator_tabs_fit_a_phone(open_page, operator, therapist, make_appointment):
    in_thread(make_appointment, "rejected", therapist)
    in_thread(make_appointment, "pending", therapist, starts_in=timedelta(hours=6))
    olga = open_page(operator, "/operator/", viewport=PHONE)
    expect(olga.locator("#live-status")).to_have_text("Live")
    for name, ready in [("reviews", "#reviews-list article"), ("timeouts", "#timeouts-list article"),
                        ("all", "#all-list .row"), ("notifications", "[data-notification-list] li.item")]:
        olga.goto(f"/operator/?tab={name}")
        expect(olga.locator(ready).first).to_be_visible()
        assert_no_sideways_scroll(olga)
        screenshot(olga, f"operator-phone-{name}")
    olga.get_by_role("button", name="Mark all read").click()
    expect(olga.locator("[data-notification-list] li.unread")).to_have_count(0)
    expect(olga.locator(".bell [data-unread]")).to_be_hidden()


def overlapping_buttons(page) -> tuple[int, int]:
    """(card action buttons on screen, how many of them a toast covers)."""
    return tuple(page.evaluate("""() => {
        const boxes = (selector) => [...document.querySelectorAll(selector)].map((n) => n.getBoundingClientRect());
        const toasts = boxes('#toasts .toast');
        const buttons = boxes('.appt-card .actions button, .appt-card .actions a')
            .filter((b) => b.height > 0 && b.bottom > 0 && b.top < window.innerHeight);
        const covered = buttons.filter((b) => toasts.some((t) =>
            t.left < b.right && b.left < t.right && t.top < b.bottom && b.top < t.bottom));
        return [buttons.length, covered.length];
    }"""))


def test_toasts_on_a_phone_keep_clear_of_the_buttons_and_go_with_a_tap_or_a_swipe(
        open_page, operator, therapist, make_appointment):
    answer = in_thread(make_appointment, "pending", therapist, starts_in=timedelta(hours=2))
    others = [in_thread(make_appointment, "pending", therapist, starts_in=timedelta(hours=4 + 2 * n)) for n in range(4)]
    ana = open_page(therapist, "/therapist/", viewport=PHONE)
    expect(ana.locator("#live-status")).to_have_text("Live")
    expect(ana.locator('[data-count="waiting"]')).to_have_text("5")

    # Four pieces of news in a row: at most two toasts stand at once, the latest ones.
    for other in others:
        in_thread(workflow.cancel, actor=operator, appointment_id=other.id, reason=f"Called off #{other.id}")
    expect(ana.locator('[data-count="waiting"]')).to_have_text("1")
    toasts = ana.locator("#toasts .toast")
    expect(toasts.last).to_contain_text(f"Called off #{others[-1].id}")
    expect(toasts).to_have_count(2)

    # Clear of Accept and Reject wherever the card is on the screen.
    card = ana.locator(f'[data-appointment-id="{answer.id}"]')
    for block in ("start", "center", "end"):
        if block != "start":
            card.get_by_role("button", name="Accept", exact=True).evaluate(
                f"(b) => b.scrollIntoView({{block: '{block}'}})")
        on_screen, covered = overlapping_buttons(ana)
        assert on_screen >= 2, f"the card's buttons are on screen ({block})"
        assert covered == 0, f"a toast covers a button ({block})"
    screenshot(ana, "therapist-phone-toasts")
    assert_no_sideways_scroll(ana)

    # A tap on a toast dismisses it; so does a sideways swipe.
    toasts.first.click(position={"x": 6, "y": 6})
    expect(toasts).to_have_count(1)
    box = toasts.first.bounding_box()
    y = box["y"] + box["height"] / 2
    ana.mouse.move(box["x"] + 20, y)
    ana.mouse.down()
    ana.mouse.move(box["x"] + 160, y, steps=6)
    ana.mouse.up()
    expect(toasts).to_have_count(0)
    expect(card.get_by_role("button", name="Accept", exact=True)).to_be_visible()


def test_the_therapist_can_call_the_client_and_open_the_address_on_a_map(open_page, therapist, make_appointment):
    appointment = in_thread(make_appointment, "pending", therapist)
    ana = open_page(therapist, "/therapist/", viewport=PHONE)
    card = ana.locator(f'[data-appointment-id="{appointment.id}"]')
    call = card.get_by_role("link", name="+63 917 555 0101 (call Maria Lopez)")
    expect(call).to_have_attribute("href", "tel:+639175550101")
    maps = card.get_by_role("link", name="Open map for 12 Mabini St, Makati")
    expect(maps).to_have_attribute("href", "https://www.google.com/maps/search/?api=1&query=12%20Mabini%20St%2C%20Makati")
    expect(maps).to_have_attribute("target", "_blank")
    expect(maps).to_have_attribute("rel", "noopener noreferrer")
    assert_no_sideways_scroll(ana)


def test_a_slot_error_names_the_fields_as_the_form_does(open_page, therapist):
    open_page.allow(r"status of 400")  # the refused slot, as the browser logs it
    ana = open_page(therapist, "/therapist/", viewport=PHONE)
    start = timezone.localtime(timezone.now() + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    ana.get_by_label("From").fill(start.strftime("%Y-%m-%dT%H:%M"))
    ana.get_by_label("Until").fill((start - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
    ana.get_by_role("button", name="Add availability").click()
    expect(ana.locator("#availability-error")).to_have_text("Could not add the slot: Until must be after From.")
