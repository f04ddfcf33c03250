"""The operators' day board in a real browser on a real daphne: the board draws the
day, a reassign from it reaches the new therapist's page (and leaves the old
one's) live, a reschedule and a booking from free time work from it, the
disabled therapists' jobs move with one click, and the therapist sees their
week. Every page fails the test on any console error (see conftest)."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from scheduling import workflow
from scheduling.models import Appointment

from .conftest import PHONE, in_thread, screenshot

pytestmark = pytest.mark.browser


def live(page) -> None:
    expect(page.locator("#live-status")).to_have_text("Live")


def local_date(appointment) -> str:
    return timezone.localtime(appointment.starts_at).date().isoformat()


def row(page, therapist):
    return page.locator(f'.db-row[data-therapist-id="{therapist.id}"]')


def block(page, appointment):
    return page.locator(f'.db-block[data-appointment-id="{appointment.id}"]')


def no_sideways_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width}px wide on a {PHONE['width']}px screen"


def test_reassign_from_the_board_reaches_the_new_therapist_live(open_page, operator, therapist, therapist_b,
                                                                make_appointment):
    offer = in_thread(make_appointment, "pending", therapist, starts_in=timedelta(hours=2))
    # Same business day as the offer, so the board shows both.
    waiting = in_thread(make_appointment, "pending", starts_in=timedelta(hours=2, minutes=30))
    day = local_date(offer)
    if local_date(waiting) != day:
        waiting = in_thread(make_appointment, "pending", starts_in=timedelta(hours=1, minutes=30))

    ana = open_page(therapist, "/therapist/")
    bea = open_page(therapist_b, "/therapist/")
    olga = open_page(operator, f"/operator/?tab=day&date={day}")
    for page in (ana, bea, olga):
        live(page)
    expect(olga).to_have_title(re.compile("^Day board"))
    expect(olga.locator(".db-title")).to_contain_text(timezone.localtime(offer.starts_at).strftime("%B %-d"))
    expect(row(olga, therapist)).to_contain_text("Ana Cruz")
    expect(row(olga, therapist_b)).to_contain_text("Bea Santos")
    # The offer sits in Ana's row with its countdown; the unassigned booking waits in the tray.
    ana_block = row(olga, therapist).locator(f'[data-appointment-id="{offer.id}"]')
    expect(ana_block).to_have_class(re.compile(r"\bstatus-pending\b"))
    expect(ana_block.locator(".countdown")).to_contain_text("left to answer")
    expect(olga.locator(f'.db-tray [data-appointment-id="{waiting.id}"]')).to_contain_text("Maria Lopez")
    expect(olga.locator('[data-db-count="unassigned"]')).to_have_text("1")
    expect(row(olga, therapist).locator(".db-avail")).to_have_count(1)
    expect(row(olga, therapist).locator(".db-buffer")).not_to_have_count(0)
    expect(bea.get_by_text("Nothing is waiting for your answer")).to_be_visible()
    screenshot(olga, "day-board")

    # Ana is silent: take the job from her and offer it to Bea, from the board.
    ana_block.get_by_role("button").click()
    details = olga.get_by_role("dialog", name=f"Appointment #{offer.id}")
    expect(details).to_contain_text("Ana Cruz")
    details.get_by_role("button", name="Reassign").click()
    reassigning = olga.get_by_role("dialog", name=f"Reassign #{offer.id}")
    reassigning.get_by_role("button", name="Reassign to Bea Santos").click()
    expect(reassigning.get_by_role("alert")).to_contain_text("Give a reason")
    reassigning.get_by_label("Reason for reassigning").fill("Ana is not answering her phone")
    reassigning.get_by_role("button", name="Reassign to Bea Santos").click()
    expect(reassigning).to_be_hidden()
    expect(olga.locator("#toasts")).to_contain_text(f"#{offer.id} offered to Bea Santos")

    # Live everywhere: Bea has the offer with a countdown, Ana's card is gone and she is told.
    card = bea.locator(f'#waiting-list [data-appointment-id="{offer.id}"]')
    expect(card.locator(".countdown")).to_contain_text("left to answer")
    expect(bea.locator("#toasts")).to_contain_text(f"New appointment #{offer.id}")
    expect(ana.locator(f'[data-appointment-id="{offer.id}"]')).to_have_count(0)
    expect(ana.locator("#toasts")).to_contain_text("no longer yours")
    expect(row(olga, therapist_b).locator(f'[data-appointment-id="{offer.id}"]')).to_be_visible()
    expect(row(olga, therapist).locator(f'[data-appointment-id="{offer.id}"]')).to_have_count(0)
    assert Appointment.objects.get(pk=offer.pk).therapist_id == therapist_b.id

    # Bea accepts on her page: the board follows.
    card.get_by_role("button", name="Accept", exact=True).click()
    expect(block(olga, offer)).to_have_class(re.compile(r"\bstatus-confirmed\b"))
    screenshot(olga, "day-board-after-reassign")

    # The same board on a phone: the rows stack, nothing scrolls sideways.
    phone = open_page(operator, f"/operator/?tab=day&date={day}", viewport=PHONE)
    expect(block(phone, offer)).to_be_visible()
    expect(phone.get_by_role("button", name="Previous day")).to_be_visible()
    rows = phone.locator(".db-row")
    first, second = rows.nth(0).bounding_box(), rows.nth(1).bounding_box()
    assert second["y"] >= first["y"] + first["height"] - 1, "the rows stack on a phone"
    no_sideways_scroll(phone)
    screenshot(phone, "day-board-phone")


def test_reschedule_and_book_from_the_board(open_page, operator, therapist, therapist_b, make_appointment,
                                            client_obj, service):
    # Tomorrow mid-morning: every time below stays inside one local day, whatever the clock says now.
    ten_tomorrow = (timezone.localtime() + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    job = in_thread(make_appointment, "confirmed", therapist, starts_in=ten_tomorrow - timezone.now())
    day = local_date(job)
    olga = open_page(operator, f"/operator/?tab=day&date={day}")
    live(olga)

    # The client moves their time by an hour: Ana can take it, so she must accept again.
    block(olga, job).get_by_role("button").click()
    olga.get_by_role("dialog", name=f"Appointment #{job.id}").get_by_role("button", name="Reschedule").click()
    moving = olga.get_by_role("dialog", name=f"Reschedule #{job.id}")
    new_start = timezone.localtime(job.starts_at + timedelta(hours=1)).replace(second=0, microsecond=0)
    moving.get_by_label("New start").fill(new_start.strftime("%Y-%m-%dT%H:%M"))
    moving.get_by_label("Reason (optional)").fill("Client is running late")
    moving.get_by_role("button", name="Reschedule").click()
    expect(moving).to_be_hidden()
    expect(olga.locator("#toasts")).to_contain_text("Ana Cruz must accept the new time")
    expect(block(olga, job)).to_have_class(re.compile(r"\bstatus-pending\b"))
    expect(block(olga, job)).to_contain_text(new_start.strftime("%-I:%M"))
    job.refresh_from_db()
    assert (job.starts_at, job.status, job.therapist_id) == (new_start, "pending", therapist.id)

    # Free time in Bea's row books with her.
    track = row(olga, therapist_b).locator(".db-track")
    box = track.bounding_box()
    track.click(position={"x": box["width"] * 0.9, "y": box["height"] / 2})
    booking = olga.get_by_role("dialog", name="Book with Bea Santos")
    expect(booking.get_by_label("Start")).to_have_value(re.compile(rf"^{day}T"))
    booking.get_by_label("Client", exact=True).select_option(str(client_obj.id))
    expect(booking.get_by_label("Service")).to_have_value(str(service.id))
    start = timezone.localtime(job.starts_at + timedelta(hours=2)).replace(second=0, microsecond=0)
    booking.get_by_label("Start").fill(start.strftime("%Y-%m-%dT%H:%M"))
    expect(booking.get_by_label("Location")).to_have_value(client_obj.address)
    booking.get_by_role("button", name="Book with Bea Santos").click()
    expect(booking).to_be_hidden()
    booked = Appointment.objects.exclude(pk=job.pk).get()
    assert (booked.therapist_id, booked.starts_at, booked.status) == (therapist_b.id, start, "pending")
    if local_date(booked) == day:
        expect(row(olga, therapist_b).locator(f'[data-appointment-id="{booked.id}"]')).to_be_visible()

    # Prev/next day and "today" move the board and its address.
    olga.get_by_role("button", name="Next day").click()
    expect(olga).to_have_url(re.compile(r"date=\d{4}-\d{2}-\d{2}"))
    expect(block(olga, job)).to_have_count(0)
    olga.get_by_role("button", name="Previous day").click()
    expect(olga).to_have_url(re.compile(rf"date={day}"))
    expect(block(olga, job)).to_be_visible()
    olga.get_by_role("button", name="Next day").click()
    olga.get_by_role("button", name="Today").click()
    expect(olga.get_by_role("button", name="Today")).to_be_disabled()
    expect(olga.locator(".db-title")).to_contain_text("(today)")


def test_a_disabled_therapists_jobs_move_with_one_click(open_page, operator, therapist, therapist_b,
                                                       make_appointment):
    first = in_thread(make_appointment, "confirmed", therapist, starts_in=timedelta(hours=3))
    second = in_thread(make_appointment, "pending", therapist, starts_in=timedelta(hours=6))
    therapist.is_active = False
    therapist.disabled_at = timezone.now()
    therapist.disabled_reason = "No response to appointment #1 by 10:00"
    therapist.save(update_fields=["is_active", "disabled_at", "disabled_reason"])

    bea = open_page(therapist_b, "/therapist/")
    olga = open_page(operator, "/operator/?tab=timeouts")
    live(olga)
    live(bea)
    group = olga.get_by_role("region", name="Ana Cruz · 2 jobs")
    expect(group.locator(f'[data-appointment-id="{first.id}"]')).to_contain_text("Confirmed")
    screenshot(olga, "disabled-jobs")

    group.get_by_role("button", name=f"Reassign to best #{first.id}").click()
    expect(olga.locator("#toasts")).to_contain_text(f"#{first.id} offered to Bea Santos")
    expect(bea.locator(f'#waiting-list [data-appointment-id="{first.id}"]')).to_be_visible()
    expect(olga.get_by_role("region", name="Ana Cruz · 1 job")).to_be_visible()

    olga.get_by_role("button", name=f"To the queue #{second.id}").click()
    expect(olga.locator("#toasts")).to_contain_text(f"#{second.id} is back in the queue")
    expect(olga.locator("#disabled-jobs")).to_be_hidden()
    assert Appointment.objects.get(pk=second.pk).therapist_id is None


def test_the_therapist_sees_their_week_with_travel_gaps(open_page, operator, therapist, make_appointment):
    first = in_thread(make_appointment, "confirmed", therapist, starts_in=timedelta(hours=2))
    # 45 minutes after the first ends, across town (the travel buffer asks for 30).
    second = in_thread(make_appointment, "pending", therapist, starts_in=timedelta(hours=3, minutes=45),
                       location="99 Ayala Ave, Makati")
    later = in_thread(make_appointment, "confirmed", therapist, starts_in=timedelta(hours=40))
    ana = open_page(therapist, "/therapist/", viewport=PHONE)
    live(ana)
    week = ana.get_by_role("region", name="My week")
    expect(week.locator(f'[data-week-appointment="{first.id}"]')).to_contain_text("12 Mabini St, Makati")
    expect(week.locator(f'[data-week-appointment="{later.id}"]')).to_be_visible()
    if local_date(first) == local_date(second):
        gap = week.locator(".wk-travel")
        expect(gap).to_contain_text("45 min to travel to 99 Ayala Ave, Makati")
        expect(gap).not_to_have_class(re.compile(r"\bis-short\b"))
    no_sideways_scroll(ana)
    screenshot(ana, "therapist-week")

    # Live: a reschedule by the operator moves it in the week too.
    moved = second.starts_at + timedelta(days=1)
    in_thread(workflow.reschedule, actor=operator, appointment_id=second.id, starts_at=moved)
    expect(week.locator(f'[data-day="{local_date(Appointment.objects.get(pk=second.pk))}"] '
                        f'[data-week-appointment="{second.id}"]')).to_be_visible()
