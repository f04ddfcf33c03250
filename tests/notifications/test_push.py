"""Web Push, end to end with a real push service played by a loopback HTTP
endpoint: the server signs with its VAPID key and encrypts for the device's keys
(generated here), the endpoint checks the one and decrypts the other. Sending is
off the request path; a subscription the service says is gone is deleted;
endpoints inside the network are refused."""

import logging
import struct
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from notifications import push
from notifications.management.commands.generate_vapid_keys import new_vapid_keys
from notifications.models import PushSubscription
from scheduling.models import Appointment
from tests.loopback import Device, PushService, unb64url, verify_vapid
from tests.servers import daphne

SUBSCRIPTIONS = "/api/notifications/push/subscriptions/"


@pytest.fixture
def vapid(settings):
    public, private = new_vapid_keys()
    settings.VAPID_PUBLIC_KEY = public
    settings.VAPID_PRIVATE_KEY = private
    settings.VAPID_SUBJECT = "mailto:ops@royalcare.example"
    settings.PUSH_ALLOW_INSECURE = True  # the loopback service plays the push service
    yield settings
    push.drain()


@pytest.fixture
def push_service():
    service = PushService().start()
    yield service
    push.drain()
    service.stop()


def subscribe(api, user, device: Device, endpoint: str):
    response = api(user).post(SUBSCRIPTIONS, device.subscription(endpoint), format="json")
    assert response.status_code in (200, 201), response.content
    return response


def book_and_assign(api, operator, client_obj, service, therapist, *, hours: int = 3):
    created = api(operator).post("/api/scheduling/appointments/", {
        "client": client_obj.id, "service": service.id, "location": "12 Mabini St, Makati",
        "starts_at": (timezone.now() + timedelta(hours=hours)).isoformat(),
    }, format="json")
    assert created.status_code == 201, created.content
    return created.json()["id"], lambda: api(operator).post(
        f"/api/scheduling/appointments/{created.json()['id']}/assign/", {"therapist": therapist.id}, format="json")


@pytest.mark.django_db(transaction=True)
def test_an_offer_is_pushed_signed_and_encrypted_to_each_of_the_therapists_devices(
        api, vapid, push_service, operator, therapist, therapist_b, client_obj, service):
    phone, tablet, other = Device(), Device(), Device()
    subscribe(api, therapist, phone, push_service.endpoint("ana-phone"))
    subscribe(api, therapist, tablet, push_service.endpoint("ana-tablet"))
    subscribe(api, therapist_b, other, push_service.endpoint("bea-phone"))
    appt_id, assign = book_and_assign(api, operator, client_obj, service, therapist)

    started = int(time.time())
    response = assign()
    assert response.status_code == 200, response.content
    assert push_service.wait_for(lambda: len(push_service.requests) == 2), push_service.requests
    assert push.drain()
    appt = Appointment.objects.get(pk=appt_id)

    by_path = {r["path"]: r for r in push_service.requests}
    assert set(by_path) == {"/push/ana-phone", "/push/ana-tablet"}, "each of Ana's devices, nobody else's"
    for path, device in (("/push/ana-phone", phone), ("/push/ana-tablet", tablet)):
        request = by_path[path]
        headers = {k.lower(): v for k, v in request["headers"].items()}
        claims = verify_vapid(headers["authorization"], vapid.VAPID_PUBLIC_KEY)
        assert claims["aud"] == push_service.origin
        assert claims["sub"] == "mailto:ops@royalcare.example"
        assert started < claims["exp"] <= started + 24 * 3600 + 5
        assert headers["content-encoding"] == "aes128gcm"
        assert headers["urgency"] == "high"
        assert headers["topic"] == f"appointment-{appt_id}"
        # Held for an offline phone only while the answer can still come.
        assert 29 * 60 <= int(headers["ttl"]) <= 30 * 60
        message = device.decrypt(request["body"])
        assert message["appointment"] == appt_id
        assert message["offer"] == 1
        assert message["client"] == "Maria"
        assert message["service"] == "Swedish massage"
        assert message["url"] == f"/therapist/?appointment={appt_id}"
        assert message["answer_by"] == timezone.localtime(appt.response_deadline).isoformat()
        assert message["starts_at"] == timezone.localtime(appt.starts_at).isoformat()
        assert message["title"].startswith(f"New appointment #{appt_id}: answer by ")
        assert message["body"].startswith("Maria · Swedish massage · ")
        assert "Lopez" not in str(message), "only the client's first name leaves the server"


