"""Sign-in protection and the security settings around it.

- Failed sign-ins are counted per (username, client address); the 5th failure
  locks that pair for 15 minutes, the page and the token endpoint alike, with
  "Too many failed sign-in attempts. Try again in N minutes." — even the right
  password is refused while locked. Another username or address is unaffected;
  a success resets the count; the lock expires; a dead cache fails open.
- Cookies: HttpOnly + SameSite=Lax always, Secure whenever DEBUG is off.
- Security headers on every response; `check --deploy` passes with production
  settings.
"""

import json
import os
import secrets
import socket
import subprocess
import sys
from datetime import timedelta

import httpx
import pytest
import time_machine
from django.conf import settings
from django.test import Client
from django.utils import timezone

from accounts.api import LoginRateThrottle
from tests.conftest import make_therapist
from tests.servers import ROOT, daphne

LOCKED = "Too many failed sign-in attempts. Try again in 15 minutes."
TOKEN = "/api/accounts/token/"
LOGIN = "/accounts/login/"


@pytest.fixture
def ana(db):
    return make_therapist("ana", name="Ana Cruz")


@pytest.fixture
def bea(db):
    return make_therapist("bea", name="Bea Santos")


def token_login(username: str, password: str, address: str = "127.0.0.1"):
    return Client(REMOTE_ADDR=address).post(TOKEN, {"username": username, "password": password},
                                            content_type="application/json")


def page_login(username: str, password: str, address: str = "127.0.0.1"):
    return Client(REMOTE_ADDR=address).post(LOGIN, {"username": username, "password": password})


def page_error(response) -> str:
    assert response.status_code == 200, f"expected the form again, got {response.status_code}"
    return " ".join(str(e) for e in response.context["form"].non_field_errors())


# --- the token endpoint --------------------------------------------------------


def test_token_locks_after_five_failures_even_for_the_right_password(ana, private_cache):
    for attempt in range(1, 5):
        response = token_login("ana", "wrong")
        assert response.status_code == 401, attempt
        assert response.json() == {"detail": "Wrong username or password.", "code": "authentication_failed"}
    fifth = token_login("ana", "wrong")
    assert fifth.status_code == 429
    assert fifth.json() == {"detail": LOCKED, "code": "throttled"}

    sixth = token_login("ana", "pass-ana")
    assert sixth.status_code == 429
    assert sixth.json() == {"detail": LOCKED, "code": "throttled"}
    assert 840 < int(sixth["Retry-After"]) <= 900


def test_token_lock_is_per_username_and_address(ana, bea, private_cache):
    for _ in range(5):
        token_login("ana", "wrong")
    assert token_login("ana", "pass-ana").status_code == 429
    assert token_login("bea", "pass-bea").status_code == 200, "another username is unaffected"
    assert token_login("ana", "pass-ana", address="10.1.2.3").status_code == 200, "another address is unaffected"
    assert token_login("ANA", "pass-ana").status_code == 429, "the username is compared case-insensitively"


def test_token_success_resets_the_count(ana, private_cache):
    for _ in range(4):
        assert token_login("ana", "wrong").status_code == 401
    assert token_login("ana", "pass-ana").status_code == 200
    for _ in range(4):
        assert token_login("ana", "wrong").status_code == 401
    assert token_login("ana", "pass-ana").status_code == 200


def test_token_lock_expires_after_fifteen_minutes(ana, private_cache):
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        for _ in range(5):
            token_login("ana", "wrong")
        traveller.shift(timedelta(minutes=14))
        response = token_login("ana", "pass-ana")
        assert response.status_code == 429
        assert response.json()["detail"] == "Too many failed sign-in attempts. Try again in 1 minute."
        traveller.shift(timedelta(minutes=1, seconds=1))
        assert token_login("ana", "pass-ana").status_code == 200


def test_unknown_usernames_lock_too(db, private_cache):
    for _ in range(4):
        assert token_login("nobody", "guess").status_code == 401
    assert token_login("nobody", "guess").status_code == 429


def test_disabled_account_with_the_right_password_is_not_a_failure(ana, private_cache):
    ana.is_active = False
    ana.disabled_reason = "No response to appointment #7 by 10:00"
    ana.save()
    for _ in range(6):
        response = token_login("ana", "pass-ana")
        assert response.status_code == 403
        assert "disabled" in response.json()["detail"]


