"""The sign-in form, and the failed-sign-in lockout it shares with the token endpoint.

Lockout: failed sign-ins are counted per (username, client address) in Django's
default cache. After `LOGIN_FAILURE_LIMIT` failures (5) within
`LOGIN_LOCKOUT_MINUTES` (15), that pair is locked for `LOGIN_LOCKOUT_MINUTES`:
every attempt is refused with "Too many failed sign-in attempts. Try again in N
minutes.", even one with the right password. A successful sign-in resets the
count. Another username, or the same username from another address, is not
affected. The username is compared case-insensitively, so "Ana" and "ana" share
one count.

Where the count lives: the embedded default's LocMemCache is per process, which
is right for one process. Production with N daphne processes needs one shared
count, so settings point CACHES at Redis whenever REDIS_URL is set. A cache
that cannot be reached never blocks a sign-in: the lockout fails open and logs.

The client address is REMOTE_ADDR. Behind the TLS proxy that is the proxy's
address unless `LOGIN_CLIENT_IP_HEADER` names the header the proxy sets (e.g.
HTTP_X_REAL_IP); without it the lockout is, in effect, per username.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.http import HttpRequest

logger = logging.getLogger(__name__)


def _limit() -> int:
    return getattr(settings, "LOGIN_FAILURE_LIMIT", 5)


def _lockout_seconds() -> int:
    return 60 * getattr(settings, "LOGIN_LOCKOUT_MINUTES", 15)


def client_address(request: HttpRequest | None) -> str:
    if request is None:
        return "unknown"
    header = getattr(settings, "LOGIN_CLIENT_IP_HEADER", "")
    if header and request.META.get(header):
        # A proxy may append a chain ("client, proxy1"); the first entry is the client.
        return request.META[header].split(",")[0].strip()
    return request.META.get("REMOTE_ADDR") or "unknown"


def lockout_message(seconds_left: float) -> str:
    minutes = max(1, math.ceil(seconds_left / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return f"Too many failed sign-in attempts. Try again in {minutes} {unit}."


class SignInGuard:
    """The failed-sign-in count of one (username, client address) pair."""

    def __init__(self, username: str, address: str):
        digest = hashlib.sha256(f"{username.casefold()}\0{address}".encode()).hexdigest()
        self._failures_key = f"signin-failures:{digest}"
        self._lock_key = f"signin-locked:{digest}"

    @classmethod
    def for_request(cls, request: HttpRequest | None, username: str) -> SignInGuard:
        return cls(username, client_address(request))

    def seconds_locked(self) -> float:
        """Seconds until this pair may try again; 0 when it is not locked."""
        try:
            unlock_at = cache.get(self._lock_key)
        except Exception as exc:  # noqa: BLE001 - an unreachable cache must not block sign-in
            logger.warning("sign-in lockout unavailable (cache get failed): %s", exc)
            return 0
        if unlock_at is None:
            return 0
        return max(0.0, unlock_at - time.time())

    def locked_message(self) -> str | None:
        seconds = self.seconds_locked()
        return lockout_message(seconds) if seconds > 0 else None

    def failed(self) -> str | None:
        """Count one failure; returns the lockout message when this one locks the pair."""
        window = _lockout_seconds()
        try:
            cache.add(self._failures_key, 0, timeout=window)
            try:
                failures = cache.incr(self._failures_key)
            except ValueError:  # expired between add and incr
                cache.set(self._failures_key, 1, timeout=window)
                failures = 1
            if failures < _limit():
                return None
            cache.set(self._lock_key, time.time() + window, timeout=window)
            cache.delete(self._failures_key)
        except Exception as exc:  # noqa: BLE001 - an unreachable cache must not block sign-in
            logger.warning("sign-in lockout unavailable (cache write failed): %s", exc)
            return None
        logger.warning("sign-in locked for %d minutes after %d failures", window // 60, _limit())
        return lockout_message(window)

    def succeeded(self) -> None:
        try:
            cache.delete_many([self._failures_key, self._lock_key])
        except Exception as exc:  # noqa: BLE001 - an unreachable cache must not block sign-in
            logger.warning("sign-in lockout unavailable (cache delete failed): %s", exc)


class LoginForm(AuthenticationForm):
    """Says plainly why a disabled account cannot sign in, once the password matched,
    and refuses a (username, address) pair locked after repeated failures."""

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if not username or not password:
            # The page shows the form's own errors only: say which fields are missing.
            missing = " and ".join(name for name, value in (("username", username), ("password", password))
                                   if not value)
            raise forms.ValidationError(f"Enter your {missing}.", code="required")
        guard = SignInGuard.for_request(self.request, username)
        message = guard.locked_message()
        if message:
            raise forms.ValidationError(message, code="throttled")
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            if self.user_cache is None:  # wrong username or password
                message = guard.failed()
                if message:
                    raise forms.ValidationError(message, code="throttled") from None
            else:  # the password matched; the account is disabled
                guard.succeeded()
            raise
        guard.succeeded()
        return cleaned

    def confirm_login_allowed(self, user):
        if not user.is_active:
            reason = user.disabled_reason or "no reason was recorded"
            raise forms.ValidationError(
                f"This account is disabled ({reason}). Ask an operator to re-enable it.", code="inactive")