@pytest.mark.django_db(transaction=True)
def test_a_device_the_push_service_calls_gone_is_unsubscribed(api, vapid, operator, therapist, client_obj,
                                                              service):
    gone, alive = PushService(status=410).start(), PushService(status=201).start()
    try:
        subscribe(api, therapist, Device(), gone.endpoint("old-phone"))
        subscribe(api, therapist, Device(), alive.endpoint("new-phone"))
        _, assign = book_and_assign(api, operator, client_obj, service, therapist)
        assert assign().status_code == 200
        assert push.drain()
        assert len(gone.requests) == 1 and len(alive.requests) == 1
        assert list(PushSubscription.objects.values_list("endpoint", flat=True)) == [alive.endpoint("new-phone")]
    finally:
        gone.stop()
        alive.stop()


@pytest.mark.django_db(transaction=True)
def test_assign_answers_without_waiting_for_a_slow_push_service(api, vapid, operator, therapist, client_obj,
                                                                service):
    slow = PushService(hold=True).start()
    try:
        subscribe(api, therapist, Device(), slow.endpoint())
        _, assign = book_and_assign(api, operator, client_obj, service, therapist)
        response = assign()
        slow.note("assign answered")
        assert response.status_code == 200
        # The push service has the request and has not answered it...
        assert slow.wait_for(lambda: "received" in slow.log)
        assert "replying" not in slow.log
        # ...and the assignment is committed and visible already.
        assert Appointment.objects.get(pk=response.json()["id"]).therapist_id == therapist.id
        slow.release.set()
        assert slow.wait_for(lambda: "replying" in slow.log)
        assert slow.log.index("assign answered") < slow.log.index("replying")
    finally:
        push.drain()
        slow.stop()


@pytest.mark.django_db(transaction=True)
def test_a_failing_push_service_is_logged_and_the_assignment_stands(api, vapid, operator, therapist, client_obj,
                                                                    service, caplog):
    broken = PushService(status=500).start()
    try:
        subscribe(api, therapist, Device(), broken.endpoint())
        appt_id, assign = book_and_assign(api, operator, client_obj, service, therapist)
        with caplog.at_level(logging.WARNING, logger="notifications.push"):
            assert assign().status_code == 200
            assert push.drain()
        assert "the push service answered 500" in caplog.text
        assert PushSubscription.objects.count() == 1, "a 500 is not a reason to forget the device"
        assert Appointment.objects.get(pk=appt_id).status == "pending"
    finally:
        broken.stop()


@pytest.mark.django_db(transaction=True)
def test_a_denied_rejection_is_pushed_as_the_same_offer(api, vapid, push_service, operator, therapist,
                                                        make_appointment):
    device = Device()
    subscribe(api, therapist, device, push_service.endpoint())
    appt = make_appointment("rejected", therapist)
    assert push.drain()
    first = len(push_service.requests)
    response = api(operator).post(f"/api/scheduling/appointments/{appt.id}/review_rejection/",
                                  {"review_decision": "deny", "review_note": "Nobody else is free"}, format="json")
    assert response.status_code == 200
    assert response.json()["offer"]["number"] == 1
    assert push_service.wait_for(lambda: len(push_service.requests) == first + 1)
    message = device.decrypt(push_service.requests[-1]["body"])
    assert message["offer"] == 1
    assert message["title"].startswith(f"Your rejection of #{appt.id} was denied: answer by ")


# --- Which endpoints the server calls ------------------------------------------------------

REFUSED = [
    "http://93.184.215.14/push/abc",  # not https
    "https://127.0.0.1/push/abc",
    "https://localhost/push/abc",  # resolves to loopback
    "https://10.1.2.3/push/abc",
    "https://172.16.0.9/push/abc",
    "https://192.168.1.5/push/abc",
    "https://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
    "https://100.64.0.1/push/abc",  # shared address space
    "https://0.0.0.0/push/abc",
    "https://[::1]/push/abc",
    "https://[fe80::1]/push/abc",
    "https://[fc00::5]/push/abc",
    "https://[::ffff:127.0.0.1]/push/abc",
    "https://224.0.0.1/push/abc",  # multicast
    "https://user:secret@93.184.215.14/push/abc",
    "https://push.service.invalid/abc",  # does not resolve
    "ftp://93.184.215.14/abc",
    "not a url",
]


