"""Re-offer in the browser, on a daphne started with AUTO_REOFFER=1: the operator
watches the offer chain of a booking grow as the sweep moves it on, the next
therapist's page shows the offer without a reload, and "Assign by hand" stops
the chain."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from scheduling import workflow
from scheduling.models import Appointment
from tests.servers import daphne

from .conftest import in_thread, screenshot
from .test_dashboards import live, tab

pytestmark = pytest.mark.browser


@pytest.fixture
def server(transactional_db, postgres, redis_url, tmp_path, settings):
    # The sweep runs here (in_thread) and in the server ("Run sweep now"): both re-offer.
    settings.AUTO_REOFFER = True
    with daphne(tmp_path, DJANGO_ALLOW_ASYNC_UNSAFE="", AUTO_REOFFER="1") as server:
        yield server


def details(olga, appointment_id: int):
    tab(olga, "All appointments")
    row = olga.locator(f'#all-list [data-appointment-id="{appointment_id}"]')
    row.get_by_role("button", name=re.compile("^Details")).click()
    dialog = olga.get_by_role("dialog", name=f"Appointment #{appointment_id}")
    return dialog, dialog.get_by_role("list", name="Offer chain").locator("li")


def test_the_operator_sees_the_chain_grow_and_the_next_therapist_gets_the_offer_live(
        open_page, operator, therapist, therapist_b, make_appointment):
    # Ana's session may be reconnecting when the sweep disables her.
    open_page.allow(r"Unexpected response code: 403|status of 403 \(Forbidden\) at .*/api/scheduling/events/")
    appointment = in_thread(make_appointment, "pending", therapist)

    bea = open_page(therapist_b, "/therapist/")
    live(bea)
    offer = bea.locator(f'#waiting-list [data-appointment-id="{appointment.id}"]')
    expect(offer).to_have_count(0)

    olga = open_page(operator, "/operator/")
    live(olga)
    expect(olga.locator("#rules summary")).to_contain_text("re-offer on")
    olga.locator("#rules summary").click()
    expect(olga.locator('#rules [data-rule="reoffer"]')).to_contain_text("up to 3 automatic offers")
    dialog, steps = details(olga, appointment.id)
    expect(steps).to_have_count(1)
    expect(steps.nth(0)).to_have_text(re.compile(r"^offered to Ana Cruz \d{1,2}:\d\d [AP]M by Olga Operator$"))
    expect(dialog).to_contain_text("Automatic offers: 0 of 3 made.")

    # Ana lets the deadline pass; the sweep moves the booking on while the dialog is open.
    Appointment.objects.filter(pk=appointment.pk).update(response_deadline=timezone.now() - timedelta(seconds=5))
    in_thread(workflow.sweep)

    expect(steps).to_have_count(3)
    expect(steps.nth(1)).to_have_text(re.compile(r"^timed out \d{1,2}:\d\d [AP]M$"))
    expect(steps.nth(2)).to_have_text(re.compile(r"^offered to Bea Santos \d{1,2}:\d\d [AP]M$"))
    expect(dialog).to_contain_text("Automatic offers: 1 of 3 made.")
    # The rest of the details follow too.
    expect(dialog.locator(".facts")).to_contain_text("Bea Santos")
    # (Bea's open page may add its delivered/seen receipts to the history as well.)
    expect(dialog.locator(".history li").filter(has_text="Timed out")).to_have_count(1)
    screenshot(olga, "operator-offer-chain")

    # Bea's page shows the offer by itself, with its countdown.
    expect(offer.locator(".countdown")).to_contain_text("left to answer")
    expect(offer.get_by_role("button", name="Accept", exact=True)).to_be_visible()
    screenshot(bea, "therapist-reoffer")

    # She accepts: the operator's chain says so, still without a reload.
    offer.get_by_role("button", name="Accept", exact=True).click()
    expect(steps).to_have_count(4)
    expect(steps.nth(3)).to_have_text(re.compile(r"^accepted by Bea Santos "))


def test_assign_by_hand_stops_the_chain_and_the_booking_waits_for_the_operator(
        open_page, operator, therapist, therapist_b, make_appointment):
    open_page.allow(r"Unexpected response code: 403|status of 403 \(Forbidden\) at .*/api/scheduling/events/")
    appointment = in_thread(make_appointment, "pending", therapist)
    olga = open_page(operator, "/operator/")
    live(olga)
    dialog, steps = details(olga, appointment.id)

    dialog.get_by_role("button", name="Assign by hand").click()
    expect(dialog.get_by_role("button", name="Allow automatic offers")).to_be_focused()
    expect(dialog).to_contain_text("Assign by hand: automatic offers skip this booking")
    expect(steps.nth(1)).to_have_text(re.compile(r"^assign by hand \d{1,2}:\d\d [AP]M by Olga Operator$"))

    Appointment.objects.filter(pk=appointment.pk).update(response_deadline=timezone.now() - timedelta(seconds=5))
    in_thread(workflow.sweep)

    expect(steps.nth(2)).to_have_text(re.compile(r"^timed out "))
    expect(steps.nth(3)).to_have_text("waiting for an operator: an operator assigns it by hand")
    expect(olga.locator(".bell [data-unread]")).not_to_have_text("0")
    assert Appointment.objects.get(pk=appointment.pk).therapist_id is None
