"""The Insights tab in Chromium: KPI tiles, three charts (each with a text
alternative), the sortable per-therapist table, the date presets and the CSV
link; a rejection made on the therapist's page (with a reason code from the
dialog's radio buttons) reaches the open tab by itself. And on a 375 px phone,
without sideways scrolling. The therapist sees their own month on their page."""

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from scheduling import workflow
from tests.conftest import make_therapist

from .conftest import PHONE, in_thread, screenshot
from .test_phone import assert_no_sideways_scroll

pytestmark = pytest.mark.browser


def charts_drawn(page) -> list[bool]:
    """For each chart canvas of the tab: does a Chart.js chart own it, drawn at a real size?"""
    return page.evaluate("""() => [...document.querySelectorAll('#insights-root canvas')].map((canvas) => {
        const chart = window.Chart && window.Chart.getChart(canvas);
        return !!chart && canvas.width > 0 && canvas.height > 0 && canvas.offsetParent !== null;
    })""")


def kpi(page, name: str):
    return page.locator(f'#insights-root [data-kpi="{name}"] .kpi-value')


def alt_row(page, chart: str, first_cell: str):
    """A row of a chart's visually hidden data table (its text alternative)."""
    return page.locator(f'#insights-root [data-chart="{chart}"] .chart-alt tr').filter(
        has=page.locator("th", has_text=re.compile(f"^{re.escape(first_cell)}$")))


def test_insights_tab_draws_its_charts_and_follows_a_new_rejection(open_page, operator, therapist, service,
                                                                     make_appointment):
    bea = in_thread(make_therapist, "bea", service, name="Bea Santos")
    in_thread(make_appointment, "confirmed", therapist, starts_in=timedelta(hours=2))
    far = in_thread(make_appointment, "pending", therapist, starts_in=timedelta(hours=4))
    in_thread(workflow.reject, actor=therapist, appointment_id=far.id, reason="Across the city", reason_code="too_far")
    in_thread(make_appointment, "cancelled", bea, starts_in=timedelta(hours=6))
    waiting = in_thread(make_appointment, "pending", therapist, starts_in=timedelta(hours=8))

    olga = open_page(operator, "/operator/?tab=insights")
    expect(olga.locator("#live-status")).to_have_text("Live")
    expect(olga).to_have_title(re.compile("^Insights"))
    expect(olga.locator("#insights-root")).to_have_attribute("data-loads", "1")
    expect(kpi(olga, "offers")).to_have_text("4")
    expect(kpi(olga, "acceptance")).to_have_text("25%")  # 1 of 4
    expect(kpi(olga, "timeouts")).to_have_text("0")
    expect(kpi(olga, "lost")).to_have_text("0")
    assert charts_drawn(olga) == [True, True, True]
    # Each chart says what it shows, in words and in a hidden table.
    reasons_canvas = olga.locator('#insights-root [data-chart="reasons"] canvas')
    expect(reasons_canvas).to_have_attribute("role", "img")
    expect(reasons_canvas).to_have_attribute("aria-label", re.compile(r"1 rejection by reason: Too far 1"))
    expect(alt_row(olga, "reasons", "Too far")).to_contain_text("1")
    expect(alt_row(olga, "therapists", "Ana Cruz")).to_have_count(1)
    expect(olga.locator('#insights-root [data-chart="days"] canvas')).to_have_attribute(
        "aria-label", re.compile(r"^Line chart of bookings and cancellations per day"))

    # The table sorts by any column, saying so with aria-sort.
    table = olga.get_by_role("table", name=re.compile("^Per therapist"))
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first.locator("th")).to_have_text("Ana Cruz")  # most offers first
    offers_header = table.locator("thead th").nth(1)
    expect(offers_header).to_have_attribute("aria-sort", "descending")
    table.get_by_role("button", name="Therapist").click()
    expect(table.locator("thead th").first).to_have_attribute("aria-sort", "ascending")
    expect(offers_header).to_have_attribute("aria-sort", "none")
    table.get_by_role("button", name="Therapist").click()
    expect(table.locator("thead th").first).to_have_attribute("aria-sort", "descending")
    expect(rows.first.locator("th")).to_have_text("Bea Santos")
    table.get_by_role("button", name="Offers").click()
    expect(rows.first.locator("th")).to_have_text("Ana Cruz")
    ana_row = rows.filter(has=olga.locator("th", has_text="Ana Cruz"))
    expect(ana_row.locator("td").nth(2)).to_have_text("1")  # rejected

    # The CSV link asks for the range on screen.
    csv = olga.get_by_role("link", name="Download CSV")
    expect(csv).to_have_attribute("href", re.compile(r"^/api/scheduling/insights/\?from=[\d-]{10}&to=.*format=csv"))
    expect(olga.get_by_role("button", name="Last 30 days")).to_have_attribute("aria-pressed", "true")
    screenshot(olga, "operator-insights")

    # The therapist rejects on their page, picking a reason from the dialog's radio buttons.
    ana = open_page(therapist, "/therapist/")
    expect(ana.locator("#live-status")).to_have_text("Live")
    card = ana.locator(f'#waiting-list [data-appointment-id="{waiting.id}"]')
    card.get_by_role("button", name="Reject", exact=True).click()
    dialog = ana.get_by_role("dialog", name=f"Reject #{waiting.id}?")
    expect(dialog.get_by_label("Reason for rejecting")).to_be_focused()
    choices = dialog.get_by_role("group", name="What is it about?")
    expect(choices.get_by_role("radio")).to_have_count(5)
    expect(choices.get_by_role("radio", name="Other")).to_be_checked()
    choices.get_by_role("radio", name="Health").check()
    dialog.get_by_label("Reason for rejecting").fill("Sprained wrist")
    screenshot(ana, "therapist-reject-dialog")
    dialog.get_by_role("button", name="Reject appointment").click()
    expect(dialog).to_be_hidden()
    expect(card).to_be_hidden()

    # The open Insights tab updates by itself.
    expect(alt_row(olga, "reasons", "Health")).to_contain_text("1", timeout=15_000)
    expect(reasons_canvas).to_have_attribute("aria-label", re.compile(r"2 rejections by reason"))
    expect(ana_row.locator("td").nth(2)).to_have_text("2")
    expect(kpi(olga, "offers")).to_have_text("4")
    assert charts_drawn(olga) == [True, True, True]

    # The Reviews tab shows the codes as badges.
    olga.get_by_role("navigation", name="Dashboard sections").get_by_role("link", name=re.compile("^Reviews")).click()
    review = olga.locator(f'#reviews-list [data-appointment-id="{waiting.id}"]')
    expect(review.locator(".reason-badge")).to_have_text("Health")
    expect(review).to_contain_text("Sprained wrist")

    # Presets change the range, the URL and the pressed button.
    olga.goto("/operator/?tab=insights")
    expect(olga.locator("#insights-root")).to_have_attribute("data-loads", "1")
    olga.get_by_role("button", name="Last 7 days").click()
    expect(olga.get_by_role("button", name="Last 7 days")).to_have_attribute("aria-pressed", "true")
    expect(olga.get_by_role("button", name="Last 30 days")).to_have_attribute("aria-pressed", "false")
    expect(olga.locator("#insights-root")).to_have_attribute("data-loads", "2")
    assert re.search(r"[?&]from=\d{4}-\d\d-\d\d&to=\d{4}-\d\d-\d\d", olga.url)
    assert len(olga.get_by_label("From", exact=True).input_value()) == 10

    # A range that ends before it starts is refused on the page, in words, and
    # stays refused when the figures for the range typed a moment before (From
    # alone changed) arrive after it: they are held here until then.
    held = []
    olga.route("**/api/scheduling/insights/?*", lambda route: held.append(route))
    with olga.expect_request("**/api/scheduling/insights/?*"):
        olga.get_by_label("From", exact=True).fill("2026-03-10")
    olga.get_by_label("To", exact=True).fill("2026-03-01")
    expect(olga.locator("#insights-root .error")).to_have_text("To must be on or after From.")
    with olga.expect_response("**/api/scheduling/insights/?*"):
        held.pop().continue_()
    olga.wait_for_timeout(300)  # the page's own handling of that response
    expect(olga.locator("#insights-root .error")).to_have_text("To must be on or after From.")
    expect(olga.locator("#insights-root")).to_have_attribute("data-loads", "2")
    expect(olga.locator("#insights-root")).not_to_have_attribute("aria-busy", "true")