@pytest.mark.parametrize("endpoint", REFUSED)
def test_a_subscription_to_an_endpoint_inside_the_network_is_refused(api, therapist, endpoint):
    response = api(therapist).post(SUBSCRIPTIONS, Device().subscription(endpoint), format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid"
    assert body["errors"]["endpoint"][0]
    assert not PushSubscription.objects.exists()


def test_a_public_https_endpoint_is_accepted(api, therapist):
    # An address literal: no DNS needed, and 93.184.215.14 is a public address.
    response = api(therapist).post(SUBSCRIPTIONS, Device().subscription("https://93.184.215.14/push/abc"),
                                   format="json")
    assert response.status_code == 201, response.content
    assert PushSubscription.objects.get().user == therapist


@pytest.mark.django_db(transaction=True)
def test_a_stored_endpoint_inside_the_network_is_never_called(api, settings, operator, therapist, client_obj,
                                                              service, caplog):
    """A subscription that got in while PUSH_ALLOW_INSECURE was on (or whose host
    now resolves inside the network) is refused when sending: no connection at all."""
    public, private = new_vapid_keys()
    settings.VAPID_PUBLIC_KEY, settings.VAPID_PRIVATE_KEY = public, private
    settings.PUSH_ALLOW_INSECURE = False
    inside = PushService().start()
    try:
        device = Device()
        for endpoint in (f"https://localhost:{inside.port}/push/a", f"https://127.0.0.1:{inside.port}/push/b",
                         inside.endpoint("c")):
            PushSubscription.objects.create(user=therapist, endpoint=endpoint, p256dh=device.p256dh,
                                            auth=device.subscription("x")["keys"]["auth"],
                                            created_at=timezone.now())
        _, assign = book_and_assign(api, operator, client_obj, service, therapist)
        with caplog.at_level(logging.WARNING, logger="notifications.push"):
            assert assign().status_code == 200
            assert push.drain()
        assert inside.connections == 0 and inside.requests == []
        assert caplog.text.count("push to localhost failed") == 1
        assert caplog.text.count("push to 127.0.0.1 failed") == 2
        assert "not a public address" in caplog.text and "must be an https:// URL" in caplog.text
    finally:
        inside.stop()


def test_the_guarded_connection_refuses_a_private_peer_even_without_the_endpoint_check(settings):
    """The socket itself only goes to a checked public address (the defence against
    a DNS answer that changes between the check and the connection)."""
    import requests

    settings.PUSH_ALLOW_INSECURE = False
    inside = PushService().start()
    try:
        with pytest.raises(requests.ConnectionError, match="Refused to connect"):
            push._session().post(f"https://localhost:{inside.port}/push/x", data=b"x", timeout=5)
        assert inside.connections == 0
    finally:
        inside.stop()


# --- Subscriptions --------------------------------------------------------------------------


def test_a_device_subscribes_once_and_follows_whoever_subscribes_on_it_last(api, therapist, therapist_b, settings):
    settings.PUSH_ALLOW_INSECURE = True
    device = Device()
    endpoint = "https://93.184.215.14/push/shared-tablet"
    assert subscribe(api, therapist, device, endpoint).status_code == 201
    assert subscribe(api, therapist, device, endpoint).status_code == 200
    assert PushSubscription.objects.get().user == therapist
    assert subscribe(api, therapist_b, device, endpoint).status_code == 200
    assert PushSubscription.objects.get().user == therapist_b
    # Only the owner removes it.
    assert api(therapist).delete(f"{SUBSCRIPTIONS}?endpoint={endpoint}").status_code == 404
    assert api(therapist_b).delete(f"{SUBSCRIPTIONS}?endpoint={endpoint}").status_code == 204
    assert not PushSubscription.objects.exists()
    missing = api(therapist_b).delete(SUBSCRIPTIONS)
    assert missing.status_code == 400 and "endpoint" in missing.json()["errors"]


def test_a_therapist_keeps_at_most_the_newest_devices(api, therapist, settings):
    settings.PUSH_MAX_SUBSCRIPTIONS = 3
    for n in range(5):
        subscribe(api, therapist, Device(), f"https://93.184.215.14/push/device-{n}")
    assert sorted(PushSubscription.objects.values_list("endpoint", flat=True)) == [
        f"https://93.184.215.14/push/device-{n}" for n in (2, 3, 4)]


@pytest.mark.parametrize(("keys", "field"), [
    ({"p256dh": "not-base64!", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}, "p256dh"),
    ({"p256dh": "BAAA", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}, "p256dh"),
    ({"auth": "AAAAAAAAAAAAAAAAAAAAAA"}, "p256dh"),
    (None, "auth"),
])
def test_a_subscription_without_usable_keys_is_400(api, therapist, keys, field):
    good = Device().subscription("https://93.184.215.14/push/abc")
    if keys is None:
        good["keys"]["auth"] = "c2hvcnQ"
    else:
        good["keys"] = keys
    response = api(therapist).post(SUBSCRIPTIONS, good, format="json")
    assert response.status_code == 400
    [message] = response.json()["errors"]["keys"]
    assert message.startswith(f"{field}: ")
    assert not PushSubscription.objects.exists()


def test_the_key_endpoint_gives_the_public_key_or_null_when_push_is_off(api, therapist, operator, settings):
    settings.VAPID_PUBLIC_KEY = settings.VAPID_PRIVATE_KEY = ""
    assert api(therapist).get("/api/notifications/push/key/").json() == {"public_key": None}
    public, private = new_vapid_keys()
    settings.VAPID_PUBLIC_KEY, settings.VAPID_PRIVATE_KEY = public, private
    assert api(therapist).get("/api/notifications/push/key/").json() == {"public_key": public}
    assert api(operator).get("/api/notifications/push/key/").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_without_keys_nothing_is_pushed(api, settings, push_service, operator, therapist, client_obj, service):
    settings.VAPID_PUBLIC_KEY = settings.VAPID_PRIVATE_KEY = ""
    settings.PUSH_ALLOW_INSECURE = True
    subscribe(api, therapist, Device(), push_service.endpoint())
    _, assign = book_and_assign(api, operator, client_obj, service, therapist)
    assert assign().status_code == 200
    assert push.drain()
    assert push_service.connections == 0


# --- Keys, the server's start, the installable app -------------------------------------------


def test_generate_vapid_keys_prints_a_p256_key_pair_for_env(capsys):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    call_command("generate_vapid_keys")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("=", 1)[0] for line in lines] == ["VAPID_PUBLIC_KEY", "VAPID_PRIVATE_KEY"]
    public, private = (line.split("=", 1)[1] for line in lines)
    key = ec.derive_private_key(int.from_bytes(unb64url(private), "big"), ec.SECP256R1())
    assert key.public_key().public_bytes(serialization.Encoding.X962,
                                         serialization.PublicFormat.UncompressedPoint) == unb64url(public)


