"""What an operator needs on a busy day: the therapist's phone where a call is the
obvious move, notifications that lead to their appointment, reviews in the order
they must be settled, and a list that reads as a table."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import User
from notifications.models import Notification
from scheduling import workflow

from .conftest import in_thread, screenshot

pytestmark = pytest.mark.browser


def live(page) -> None:
    expect(page.locator("#live-status")).to_have_text("Live")


def test_operator_calls_the_therapist_from_a_timeouts_card_and_from_the_details(
        open_page, operator, therapist, make_appointment):
    User.objects.filter(pk=therapist.pk).update(phone="+63 917 000 1111")
    appointment = in_thread(make_appointment, "pending", therapist)
    olga = open_page(operator, "/operator/?tab=timeouts")
    live(olga)
    card = olga.locator(f'#timeouts-list [data-appointment-id="{appointment.id}"]')
    call = card.get_by_role("link", name="Call Ana Cruz at +63 917 000 1111")
    expect(call).to_have_attribute("href", "tel:+639170001111")
    expect(card).to_contain_text("+63 917 000 1111")

    card.get_by_role("button", name="Details").click()
    details = olga.get_by_role("dialog", name=f"Appointment #{appointment.id}")
    expect(details.get_by_role("link", name="+63 917 000 1111")).to_have_attribute("href", "tel:+639170001111")
    expect(details.get_by_role("link", name="+63 917 555 0101")).to_have_attribute("href", "tel:+639175550101")
    screenshot(olga, "operator-call-therapist")


def test_notifications_lead_to_their_appointments(open_page, operator, therapist, therapist_b, make_appointment):
    first = in_thread(make_appointment, "pending", therapist, starts_in=timedelta(hours=3))
    second = in_thread(make_appointment, "pending", therapist_b, starts_in=timedelta(hours=4))
    # A digest names its appointments by "#id" and belongs to none of them.
    Notification.objects.create(
        recipient=operator, kind="timeouts", appointment=None, created_at=timezone.now(),
        message=f"2 appointments cancelled without a response: #{first.id}, #{second.id}; 2 therapists disabled")
    olga = open_page(operator, "/operator/?tab=notifications")
    live(olga)
    # The list has loaded (a notification it already lists is not toasted again).
    expect(olga.locator("[data-notification-list] li", has_text="cancelled without a response")).to_be_visible()

    # A live one: its toast and its list item both open the appointment.
    in_thread(workflow.reject, actor=therapist, appointment_id=first.id, reason="Flat tyre")
    toast_link = olga.locator("#toasts a", has_text=f"rejected #{first.id}")
    expect(toast_link).to_have_attribute("href", f"/operator/?tab=all&appointment={first.id}")
    item = olga.locator("[data-notification-list] li", has_text=f"rejected #{first.id}")
    item.get_by_role("link", name=re.compile(f"rejected #{first.id}")).click()
    details = olga.get_by_role("dialog", name=f"Appointment #{first.id}")
    expect(details).to_contain_text("Flat tyre")
    details.get_by_role("button", name="Close").click()

    # The digest: each #id is a link of its own.
    digest = olga.locator("[data-notification-list] li", has_text="cancelled without a response")
    expect(digest.get_by_role("link")).to_have_count(2)
    digest.get_by_role("link", name=f"#{second.id}", exact=True).click()
    expect(olga.get_by_role("dialog", name=f"Appointment #{second.id}")).to_contain_text("Bea Santos")
    screenshot(olga, "operator-notification-link")

    # The link's address opens the same details on a fresh page.
    fresh = open_page(operator, f"/operator/?tab=all&appointment={second.id}")
    expect(fresh.get_by_role("dialog", name=f"Appointment #{second.id}")).to_be_visible()
    expect(fresh).to_have_url(re.compile(r"/operator/\?tab=all$"))


def test_a_notification_that_arrives_while_the_list_loads_stays_listed(open_page, operator, therapist,
                                                                         make_appointment):
    """The list's first page was read before the rejection and reaches the page
    after the socket brought the rejection: the rejection stays listed, unread,
    with the count that came with it."""
    appt = in_thread(make_appointment, "pending", therapist, starts_in=timedelta(hours=3))
    Notification.objects.create(recipient=operator, kind="system", appointment=None, created_at=timezone.now(),
                                message="An older note")
    held = []

    def hold(route):
        held.append((route, route.fetch()))  # read now, delivered later

    olga = open_page(operator, "/operator/?tab=notifications", before=lambda page: page.route(
        re.compile(r"/api/notifications/\?page_size=50&page=1$"), hold))
    live(olga)
    in_thread(workflow.reject, actor=therapist, appointment_id=appt.id, reason="Flat tyre")
    expect(olga.locator("#toasts a", has_text=f"rejected #{appt.id}")).to_be_visible()
    route, stale = held.pop()
    route.fulfill(response=stale)
    listed = olga.locator("[data-notification-list] li")
    expect(listed.filter(has_text="An older note")).to_be_visible()
    # Drawn together with the stale page, not brought back later by a catch-up.
    assert listed.filter(has_text=f"rejected #{appt.id}").count() == 1
    expect(listed.filter(has_text=f"rejected #{appt.id}")).to_contain_text("Unread")
    expect(olga.get_by_role("link", name="Notifications 2").first).to_be_visible()


def test_a_therapists_notification_brings_its_card_into_view(open_page, therapist, make_appointment):
    for hours in range(3, 13, 2):  # enough cards to scroll
        in_thread(make_appointment, "confirmed", therapist, starts_in=timedelta(hours=hours, minutes=10))
    ana = open_page(therapist, "/therapist/")
    live(ana)
    appointment = in_thread(make_appointment, "pending", therapist, starts_in=timedelta(hours=30))
    ana.get_by_role("button", name=re.compile("Notifications")).click()
    link = ana.locator("[data-notification-list] a", has_text=f"New appointment #{appointment.id}")
    expect(link).to_have_attribute("href", f"#appointment-{appointment.id}")
    link.click()
    card = ana.locator(f"#appointment-{appointment.id}")
    expect(card).to_be_focused()
    expect(card).to_have_class(re.compile(r"\bhighlight\b"))
    expect(card).to_be_in_viewport()


def test_reviews_soonest_first_with_how_soon_and_the_list_by_start_time_in_fixed_columns(
        open_page, operator, therapist, therapist_b, make_appointment):
    later = in_thread(make_appointment, "rejected", therapist, starts_in=timedelta(hours=20))
    sooner = in_thread(make_appointment, "rejected", therapist_b, starts_in=timedelta(minutes=50))
    unassigned = in_thread(make_appointment, "pending", starts_in=timedelta(hours=6))
    olga = open_page(operator, "/operator/")
    live(olga)

    # Reviews: the one that starts first comes first, saying how soon.
    cards = olga.locator("#reviews-list article")
    expect(cards).to_have_count(2)
    expect(cards.nth(0)).to_have_attribute("data-appointment-id", str(sooner.id))
    expect(cards.nth(0).locator(".starts-in")).to_have_text(re.compile(r"^Starts in (49|50) min$"))
    expect(cards.nth(0).locator(".starts-in")).to_have_class(re.compile(r"\bsoon\b"))
    expect(cards.nth(1).locator(".starts-in")).to_have_text(re.compile(r"^Starts in (19|20) h( \d+ min)?$"))

    # The All tab's badge says what it counts; the list runs by start time, latest first.
    badge = olga.locator('[data-count="unassigned"]')
    expect(badge).to_have_text("1 to assign")
    olga.get_by_role("link", name=re.compile("^All appointments")).click()
    rows = olga.locator("#all-list .row")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_have_attribute("data-appointment-id", str(later.id))
    expect(rows.nth(1)).to_have_attribute("data-appointment-id", str(unassigned.id))
    expect(rows.nth(2)).to_have_attribute("data-appointment-id", str(sooner.id))

    # Rows with different buttons keep the same columns.
    lefts = olga.evaluate("""() => [...document.querySelectorAll('#all-list .row')].map(
        (row) => [...row.children].map((cell) => Math.round(cell.getBoundingClientRect().left)))""")
    assert all(columns == lefts[0] for columns in lefts), lefts

    # The ranked list says what "best match" means.
    rows.nth(1).get_by_role("button", name=re.compile("^Assign")).click()
    assigning = olga.get_by_role("dialog", name=f"Assign #{unassigned.id}")
    expect(assigning).to_contain_text("The best match comes first: the fewest appointments that day, then the "
                                      "longest since their last one")
    screenshot(olga, "operator-assign-explained")


def test_a_rejection_one_operator_reviews_is_handled_on_every_operators_page(
        open_page, operator, operator2, therapist, make_appointment):
    appointment = in_thread(make_appointment, "pending", therapist)
    oscar = open_page(operator2, "/operator/?tab=notifications")
    live(oscar)
    # The list has loaded (a notification it already lists is not toasted again).
    expect(oscar.locator("[data-notification-empty]")).to_be_visible()
    bell = oscar.locator(".bell [data-unread]")
    in_thread(workflow.reject, actor=therapist, appointment_id=appointment.id, reason="Flat tyre")
    expect(bell).to_have_text("1")
    expect(oscar.locator(".toast")).to_have_count(1)  # the rejection, once

    # Olga settles it elsewhere: Oscar's bell clears live, with no second toast.
    in_thread(workflow.review_rejection, actor=operator, appointment_id=appointment.id, decision="deny",
              note="Please go")
    expect(bell).to_be_hidden()
    assert Notification.objects.filter(recipient=operator2, kind="rejected", read_at__isnull=True).count() == 0
    expect(oscar.locator(".toast")).to_have_count(1)
