"""Web Push: a message reaches a person's phone with the page closed.

Sending never happens on the request path. `send_on_commit(user_id, message)`
registers, for after the commit, a look-up of the person's subscriptions and one
job per device on a small pool of background threads (`PUSH_WORKERS`, with at
most `MAX_PENDING` jobs waiting; past that a push is dropped and logged: the
receipts, the reminder email and the operators' escalation are the safety net).
A slow or broken push service therefore never slows an assignment; its failures
are logged, never raised; a 404 or 410 answer means the device unsubscribed, and
its subscription is deleted.

Unless `PUSH_ALLOW_INSECURE` is on, an endpoint must be https on a public host,
and that is checked twice: when a device subscribes (every address the host
resolves to must be public) and when connecting (the socket goes to the address
just checked, never to a second DNS answer), so neither a crafted subscription
nor a DNS record that changes later can make the server call into its own
network.

Without VAPID keys push is off; the server says so once at start (`log_status`).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from .models import PushSubscription

logger = logging.getLogger(__name__)

# Jobs waiting for a worker before new pushes are dropped (logged).
MAX_PENDING = 1000
# Web Push payloads must stay under about 4 KB once encrypted.
MAX_PAYLOAD_BYTES = 3000
# Subscriptions answered with these are gone for good (RFC 8030 §7.3).
GONE = (404, 410)


class EndpointRefused(ValueError):
    """A push endpoint the server will not call; the message says why."""


def enabled() -> bool:
    return bool(settings.VAPID_PUBLIC_KEY and settings.VAPID_PRIVATE_KEY)


_status_logged = False


def log_status() -> None:
    """Say once per process whether push is on (called when the server starts)."""
    global _status_logged
    if _status_logged:
        return
    _status_logged = True
    if enabled():
        logger.info("Web Push is on (VAPID subject %s).", settings.VAPID_SUBJECT)
    else:
        logger.warning("Web Push is off: VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY are not set "
                       "(`python manage.py generate_vapid_keys` prints them for .env).")


# ---------------------------------------------------------------------------
# Which endpoints the server will call.
# ---------------------------------------------------------------------------


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    # is_global excludes loopback, private, link-local, shared (CGNAT), reserved
    # and documentation ranges; multicast is never a web server.
    return ip.is_global and not ip.is_multicast


def public_address(host: str, port: int) -> str:
    """The address to connect to for `host`, after checking that every address it
    resolves to is public (one private answer is enough to refuse)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise EndpointRefused(f"The push service host {host} cannot be resolved.") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    private = [a for a in addresses if not _is_public(a)]
    if not addresses or private:
        raise EndpointRefused(f"The push service host {host} is not a public address "
                              f"({', '.join(private or addresses) or 'none'}).")
    return addresses[0]


def check_endpoint(url: str) -> None:
    """Refuse (EndpointRefused) an endpoint the server must not call."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise EndpointRefused("The endpoint is not a valid URL.") from exc
    if parts.scheme not in ("https", "http") or not host:
        raise EndpointRefused("The endpoint must be an https:// URL.")
    if parts.username or parts.password:
        raise EndpointRefused("The endpoint must not carry a user name or password.")
    if settings.PUSH_ALLOW_INSECURE:
        return
    if parts.scheme != "https":
        raise EndpointRefused("The endpoint must be an https:// URL.")
    public_address(host, port or 443)


def _guarded_session():
    """A requests session whose connections go only to checked public addresses."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
    from urllib3.exceptions import NewConnectionError
    from urllib3.util.connection import create_connection

    def new_conn(conn):
        try:
            address = public_address(conn._dns_host, conn.port)
        except EndpointRefused as exc:
            raise NewConnectionError(conn, f"Refused to connect: {exc}") from None
        try:
            return create_connection((address, conn.port), conn.timeout, source_address=conn.source_address,
                                     socket_options=conn.socket_options)
        except OSError as exc:
            raise NewConnectionError(conn, f"Failed to establish a new connection: {exc}") from exc

    class GuardedHTTPConnection(HTTPConnection):
        _new_conn = new_conn

    class GuardedHTTPSConnection(HTTPSConnection):
        # TLS still checks the certificate against the host name, not the address.
        _new_conn = new_conn

    class GuardedHTTPPool(HTTPConnectionPool):
        ConnectionCls = GuardedHTTPConnection

    class GuardedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = GuardedHTTPSConnection

    class GuardedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": GuardedHTTPPool, "https": GuardedHTTPSPool}

    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: the check must see the real peer
    session.max_redirects = 0
    if not settings.PUSH_ALLOW_INSECURE:
        session.mount("https://", GuardedAdapter())
        session.mount("http://", GuardedAdapter())
    return session


# ---------------------------------------------------------------------------
# Sending.
# ---------------------------------------------------------------------------

_local = threading.local()
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pending: set[Future] = set()
_vapid = None


def _session():
    """One session per pool thread (requests sessions are not thread-safe)."""
    sessions = _local.__dict__.setdefault("sessions", {})
    insecure = settings.PUSH_ALLOW_INSECURE
    if insecure not in sessions:
        sessions[insecure] = _guarded_session()
    return sessions[insecure]


def _vapid_key():
    global _vapid
    key = settings.VAPID_PRIVATE_KEY
    if _vapid is None or _vapid[0] != key:
        from py_vapid import Vapid

        _vapid = (key, Vapid.from_raw(key.encode()))
    return _vapid[1]


_transaction_pushes = threading.local()


