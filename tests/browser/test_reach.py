"""Reaching the therapist, in Chromium against a real daphne with VAPID keys:
the service worker registers at the root; a Web Push delivered to it through the
DevTools protocol shows the offer as a notification and reports `delivered`; the
page reports `seen` only while it is visible; "Turn on notifications" subscribes
the device; the calendar address is copied and rotated from the page.

The push message the worker gets is the one the server really sent: the server
pushes to a loopback endpoint playing the push service, the test decrypts it with
the device keys it made, and hands it to the worker with
`ServiceWorker.deliverPushMessage` (headless Chromium cannot reach a real push
service)."""

import json
import re
from datetime import timedelta

import pytest
import requests
from django.utils import timezone
from playwright.sync_api import expect
from rest_framework.authtoken.models import Token

from notifications.management.commands.generate_vapid_keys import new_vapid_keys
from notifications.models import PushSubscription
from scheduling import workflow
from scheduling.models import Appointment, AppointmentEvent
from tests.loopback import Device, PushService, unb64url
from tests.servers import daphne

from .conftest import in_thread, screenshot

pytestmark = pytest.mark.browser

VAPID_PUBLIC, VAPID_PRIVATE = new_vapid_keys()

# Headless Chromium always reports a visible page and the DevTools protocol has no
# command to hide one, so the test drives document.visibilityState itself (before
# any page script runs), firing visibilitychange as a browser would.
VISIBILITY = """
(() => {
  let state = 'visible';
  Object.defineProperty(Document.prototype, 'visibilityState', { configurable: true, get: () => state });
  Object.defineProperty(Document.prototype, 'hidden', { configurable: true, get: () => state !== 'visible' });
  window.setTestVisibility = (next) => { state = next; document.dispatchEvent(new Event('visibilitychange')); };
})();
"""


@pytest.fixture
def server(transactional_db, postgres, redis_url, tmp_path):
    """The browser tests' daphne, with Web Push on and allowed to call loopback."""
    with daphne(tmp_path, DJANGO_ALLOW_ASYNC_UNSAFE="", VAPID_PUBLIC_KEY=VAPID_PUBLIC, VAPID_PRIVATE_KEY=VAPID_PRIVATE,
                PUSH_ALLOW_INSECURE="1") as server:
        yield server


@pytest.fixture
def push_service():
    service = PushService().start()
    yield service
    service.stop()


def as_api(server, user):
    token, _ = Token.objects.get_or_create(user=user)
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token.key}"
    return session


def notifications_ready(page) -> None:
    """The worker is registered and holds the page's CSRF token once the button shows."""
    expect(page.get_by_role("button", name="Turn on notifications")).to_be_visible()


def worker_registration(page) -> tuple:
    """A DevTools session on the page and the id of its service worker registration
    (learnt from workerRegistrationUpdated, listened to before ServiceWorker.enable)."""
    cdp = page.context.new_cdp_session(page)
    registrations = []
    cdp.on("ServiceWorker.workerRegistrationUpdated",
           lambda event: registrations.extend(r for r in event["registrations"] if not r["isDeleted"]))
    cdp.send("ServiceWorker.enable")
    page.wait_for_function("navigator.serviceWorker.ready.then(() => true)")
    for _ in range(50):
        if registrations:
            break
        page.wait_for_timeout(100)
    assert registrations, "no service worker registration reported"
    return cdp, registrations[-1]["registrationId"]


def shown_notifications(page) -> list[dict]:
    return page.evaluate("""navigator.serviceWorker.ready
        .then((r) => r.getNotifications())
        .then((list) => list.map((n) => ({title: n.title, body: n.body, tag: n.tag, data: n.data})))""")