def test_insights_fit_a_phone(open_page, operator, therapist, make_appointment):
    in_thread(make_appointment, "confirmed", therapist)
    in_thread(make_appointment, "rejected", therapist, starts_in=timedelta(hours=5))
    olga = open_page(operator, "/operator/?tab=insights", viewport=PHONE)
    expect(olga.locator("#insights-root")).to_have_attribute("data-loads", "1")
    expect(kpi(olga, "offers")).to_have_text("2")
    assert charts_drawn(olga) == [True, True, True]
    assert_no_sideways_scroll(olga)
    box = olga.locator('#insights-root [data-chart="days"] canvas').bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    screenshot(olga, "operator-phone-insights")


def test_the_therapist_sees_their_own_month(open_page, operator, therapist, therapist_b, make_appointment):
    in_thread(make_appointment, "confirmed", therapist)
    in_thread(make_appointment, "rejected", therapist, starts_in=timedelta(hours=5))
    in_thread(make_appointment, "confirmed", therapist_b, starts_in=timedelta(hours=7))
    pending = in_thread(make_appointment, "pending", therapist, starts_in=timedelta(hours=9))
    ana = open_page(therapist, "/therapist/", viewport=PHONE)
    month = ana.locator("#my-numbers")
    expect(month.locator(".kpi").first).to_contain_text("3")
    expect(month).to_contain_text("1 accepted · 1 rejected · 0 timed out")
    expect(month.locator(".kpi").nth(1)).to_contain_text("33%")
    assert_no_sideways_scroll(ana)
    # Accepting updates the figures by themselves.
    ana.locator(f'[data-appointment-id="{pending.id}"]').get_by_role("button", name="Accept", exact=True).click()
    expect(month).to_contain_text("2 accepted · 1 rejected · 0 timed out", timeout=15_000)
    screenshot(ana, "therapist-my-month")
