"""Real servers on loopback that play the outside world for the tests: an SMTP
server (aiosmtpd) that keeps what it receives, and an HTTP endpoint that plays a
Web Push service (RFC 8030/8291/8292): it records each request, can answer any
status or hold its answer until released, and the test's `Device` holds the
subscription keys to decrypt what it received."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from aiosmtpd.controller import Controller
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.servers import free_port


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class _Waitable:
    def __init__(self):
        self._condition = threading.Condition()

    def _changed(self) -> None:
        with self._condition:
            self._condition.notify_all()

    def wait_for(self, predicate, timeout: float = 5) -> bool:
        """Wait (on a condition, not a sleep) until predicate() is true."""
        with self._condition:
            return self._condition.wait_for(predicate, timeout)


# ---------------------------------------------------------------------------
# SMTP
# ---------------------------------------------------------------------------


class SmtpSink(_Waitable):
    """An SMTP server on 127.0.0.1 that keeps every message it accepts."""

    def __init__(self):
        super().__init__()
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        with self._condition:
            self.messages.append(message)
            self.recipients.append(list(envelope.rcpt_tos))
            self._condition.notify_all()
        return "250 Message accepted for delivery"

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


# ---------------------------------------------------------------------------
# Web Push
# ---------------------------------------------------------------------------


class Device:
    """A browser's push subscription: its P-256 key pair and auth secret,
    generated here, so the test can decrypt what the push service receives."""

    def __init__(self):
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)

    @property
    def p256dh(self) -> str:
        return b64url(self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))

    def subscription(self, endpoint: str) -> dict:
        return {"endpoint": endpoint, "keys": {"p256dh": self.p256dh, "auth": b64url(self.auth)}}

    def decrypt(self, body: bytes) -> dict:
        """The aes128gcm body (RFC 8188/8291) as the browser would decrypt it."""
        return json.loads(http_ece.decrypt(body, private_key=self.private_key, auth_secret=self.auth,
                                           version="aes128gcm"))


def verify_vapid(header: str, public_key_b64: str) -> dict:
    """Check an RFC 8292 `Authorization: vapid t=<JWT>, k=<key>` header: the key is
    the server's, the JWT is ES256-signed by it. Returns the JWT's claims."""
    scheme, _, params = header.partition(" ")
    assert scheme.lower() == "vapid", header
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert fields["k"] == public_key_b64, "the Authorization names another public key"
    token = fields["t"]
    signing_input, _, signature = token.rpartition(".")
    header_b64, _, claims_b64 = signing_input.partition(".")
    assert json.loads(unb64url(header_b64)) == {"typ": "JWT", "alg": "ES256"}
    raw = unb64url(signature)
    assert len(raw) == 64, "an ES256 JWS signature is r || s, 64 bytes"
    public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(public_key_b64))
    try:
        public_key.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
                          signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AssertionError("the VAPID JWT is not signed by the server's key") from None
    return json.loads(unb64url(claims_b64))


class PushService(_Waitable):
    """An HTTP endpoint on 127.0.0.1 that plays a push service. Every request is
    recorded (path, headers, body) and every TCP connection counted; it answers
    `status`, after `release` is set when `hold` is on. `log` records "received"
    and "replying" in order (and the test's own steps, see `note`)."""

    def __init__(self, *, status: int = 201, hold: bool = False):
        super().__init__()
        self.status = status
        self.hold = hold
        self.release = threading.Event()
        self.requests: list[dict] = []
        self.log: list[str] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with service._condition:
                    service.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body,
                                             "at": time.monotonic()})
                    service.log.append("received")
                    service._condition.notify_all()
                if service.hold:
                    service.release.wait(30)
                with service._condition:
                    service.log.append("replying")
                    service._condition.notify_all()
                self.send_response(service.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            def process_request(self, request, client_address):
                with service._condition:
                    service.connections += 1
                super().process_request(request, client_address)

        self.connections = 0
        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def note(self, what: str) -> None:
        """Add the test's own step to the log, in order with the service's."""
        with self._condition:
            self.log.append(what)
            self._condition.notify_all()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def endpoint(self, name: str = "device") -> str:
        return f"{self.origin}/push/{name}"

    def start(self) -> PushService:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