def test_a_push_to_the_worker_shows_the_offer_and_reports_it_delivered(
        open_page, operator, therapist, client_obj, service, push_service):
    server = open_page.server
    ana = open_page(therapist, "/therapist/")
    ana.context.grant_permissions(["notifications"], origin=server.url)
    notifications_ready(ana)
    scope = ana.evaluate("navigator.serviceWorker.ready.then((r) => r.scope)")
    assert scope == f"{server.url}/"
    manifest = ana.context.new_cdp_session(ana).send("Page.getAppManifest")
    assert manifest["url"] == f"{server.url}/manifest.webmanifest" and manifest["errors"] == []

    # Ana's phone is subscribed through the loopback push service.
    device = Device()
    api_ana = as_api(server, therapist)
    assert api_ana.post(f"{server.url}/api/notifications/push/subscriptions/",
                        json=device.subscription(push_service.endpoint("ana-phone"))).status_code == 201

    olga = open_page(operator, "/operator/?tab=timeouts")
    expect(olga.locator("#live-status")).to_have_text("Live")
    cdp, registration_id = worker_registration(ana)
    # The dashboard is closed: only the worker is left to hear about the offer.
    ana.goto("/healthz")

    appt = in_thread(workflow.create_appointment, actor=operator, client=client_obj, service=service,
                     starts_at=timezone.now() + timedelta(hours=3), location="12 Mabini St, Makati")
    assigned = as_api(server, operator).post(f"{server.url}/api/scheduling/appointments/{appt.id}/assign/",
                                             json={"therapist": therapist.id})
    assert assigned.status_code == 200, assigned.text
    assert push_service.wait_for(lambda: len(push_service.requests) == 1)
    message = device.decrypt(push_service.requests[0]["body"])

    cdp.send("ServiceWorker.deliverPushMessage", {
        "origin": server.url, "registrationId": registration_id, "data": json.dumps(message)})

    card = olga.locator(f'#timeouts-list [data-appointment-id="{appt.id}"]')
    receipts = card.locator("[data-receipts]")
    expect(receipts).to_contain_text(re.compile(r"sent \d{1,2}:\d\d [AP]M · delivered \d{1,2}:\d\d [AP]M"))
    expect(receipts).to_contain_text("not seen yet")
    expect(receipts).to_have_class(re.compile("receipts-unseen"))
    [shown] = shown_notifications(ana)
    assert shown["title"] == message["title"] and shown["title"].startswith(f"New appointment #{appt.id}")
    assert shown["body"].startswith("Maria · Swedish massage · ")
    assert shown["tag"] == f"appointment-{appt.id}"
    assert shown["data"]["url"] == f"/therapist/?appointment={appt.id}"
    event = AppointmentEvent.objects.get(appointment_id=appt.id, kind="delivered")
    assert event.actor == therapist, "the worker's receipt went with Ana's session and CSRF token"
    screenshot(olga, "operator-timeouts-delivered")

    # Tapping the notification opens /therapist/?appointment=N: the page brings that card up.
    ana.goto(shown["data"]["url"])
    expect(ana.locator(f'#waiting-list [data-appointment-id="{appt.id}"] h3')).to_be_focused()