def test_the_server_says_once_at_start_whether_push_is_on(postgres, transactional_db, tmp_path):
    (tmp_path / "off").mkdir()
    (tmp_path / "on").mkdir()
    with daphne(tmp_path / "off", VAPID_PUBLIC_KEY="", VAPID_PRIVATE_KEY="") as server:
        pass
    assert server.log().count("Web Push is off") == 1
    public, private = new_vapid_keys()
    with daphne(tmp_path / "on", VAPID_PUBLIC_KEY=public, VAPID_PRIVATE_KEY=private) as server:
        pass
    assert "Web Push is off" not in server.log()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_the_manifest_and_service_worker_are_served_at_the_root_without_login(client, db):
    manifest = client.get("/manifest.webmanifest")
    assert manifest.status_code == 200
    assert manifest["Content-Type"] == "application/manifest+json"
    data = manifest.json()
    assert data["start_url"] == "/" and data["scope"] == "/" and data["display"] == "standalone"
    sizes = set()
    for icon in data["icons"]:
        image = client.get(icon["src"])
        assert image.status_code == 200, icon
        body = b"".join(image.streaming_content) if image.streaming else image.content
        width, height = _png_size(body)
        assert f"{width}x{height}" == icon["sizes"]
        sizes.add((icon["sizes"], icon["purpose"]))
    assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")} <= sizes

    worker = client.get("/sw.js")
    assert worker.status_code == 200
    assert worker["Content-Type"].startswith("text/javascript")
    assert "no-cache" in worker["Cache-Control"]
    source = b"".join(worker.streaming_content).decode()
    assert "addEventListener('push'" in source and "notificationclick" in source


def test_a_therapist_page_links_the_manifest(client, therapist):
    client.force_login(therapist)
    page = client.get("/therapist/").content.decode()
    assert '<link rel="manifest" href="/manifest.webmanifest">' in page
    assert ">Turn on notifications</button>" in page
