"""End to end, two people side by side: an operator and a therapist, each in their
own browser context, on a real daphne. Nothing is reloaded by hand: every change
has to reach the other page by itself."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from notifications import delivery
from notifications.models import Notification
from scheduling import workflow
from scheduling.models import Appointment

from .conftest import in_thread, screenshot

pytestmark = pytest.mark.browser


def live(page) -> None:
    expect(page.locator("#live-status")).to_have_text("Live")


def tab(page, name: str) -> None:
    page.get_by_role("navigation", name="Dashboard sections").get_by_role("link", name=re.compile(f"^{name}")).click()


def test_book_assign_reject_deny_accept(open_page, operator, therapist, client_obj, service):
    ana = open_page(therapist, "/therapist/")
    live(ana)
    expect(ana.get_by_text("Nothing is waiting for your answer")).to_be_visible()
    olga = open_page(operator, "/operator/?tab=all")
    live(olga)
    expect(olga.get_by_text("No appointments match these filters")).to_be_visible()

    # Book through the form (a wall time in Manila, whatever the browser's zone) and
    # assign from the ranked list. It starts in 20 minutes, so it can be started below.
    starts = timezone.localtime(timezone.now() + timedelta(minutes=20)).replace(second=0, microsecond=0)
    olga.get_by_role("button", name="New appointment").click()
    booking = olga.get_by_role("dialog", name="New appointment")
    expect(booking.get_by_label("Find client")).to_be_focused()
    booking.get_by_label("Client", exact=True).select_option(str(client_obj.id))
    booking.get_by_label("Service").select_option(str(service.id))
    booking.get_by_label("Start").fill(starts.strftime("%Y-%m-%dT%H:%M"))
    expect(booking.get_by_label("Location")).to_have_value(client_obj.address)
    booking.get_by_label("Notes (optional)").fill("Gate code 4411")
    booking.get_by_role("button", name="Create appointment").click()
    assigning = olga.get_by_role("dialog", name=re.compile(r"^Assign #\d+"))
    assigning.get_by_role("button", name="Assign to Ana Cruz").click()
    expect(assigning).to_be_hidden()
    appointment = Appointment.objects.get()
    assert appointment.starts_at == starts
    assert appointment.therapist == therapist
    row = olga.locator(f'#all-list [data-appointment-id="{appointment.id}"]')
    expect(row).to_contain_text("Ana Cruz")
    expect(row.locator(".status")).to_have_text("Pending")
    screenshot(olga, "operator-all")

    # The therapist's page shows it at once, with a countdown.
    card = ana.locator(f'#waiting-list [data-appointment-id="{appointment.id}"]')
    expect(card).to_contain_text("Maria Lopez")
    expect(card).to_contain_text("Gate code 4411")
    expect(card).to_contain_text(starts.strftime("%-I:%M"))
    expect(card.locator(".countdown")).to_contain_text("left to answer")
    expect(ana.locator('[data-count="waiting"]')).to_have_text("1")
    screenshot(ana, "therapist-waiting")

    # Reject: the modal takes focus, refuses a blank reason, Escape closes it and
    # gives focus back.
    card.get_by_role("button", name="Reject", exact=True).click()
    rejecting = ana.get_by_role("dialog", name=f"Reject #{appointment.id}?")
    reason = rejecting.get_by_label("Reason for rejecting")
    confirm = rejecting.get_by_role("button", name="Reject appointment")
    expect(reason).to_be_focused()
    expect(confirm).to_be_disabled()
    reason.fill("   ")
    expect(confirm).to_be_disabled()
    ana.keyboard.press("Escape")
    expect(rejecting).to_be_hidden()
    expect(card.get_by_role("button", name="Reject", exact=True)).to_be_focused()
    assert Appointment.objects.get().status == "pending"
    card.get_by_role("button", name="Reject", exact=True).click()
    reason.fill("Family emergency")
    expect(confirm).to_be_enabled()
    confirm.click()
    expect(rejecting).to_be_hidden()
    mine = ana.locator(f'[data-appointment-id="{appointment.id}"]')
    expect(mine).to_contain_text("You rejected this: Family emergency")
    expect(ana.get_by_text("Nothing is waiting for your answer")).to_be_visible()

    # The operator is told (toast + bell) and the Reviews tab has it, live.
    expect(olga.locator("#toasts")).to_contain_text("rejected")
    expect(olga.locator(".bell [data-unread]")).to_have_text("1")
    expect(olga.locator('[data-count="reviews"]')).to_have_text("1")
    tab(olga, "Reviews")
    expect(olga).to_have_url(re.compile(r"\?tab=reviews$"))
    expect(olga).to_have_title(re.compile("^Reviews"))
    review = olga.locator(f'#reviews-list [data-appointment-id="{appointment.id}"]')
    expect(review).to_contain_text("Family emergency")
    expect(review).to_contain_text("Ana Cruz")
    screenshot(olga, "operator-reviews")

    review.get_by_role("button", name="Deny rejection").click()
    denying = olga.get_by_role("dialog", name=f"Deny the rejection of #{appointment.id}?")
    denying.get_by_label("Note to Ana Cruz").fill("Nobody else is free, please take it.")
    denying.get_by_role("button", name="Deny rejection").click()
    expect(denying).to_be_hidden()
    expect(olga.get_by_text("No rejections are waiting")).to_be_visible()
    expect(olga.locator('[data-count="reviews"]')).to_have_text("0")

    # Back with the therapist, with the note and a fresh countdown.
    back = ana.locator(f'#waiting-list [data-appointment-id="{appointment.id}"]')
    expect(back).to_contain_text("Operator’s note: Nobody else is free, please take it.")
    expect(back.locator(".countdown")).to_contain_text("left to answer")
    expect(ana.locator("#toasts")).to_contain_text("was denied")

    # The operator watches the list while the therapist accepts.
    tab(olga, "All appointments")
    expect(row.locator(".status")).to_have_text("Pending")
    back.get_by_role("button", name="Accept", exact=True).click()
    expect(mine.locator(".status")).to_have_text("Confirmed")
    expect(mine.get_by_role("button", name="Start session")).to_be_visible()
    expect(row.locator(".status")).to_have_text("Confirmed")

    # The full history, oldest first.
    row.get_by_role("button", name=re.compile("^Details")).click()
    details = olga.get_by_role("dialog", name=f"Appointment #{appointment.id}")
    history = details.locator(".history li")
    expect(history).to_have_count(7)
    expect(history.nth(0)).to_contain_text("Booked")
    # Ana's page reported the offer arriving and on screen; the denied rejection
    # continued that offer (no new receipts).
    expect(history.nth(2)).to_contain_text("Offer delivered to the therapist")
    expect(history.nth(3)).to_contain_text("Offer seen by the therapist")
    expect(history.nth(4)).to_contain_text("Reason: Family emergency")
    expect(history.nth(5)).to_contain_text("Rejection denied")
    expect(history.nth(6)).to_contain_text("Accepted · ")
    details.get_by_role("button", name="Close").click()
    expect(details).to_be_hidden()

    # The therapist runs the session; completing it asks first.
    mine.get_by_role("button", name="Start session").click()
    expect(mine.locator(".status")).to_have_text("In progress")
    mine.get_by_role("button", name="Complete session").click()
    completing = ana.get_by_role("dialog", name="Complete the session with Maria Lopez?")
    completing.get_by_role("button", name="Complete session").click()
    expect(completing).to_be_hidden()
    expect(ana.locator(f'#history-list [data-appointment-id="{appointment.id}"] .status')).to_have_text("Completed")
    expect(row.locator(".status")).to_have_text("Completed")
    screenshot(ana, "therapist-history")


def test_sweep_cancels_overdue_and_disables_the_therapist(open_page, operator, therapist, make_appointment):
    # Should the therapist's socket happen to be reconnecting at the moment of the
    # disable, the server refuses the handshake and the feed (403) and the browser
    # logs that; the page then reloads into the notice all the same.
    open_page.allow(r"Unexpected response code: 403|status of 403 \(Forbidden\) at .*/api/scheduling/events/")
    appointment = in_thread(make_appointment, "pending", therapist)
    # Reads never change state: past its deadline it stays pending until a sweep.
    Appointment.objects.filter(pk=appointment.pk).update(response_deadline=timezone.now() - timedelta(seconds=5))

    ana = open_page(therapist, "/therapist/")
    live(ana)
    card = ana.locator(f'#waiting-list [data-appointment-id="{appointment.id}"]')
    expect(card.locator(".countdown")).to_contain_text("Overdue by")
    expect(card.locator(".countdown")).to_have_class(re.compile(r"\bcd-overdue\b"))

    olga = open_page(operator, "/operator/?tab=timeouts")
    live(olga)
    waiting = olga.locator(f'#timeouts-list [data-appointment-id="{appointment.id}"]')
    expect(waiting).to_contain_text("Ana Cruz")
    expect(waiting.locator(".countdown")).to_have_class(re.compile(r"\bcd-overdue\b"))
    expect(olga.locator('[data-count="timeouts"]')).to_have_text("1")
    expect(olga.get_by_text("Every therapist is active")).to_be_visible()
    screenshot(olga, "operator-timeouts")

    olga.get_by_role("button", name="Run sweep now").click()
    expect(olga.locator("#sweep-result")).to_contain_text("Timed out: 1 · Therapists disabled: 1")
    expect(waiting).to_be_hidden()
    expect(olga.get_by_text("No therapist owes an answer right now")).to_be_visible()
    expect(olga.locator('[data-count="timeouts"]')).to_have_text("0")
    disabled = olga.locator("#disabled-list article", has_text="Ana Cruz")
    expect(disabled).to_contain_text(f"No response to appointment #{appointment.id}")

    # The socket was closed with 4403: the therapist page reloaded into the notice.
    expect(ana.get_by_role("heading", name="Your account is disabled")).to_be_visible()
    expect(ana.locator("#disabled-notice")).to_contain_text(f"No response to appointment #{appointment.id}")
    expect(ana.locator(f'[data-appointment-id="{appointment.id}"] .status')).to_have_text("Cancelled")
    expect(ana.locator("#live-status")).to_have_count(0)
    screenshot(ana, "therapist-disabled")

    tab(olga, "All appointments")
    expect(olga.locator(f'#all-list [data-appointment-id="{appointment.id}"] .status')).to_have_text("Cancelled")
    tab(olga, "Timeouts")
    disabled.get_by_role("button", name="Enable Ana Cruz").click()
    enabling = olga.get_by_role("dialog", name="Enable Ana Cruz?")
    enabling.get_by_label("Note (optional)").fill("Phone was off; talked it through.")
    enabling.get_by_role("button", name="Enable therapist").click()
    expect(enabling).to_be_hidden()
    expect(olga.get_by_text("Every therapist is active")).to_be_visible()

    ana.get_by_role("link", name="Check again").click()
    expect(ana.get_by_role("heading", name="My appointments")).to_be_visible()
    live(ana)
    expect(ana.locator(f'#history-list [data-appointment-id="{appointment.id}"]')).to_contain_text(
        "No response before the deadline")


def test_accepted_rejection_leaves_the_therapist_and_goes_to_someone_else(
        open_page, operator, therapist, therapist_b, make_appointment):
    appointment = in_thread(make_appointment, "rejected", therapist)
    ana = open_page(therapist, "/therapist/")
    live(ana)
    mine = ana.locator(f'[data-appointment-id="{appointment.id}"]')
    expect(mine).to_contain_text("You rejected this: Family emergency")

    olga = open_page(operator, "/operator/")
    live(olga)
    review = olga.locator(f'#reviews-list [data-appointment-id="{appointment.id}"]')
    review.get_by_role("button", name="Accept rejection").click()
    accepting = olga.get_by_role("dialog", name=f"Accept the rejection of #{appointment.id}?")
    accepting.get_by_role("button", name="Accept rejection").click()
    expect(accepting).to_be_hidden()
    expect(olga.locator('[data-count="unassigned"]')).to_contain_text("1 to assign")

    # It is no longer Ana's: it leaves her page without a reload.
    expect(mine).to_have_count(0)

    # Back in the queue, the assign dialog is offered at once (closed here, opened
    # again from the list); only Bea is offered (Ana's rejection was accepted).
    offered = olga.get_by_role("dialog", name=f"Assign #{appointment.id}")
    expect(offered.get_by_role("button", name="Assign to Bea Santos")).to_be_focused()
    offered.get_by_role("button", name="Close").click()
    expect(offered).to_be_hidden()
    tab(olga, "All appointments")
    row = olga.locator(f'#all-list [data-appointment-id="{appointment.id}"]')
    expect(row).to_contain_text("Unassigned")
    row.get_by_role("button", name=re.compile("^Assign")).click()
    assigning = olga.get_by_role("dialog", name=f"Assign #{appointment.id}")
    expect(assigning.get_by_role("button", name="Assign to Bea Santos")).to_be_focused()
    expect(assigning.get_by_role("button", name=re.compile("^Assign to"))).to_have_count(1)
    screenshot(olga, "operator-assign-dialog")
    assigning.get_by_role("button", name="Assign to Bea Santos").click()
    expect(assigning).to_be_hidden()
    expect(row).to_contain_text("Bea Santos")
    expect(olga.locator('[data-count="unassigned"]')).to_contain_text("0 to assign")
    expect(olga.locator('[data-count="timeouts"]')).to_have_text("1")

    # Cancelling asks for a reason first.
    row.get_by_role("button", name=re.compile("^Cancel")).click()
    cancelling = olga.get_by_role("dialog", name=f"Cancel #{appointment.id}?")
    expect(cancelling.get_by_role("button", name="Cancel appointment")).to_be_disabled()
    cancelling.get_by_label("Reason for cancelling").fill("Client is unwell")
    cancelling.get_by_role("button", name="Cancel appointment").click()
    expect(row.locator(".status")).to_have_text("Cancelled")
    expect(olga.locator('[data-count="timeouts"]')).to_have_text("0")


def test_the_bell_says_99_plus_from_the_cap_on_and_counts_again_below_it(
        open_page, operator, therapist, make_appointment):
    appointment = in_thread(make_appointment, "pending", therapist)
    now = timezone.now()
    in_thread(Notification.objects.bulk_create, [
        Notification(recipient=operator, kind="timeouts", message=f"Old news #{i}", created_at=now - timedelta(hours=1))
        for i in range(delivery.UNREAD_CAP)])
    olga = open_page(operator, "/operator/?tab=notifications")
    live(olga)
    bell = olga.locator(".bell")
    expect(bell.locator("[data-unread]")).to_have_text("99+")
    expect(bell).to_have_attribute("title", "99+ unread notifications")
    expect(olga.locator('[data-tab="notifications"] [data-unread]').last).to_have_text("99+")

    # One read: below the cap the bell counts exactly.
    olga.get_by_role("button", name=re.compile("^Mark read")).first.click()
    expect(bell.locator("[data-unread]")).to_have_text("99")
    expect(bell).to_have_attribute("title", "99 unread notifications")

    # A rejection arrives live: at the cap again.
    in_thread(workflow.reject, actor=therapist, appointment_id=appointment.id, reason="Car broke down")
    expect(olga.locator("#toasts")).to_contain_text("Car broke down")
    expect(bell.locator("[data-unread]")).to_have_text("99+")