def test_token_rate_throttle_answers_json(ana, private_cache, monkeypatch):
    """The per-address rate (scope "login") on top of the lockout."""
    monkeypatch.setattr(LoginRateThrottle, "THROTTLE_RATES", {"login": "3/min"})
    for _ in range(3):
        assert token_login("ana", "pass-ana").status_code == 200
    response = token_login("ana", "pass-ana")
    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert response["Retry-After"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_dead_cache_fails_open(ana, settings):
    """Redis down must not stop anyone signing in (nor turn sign-in into a 500)."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0",
                                   "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2}}}
    assert token_login("ana", "wrong").status_code == 401
    assert token_login("ana", "pass-ana").status_code == 200
    assert page_login("ana", "pass-ana").status_code == 302


@pytest.mark.services
@pytest.mark.usefixtures("postgres", "transactional_db")
def test_lockout_is_shared_by_every_daphne_process(redis_url, tmp_path):
    """Production runs N processes: with REDIS_URL the count lives in Redis, so
    failures spread over two servers still lock the pair on both."""
    make_therapist("lockprobe", name="Lock Probe")
    with daphne(tmp_path) as first, daphne(tmp_path) as second, httpx.Client(trust_env=False, timeout=10) as http:
        statuses = [http.post(f"{server.url}{TOKEN}", json={"username": "lockprobe", "password": "wrong"}).status_code
                    for server in (first, second, first, second, first)]
        assert statuses == [401, 401, 401, 401, 429]
        for server in (first, second):
            response = http.post(f"{server.url}{TOKEN}", json={"username": "lockprobe", "password": "pass-lockprobe"})
            assert response.status_code == 429
            assert response.json() == {"detail": LOCKED, "code": "throttled"}


# --- the sign-in page ----------------------------------------------------------------


def test_page_locks_after_five_failures_even_for_the_right_password(ana, private_cache):
    for _ in range(4):
        assert "correct username and password" in page_error(page_login("ana", "wrong"))
    assert page_error(page_login("ana", "wrong")) == LOCKED
    response = page_login("ana", "pass-ana")
    assert page_error(response) == LOCKED
    assert LOCKED in response.content.decode()
    assert "_auth_user_id" not in Client().session


def test_page_lock_is_per_username_and_address_and_success_resets(ana, bea, private_cache):
    for _ in range(4):
        page_login("ana", "wrong")
    assert page_login("ana", "pass-ana").status_code == 302, "4 failures then success: signed in"
    for _ in range(4):
        page_login("ana", "wrong")
    assert page_login("ana", "pass-ana").status_code == 302, "the success reset the count"
    for _ in range(5):
        page_login("ana", "wrong")
    assert page_error(page_login("ana", "pass-ana")) == LOCKED
    assert page_login("bea", "pass-bea").status_code == 302
    assert page_login("ana", "pass-ana", address="192.0.2.9").status_code == 302


def test_page_and_token_share_one_count(ana, private_cache):
    for _ in range(3):
        page_login("ana", "wrong")
    token_login("ana", "wrong")
    assert token_login("ana", "wrong").status_code == 429
    assert page_error(page_login("ana", "pass-ana")) == LOCKED


# --- cookies and headers ---------------------------------------------------------------


def test_session_cookie_is_httponly_and_samesite_lax(ana, private_cache):
    response = page_login("ana", "pass-ana")
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"


@pytest.mark.parametrize("path", ["/healthz", LOGIN, "/api/scheduling/appointments/", "/no-such-page/"])
def test_security_headers_on_every_response(db, path):
    response = Client().get(path)
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def production_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "CHANNEL_LAYER_PREFIX", "LOGIN_THROTTLE_RATE")}
    env.update({"DJANGO_SETTINGS_MODULE": "guitara.settings", "DEBUG": "0",
                "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "example.test"})
    env.update(extra)
    return env


def test_cookies_are_secure_when_debug_is_off():
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({k: getattr(s, k) for k in ('DEBUG', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', "
        "'SESSION_COOKIE_HTTPONLY', 'SESSION_COOKIE_SAMESITE', 'CSRF_COOKIE_SAMESITE', 'X_FRAME_OPTIONS', "
        "'SECURE_CONTENT_TYPE_NOSNIFF', 'SECURE_REFERRER_POLICY')}))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=production_env(SECRET_KEY="x"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == {
        "DEBUG": False, "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True, "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax", "CSRF_COOKIE_SAMESITE": "Lax", "X_FRAME_OPTIONS": "DENY",
        "SECURE_CONTENT_TYPE_NOSNIFF": True, "SECURE_REFERRER_POLICY": "same-origin",
    }


def test_check_deploy_passes_with_production_settings():
    """Also catches schema warnings: drf-spectacular runs as a system check, so an
    untyped path id (drf_spectacular.W001) fails the deploy check."""
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=production_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
