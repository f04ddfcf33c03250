"""Rails on the therapist's page: an answer that comes too late explains itself
instead of failing with a puzzle, and a session is started only in its window and
completed only after a confirmation."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import User
from scheduling.models import Appointment

from .conftest import in_thread, screenshot

pytestmark = pytest.mark.browser


def live(page) -> None:
    expect(page.locator("#live-status")).to_have_text("Live")


def test_a_late_answer_is_not_offered_and_a_disabled_account_says_why_at_once(open_page, therapist, make_appointment):
    open_page.allow(r"status of 403 \(Forbidden\)")  # the refused Accept, as the browser logs it
    soon_due = in_thread(make_appointment, "pending", therapist, starts_in=timedelta(hours=3))
    overdue = in_thread(make_appointment, "pending", therapist, starts_in=timedelta(hours=5))
    open_one = in_thread(make_appointment, "pending", therapist, starts_in=timedelta(hours=8))
    now = timezone.now()
    # Reads never change state: past their deadline these stay pending until a sweep or a write.
    Appointment.objects.filter(pk=overdue.pk).update(response_deadline=now - timedelta(seconds=5))
    Appointment.objects.filter(pk=soon_due.pk).update(response_deadline=now + timedelta(seconds=12))

    ana = open_page(therapist, "/therapist/")
    live(ana)

    # Before the deadline the card says what missing it costs.
    waiting = ana.locator(f'[data-appointment-id="{open_one.id}"]')
    expect(waiting.get_by_role("button", name="Accept", exact=True)).to_be_visible()
    expect(waiting.locator(".warning")).to_have_text(
        "If you do not answer in time, the booking is cancelled and your account is disabled until an operator "
        "re-enables it.")
    # "answer by 4:28 PM", with the date when the deadline is not today.
    when = r"([A-Z][a-z]{2}, [A-Z][a-z]{2} \d{1,2}, )?\d{1,2}:\d\d [AP]M"
    expect(waiting).to_contain_text(re.compile(f"answer by {when}"))

    # Past it: no Accept or Reject, and the reason.
    late = ana.locator(f'[data-appointment-id="{overdue.id}"]')
    expect(late.locator(".countdown")).to_contain_text("Overdue by")
    expect(late).to_contain_text("Answer time passed.")
    expect(late.get_by_role("button")).to_have_count(0)

    # A deadline that passes while the page is open takes the buttons away then and there.
    due = ana.locator(f'[data-appointment-id="{soon_due.id}"]')
    expect(due.get_by_role("button", name="Accept", exact=True)).to_be_visible()
    expect(due.get_by_role("button", name="Accept", exact=True)).to_have_count(0, timeout=20_000)
    expect(due).to_contain_text("Answer time passed.")
    screenshot(ana, "therapist-late-answer")

    # Disabled behind the page's back (no socket message): the next call is refused
    # with account_disabled and the page switches to the disabled view at once.
    User.objects.filter(pk=therapist.pk).update(
        is_active=False, disabled_at=timezone.now(),
        disabled_reason=f"No response to appointment #{overdue.id} by an earlier deadline")
    waiting.get_by_role("button", name="Accept", exact=True).click()
    expect(ana.get_by_role("heading", name="Your account is disabled")).to_be_visible()
    expect(ana.locator("#disabled-notice")).to_contain_text(f"No response to appointment #{overdue.id}")
    assert Appointment.objects.get(pk=open_one.pk).status == "pending"


def test_start_only_in_its_window_and_complete_after_a_confirmation(open_page, therapist, make_appointment):
    tomorrow = in_thread(make_appointment, "confirmed", therapist, starts_in=timedelta(days=1))
    opening = in_thread(make_appointment, "confirmed", therapist, starts_in=timedelta(minutes=30, seconds=8))
    ana = open_page(therapist, "/therapist/")
    live(ana)

    # Tomorrow's booking: no Start, but when it can be started, with its date.
    later = ana.locator(f'[data-appointment-id="{tomorrow.id}"]')
    opens = timezone.localtime(tomorrow.starts_at - timedelta(minutes=30))
    expect(later).to_contain_text(f"You can start this session from {opens:%a}, {opens:%b} {opens.day}, "
                                  f"{opens.hour % 12 or 12}:{opens:%M} {'AM' if opens.hour < 12 else 'PM'}")
    expect(later.get_by_role("button", name="Start session")).to_have_count(0)

    # The window opens 30 minutes before the start, while the page is open.
    soon = ana.locator(f'[data-appointment-id="{opening.id}"]')
    expect(soon).to_contain_text("You can start this session from")
    start = soon.get_by_role("button", name="Start session")
    expect(start).to_have_count(0)
    expect(start).to_be_visible(timeout=20_000)
    start.click()
    expect(soon.locator(".status")).to_have_text("In progress")

    # Complete asks first; "Not yet" (or Escape) changes nothing.
    soon.get_by_role("button", name="Complete session").click()
    confirming = ana.get_by_role("dialog", name="Complete the session with Maria Lopez?")
    expect(confirming.get_by_role("button", name="Not yet")).to_be_focused()
    confirming.get_by_role("button", name="Not yet").click()
    expect(confirming).to_be_hidden()
    expect(soon.get_by_role("button", name="Complete session")).to_be_focused()
    assert Appointment.objects.get(pk=opening.pk).status == "in_progress"
    soon.get_by_role("button", name="Complete session").click()
    confirming.get_by_role("button", name="Complete session").click()
    expect(confirming).to_be_hidden()
    expect(ana.locator(f'#history-list [data-appointment-id="{opening.id}"] .status')).to_have_text("Completed")
    assert Appointment.objects.get(pk=opening.pk).status == "completed"
    screenshot(ana, "therapist-completed")