def test_the_page_reports_seen_only_while_it_is_visible(open_page, operator, therapist, make_appointment):
    ana = open_page(therapist, "/therapist/")
    ana.context.add_init_script(VISIBILITY)
    ana.reload()
    expect(ana.locator("#live-status")).to_have_text("Live")
    receipts_posted = []
    ana.on("request", lambda request: receipts_posted.append(json.loads(request.post_data)["kind"])
           if request.method == "POST" and request.url.endswith("/receipt/") else None)
    olga = open_page(operator, "/operator/?tab=timeouts")
    expect(olga.locator("#live-status")).to_have_text("Live")

    ana.evaluate("setTestVisibility('hidden')")
    appt = in_thread(make_appointment, "pending", therapist)
    card = ana.locator(f'#waiting-list [data-appointment-id="{appt.id}"]')
    expect(card).to_be_in_viewport()
    receipts = olga.locator(f'#timeouts-list [data-appointment-id="{appt.id}"] [data-receipts]')
    expect(receipts).to_contain_text("delivered")
    expect(receipts).to_contain_text("not seen yet")
    # Two frames later the card's intersection has been reported: still no "seen".
    ana.evaluate("new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    assert receipts_posted == ["delivered"]
    assert Appointment.objects.get(pk=appt.id).offer_seen_at is None

    ana.evaluate("setTestVisibility('visible')")
    expect(receipts).to_contain_text(re.compile(r"seen \d{1,2}:\d\d [AP]M"))
    expect(receipts).not_to_contain_text("not seen yet")
    assert receipts_posted == ["delivered", "seen"]
    screenshot(olga, "operator-timeouts-seen")

    # Details show the same line, and the history names both receipts.
    card = olga.locator(f'#timeouts-list [data-appointment-id="{appt.id}"]')
    card.get_by_role("button", name="Details").click()
    details = olga.get_by_role("dialog", name=f"Appointment #{appt.id}")
    expect(details.locator("[data-receipts]")).to_contain_text("seen")
    expect(details.locator(".history")).to_contain_text("Offer seen by the therapist")


# A browser's subscription needs the browser vendor's push service, which headless
# Chromium cannot reach; the stand-in hands back a subscription to the loopback push
# service with keys the test holds, and records the key the page subscribed with.
SUBSCRIBE_STANDIN = """
window.subscribedWith = null;
PushManager.prototype.subscribe = function (options) {
  window.subscribedWith = Array.from(new Uint8Array(options.applicationServerKey));
  const json = %s;
  const subscription = { endpoint: json.endpoint, toJSON: () => json };
  PushManager.prototype.getSubscription = () => Promise.resolve(subscription);
  return Promise.resolve(subscription);
};
"""


def test_turn_on_notifications_subscribes_this_device_with_the_servers_key(
        open_page, operator, therapist, client_obj, service, push_service):
    server = open_page.server
    device = Device()
    ana = open_page(therapist, "/therapist/")
    ana.context.grant_permissions(["notifications"], origin=server.url)
    ana.context.add_init_script(SUBSCRIBE_STANDIN % json.dumps(device.subscription(push_service.endpoint("tab"))))
    ana.reload()
    button = ana.get_by_role("button", name="Turn on notifications")
    expect(button).to_be_visible()
    expect(ana.get_by_role("button", name="Turn on sound and alerts")).to_be_hidden()
    button.click()
    expect(ana.locator("#push-status")).to_have_text("Notifications are on for this device.")
    expect(button).to_be_hidden()
    assert bytes(ana.evaluate("window.subscribedWith")) == unb64url(VAPID_PUBLIC)
    subscription = PushSubscription.objects.get()
    assert (subscription.user, subscription.endpoint) == (therapist, push_service.endpoint("tab"))

    # And offers now reach that device.
    appt = in_thread(workflow.create_appointment, actor=operator, client=client_obj, service=service,
                     starts_at=timezone.now() + timedelta(hours=3), location="Makati")
    as_api(server, operator).post(f"{server.url}/api/scheduling/appointments/{appt.id}/assign/",
                                  json={"therapist": therapist.id}).raise_for_status()
    assert push_service.wait_for(lambda: len(push_service.requests) == 1)
    assert device.decrypt(push_service.requests[0]["body"])["appointment"] == appt.id


def test_the_calendar_address_is_created_copied_and_rotated_from_the_page(open_page, therapist, make_appointment):
    server = open_page.server
    in_thread(make_appointment, "pending", therapist)
    ana = open_page(therapist, "/therapist/")
    ana.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    ana.get_by_role("button", name="Create my calendar address").click()
    address = ana.get_by_label("Your calendar address")
    expect(address).to_have_value(re.compile(rf"^{re.escape(server.url)}/calendar/[\w-]+\.ics$"))
    first = address.input_value()
    feed = requests.get(first, timeout=10)
    assert feed.status_code == 200 and feed.headers["Content-Type"].startswith("text/calendar")
    assert "Awaiting your answer: Swedish massage – Maria" in feed.text

    ana.get_by_role("button", name="Copy calendar address").click()
    expect(ana.get_by_text("Calendar address copied.")).to_be_visible()
    assert ana.evaluate("navigator.clipboard.readText()") == first

    ana.get_by_role("button", name="Rotate calendar address").click()
    dialog = ana.get_by_role("dialog", name="Get a new calendar address?")
    dialog.get_by_role("button", name="Get a new address").click()
    expect(dialog).to_be_hidden()
    expect(address).not_to_have_value(first)
    assert requests.get(first, timeout=10).status_code == 404
    assert requests.get(address.input_value(), timeout=10).status_code == 200
    screenshot(ana, "therapist-calendar")
