"""Settings for the test suite: the real settings, plus a throw-away secret and a
fast password hasher. Subprocesses (daphne, manage.py) started by tests use this
module too, with DATABASE_URL pointing at the test database."""

import os
import secrets

os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
# Each run gets its own channel-layer prefix on the shared Redis.
os.environ.setdefault("CHANNEL_LAYER_PREFIX", "guitara-test-" + secrets.token_hex(4))
# The sweep's reminder and escalation of unseen offers are off unless a test turns
# them on (tests/scheduling/test_reach.py and the push/receipt tests do, through
# `settings` or the environment of the subprocess they start): elsewhere they
# would add lines to every sweep that runs near a deadline.
os.environ.setdefault("REMIND_AFTER_MINUTES", "off")
os.environ.setdefault("ESCALATE_AFTER_MINUTES", "off")

from guitara.settings import *  # noqa: F403
from guitara.settings import REST_FRAMEWORK

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests that exercise throttling set their own rate; the rest must not trip it.
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["login"] = os.environ.get("LOGIN_THROTTLE_RATE", "1000/min")
# Tests speak plain HTTP to the test client and to local daphne processes.
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
# Tests keep no pooled connections behind: the suite's own process never pools
# (its test database must be droppable at the end); a daphne subprocess pools
# only when the test that starts it sets DB_POOL_MAX_SIZE for it.
if "DB_POOL_MAX_SIZE" not in os.environ:
    DATABASES["default"].get("OPTIONS", {}).pop("pool", None)  # noqa: F405
# Each test run gets its own test database, so runs on one machine never collide.
if DATABASES["default"]["ENGINE"].endswith("postgresql"):  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": f"test_guitara_{os.getpid()}"}  # noqa: F405