def send_on_commit(user_id: int, message: dict, *, ttl: int, topic: str = "") -> None:
    """Push `message` (a JSON object) to each of the user's devices once the
    current transaction commits. `ttl`: seconds the push service may hold it for
    a device that is offline (after that it is useless); `topic`: a newer
    message with the same topic replaces an undelivered older one.

    The pushes of one transaction go out together: one look-up of everybody's
    devices after the commit, however many offers a sweep batch made."""
    if not enabled():
        return
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        send_many([(user_id, message, ttl, topic)])
        return
    # Django starts a new list of commit hooks after each commit or rollback, so a
    # batch tied to the current list is never carried into another transaction.
    state = getattr(_transaction_pushes, "state", None)
    if state is None or state[0] is not connection.run_on_commit:
        batch: list = []
        # robust: a failure here is logged; the committed request must not fail over a push.
        transaction.on_commit(lambda: send_many(batch), robust=True)
        state = _transaction_pushes.state = (connection.run_on_commit, batch)
    state[1].append((user_id, message, ttl, topic))


def send(user_id: int, message: dict, *, ttl: int, topic: str = "") -> list[Future]:
    """Queue the push for each of the user's devices; returns at once."""
    return send_many([(user_id, message, ttl, topic)])


def send_many(pushes: list[tuple[int, dict, int, str]]) -> list[Future]:
    """Queue each (user id, message, ttl, topic) for each of that user's devices,
    with one query for all their devices; returns at once."""
    if not enabled() or not pushes:
        return []
    devices: dict[int, list[dict]] = {}
    for row in PushSubscription.objects.filter(user_id__in={user_id for user_id, *_ in pushes}).values(
            "id", "user_id", "endpoint", "p256dh", "auth"):
        devices.setdefault(row.pop("user_id"), []).append(row)
    futures = []
    for user_id, message, ttl, topic in pushes:
        data = json.dumps(message, separators=(",", ":")).encode()
        if len(data) > MAX_PAYLOAD_BYTES:
            logger.error("push to user %s not sent: the message is %d bytes (at most %d)", user_id, len(data),
                         MAX_PAYLOAD_BYTES)
            continue
        for subscription in devices.get(user_id, ()):
            future = _submit(_deliver, subscription, data, max(0, int(ttl)), topic)
            if future is not None:
                futures.append(future)
    return futures


def _submit(fn, *args) -> Future | None:
    global _pool
    with _lock:
        if len(_pending) >= MAX_PENDING:
            logger.warning("push dropped: %d pushes are already waiting for the push service", len(_pending))
            return None
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=settings.PUSH_WORKERS, thread_name_prefix="web-push")
        future = _pool.submit(fn, *args)
        _pending.add(future)
    future.add_done_callback(_done)
    return future


def _done(future: Future) -> None:
    with _lock:
        _pending.discard(future)


def drain(timeout: float = 30) -> bool:
    """Wait until every queued push is sent or has failed; True if all finished."""
    with _lock:
        pending = list(_pending)
    return not wait(pending, timeout=timeout).not_done


def _deliver(subscription: dict, data: bytes, ttl: int, topic: str) -> str:
    """Send one push; returns what happened ("sent", "gone", "failed"). Runs on a
    pool thread: it logs, never raises."""
    from pywebpush import WebPushException, webpush

    endpoint = subscription["endpoint"]
    host = urlsplit(endpoint).hostname
    headers = {"Urgency": "high"}
    if topic:
        headers["Topic"] = topic
    try:
        check_endpoint(endpoint)
        webpush(
            {"endpoint": endpoint, "keys": {"p256dh": subscription["p256dh"], "auth": subscription["auth"]}},
            data=data, vapid_private_key=_vapid_key(), vapid_claims={"sub": settings.VAPID_SUBJECT},
            ttl=ttl, headers=headers, timeout=settings.PUSH_TIMEOUT_SECONDS, requests_session=_session(),
        )
        return "sent"
    except WebPushException as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in GONE:
            try:
                PushSubscription.objects.filter(id=subscription["id"]).delete()
            finally:
                connections.close_all()  # this pool thread keeps no connection
            logger.info("push subscription %s on %s is gone (%s): deleted", subscription["id"], host, status)
            return "gone"
        logger.warning("push to %s failed: the push service answered %s", host, status or exc)
    except Exception as exc:  # noqa: BLE001 - a push must never fail anything else
        logger.warning("push to %s failed: %s: %s", host, type(exc).__name__, exc)
    return "failed"


def subscribe(user, *, endpoint: str, p256dh: str, auth: str, user_agent: str = "") -> tuple[PushSubscription, bool]:
    """Store (or move to `user`) the device's subscription; returns it and whether
    it is new. A device holds one subscription per endpoint, so the last person to
    subscribe on it gets its pushes. Past `PUSH_MAX_SUBSCRIPTIONS` devices the
    oldest gives way."""
    with transaction.atomic():
        subscription, created = PushSubscription.objects.update_or_create(
            endpoint=endpoint,
            defaults={"user": user, "p256dh": p256dh, "auth": auth, "user_agent": user_agent[:300]},
            create_defaults={"user": user, "p256dh": p256dh, "auth": auth, "user_agent": user_agent[:300],
                             "created_at": timezone.now()},
        )
        extra = PushSubscription.objects.filter(user=user).order_by("-created_at", "-id").values_list(
            "id", flat=True)[settings.PUSH_MAX_SUBSCRIPTIONS:]
        PushSubscription.objects.filter(id__in=list(extra)).delete()
    return subscription, created
