"""Settings for Royal Care Scheduling, read from the environment.

A `.env` file at the project root is read too; a variable already set in the
environment wins over it. The embedded default (no DATABASE_URL / REDIS_URL)
needs nothing running: SQLite in WAL mode + the in-memory channel layer.
A bad value fails loudly at start-up rather than running half-configured.
"""

import secrets
import sys
import warnings
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
ENV_FILE = BASE_DIR / ".env"

env = environ.Env()
if ENV_FILE.exists():
    # read_env uses setdefault: the real environment wins over the file.
    environ.Env.read_env(str(ENV_FILE), overwrite=False)


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.str(name, default=str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.str(name, default=str(default))
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None
    if not value >= minimum:  # also refuses NaN
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def env_flag(name: str, default: bool) -> bool:
    """On/off: 1/true/yes/on or 0/false/no/off (any case); anything else is an error."""
    raw = env.str(name, default="").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be on or off (1/0, true/false, yes/no), got {raw!r}")


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env.str(name, default=default).split(",") if item.strip()]


DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (put it in .env or the environment).")
    # Development only: a per-process key (sessions do not survive a restart).
    SECRET_KEY = secrets.token_urlsafe(50)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_crontab",
    "accounts",
    "notifications",
    "scheduling",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "guitara.urls"
ASGI_APPLICATION = "guitara.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
# Connections per server process on PostgreSQL, from Django's own pool. A daphne
# process runs its database work on one thread, so a few are plenty. Size it so
# that processes x DB_POOL_MAX_SIZE + the sweep + admin shells stays below
# PostgreSQL's max_connections (README, "Deploying"). 0 turns the pool off.
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 4)
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db_url("DATABASE_URL")}
    if DATABASES["default"]["ENGINE"].endswith("postgresql") and DB_POOL_MAX_SIZE:
        # A pooled connection goes back to the pool at the end of each request
        # instead of being closed; the pool checks it before handing it out again.
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1, "max_size": DB_POOL_MAX_SIZE, "timeout": 10, "max_idle": 300,
        }
    else:
        DATABASES["default"].setdefault("CONN_MAX_AGE", env_int("CONN_MAX_AGE", 0))
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"].endswith("postgresql"):
        # Values travel apart from the SQL, so a statement run again on a kept
        # connection is parsed and planned once: after DB_PREPARE_THRESHOLD runs
        # psycopg prepares it (PostgreSQL then skips parsing and planning, most of
        # its work for a transition's one-row statements). 0 turns preparing off
        # (needed behind a pooler in transaction mode, such as PgBouncer's).
        prepare_threshold = env_int("DB_PREPARE_THRESHOLD", 5)
        DATABASES["default"].setdefault("OPTIONS", {}).update({
            "server_side_binding": True, "prepare_threshold": prepare_threshold or None,
        })
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The default file, or `DATABASE_URL=sqlite:////path/db.sqlite3`. WAL + IMMEDIATE +
    # busy timeout: the server and a sweep beside it can both write without
    # "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
# Inactive (disabled) users keep their session so the therapist page can tell them
# why they are disabled; every API, socket and operator page still refuses them.
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.AllowAllUsersModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "landing"
LOGOUT_REDIRECT_URL = "login"
# accounts.forms.SignInGuard counts failed sign-ins per (username, client address)
# for the login page and the token endpoint; after LOGIN_FAILURE_LIMIT failures the
# pair is locked for LOGIN_LOCKOUT_MINUTES. The count lives in the default cache:
# LocMemCache (per process) in the embedded default; with REDIS_URL, Redis, so N
# daphne processes share one count. A cache that cannot be reached fails open.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_LOCKOUT_MINUTES = env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1)
# The request.META key the TLS proxy sets to the client's address (e.g.
# HTTP_X_REAL_IP); empty = REMOTE_ADDR. Only set it behind a proxy that sets it.
LOGIN_CLIENT_IP_HEADER = env.str("LOGIN_CLIENT_IP_HEADER", default="")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Time ------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Manila")
try:
    import zoneinfo

    zoneinfo.ZoneInfo(TIME_ZONE)
except Exception:  # noqa: BLE001 - any failure here is a configuration error
    raise ImproperlyConfigured(f"TIME_ZONE {TIME_ZONE!r} is not a known time zone") from None
USE_I18N = True
USE_TZ = True

RESPONSE_DEADLINE_MINUTES = env_int("RESPONSE_DEADLINE_MINUTES", 30, minimum=1)
# How long before its start a confirmed session may be started (earlier: 409 too_early).
START_EARLY_MINUTES = env_int("START_EARLY_MINUTES", 30)
# Home visits need travel: between two of a therapist's appointments at different
# places there must be this many minutes (0 turns the rule off).
TRAVEL_BUFFER_MINUTES = env_int("TRAVEL_BUFFER_MINUTES", 30)
# Off by default (the seed's rules: a timeout cancels, an accepted rejection waits
# or is cancelled). On: a booking that loses its therapist is offered to the best
# available one at once, at most REOFFER_MAX times automatically.
AUTO_REOFFER = env_flag("AUTO_REOFFER", False)
REOFFER_MAX = env_int("REOFFER_MAX", 3)
# How far ahead a booking may be made; further is almost always a typo.
BOOKING_HORIZON_DAYS = env_int("BOOKING_HORIZON_DAYS", 365, minimum=1)

# --- Static files ----------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the finders when collectstatic has not run (make run / tests).
WHITENOISE_USE_FINDERS = True
# Without collectstatic there is no STATIC_ROOT; the finders serve everything.
warnings.filterwarnings("ignore", message="No directory at", module="whitenoise.base")
WHITENOISE_AUTOREFRESH = DEBUG

# --- Security --------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = False
# TLS ends at the proxy; it tells us the original scheme.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
# HSTS is deliberately left to the proxy that ends TLS (SECURE_HSTS_SECONDS, default 0).
SILENCED_SYSTEM_CHECKS = ["security.W004"] if SECURE_HSTS_SECONDS == 0 else []
if not SECURE_SSL_REDIRECT:
    SILENCED_SYSTEM_CHECKS.append("security.W008")

DATA_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024

# --- REST framework --------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # DRF's own, plus one rule: a disabled account gets 403 account_disabled.
        "accounts.authentication.SessionAuthentication",
        "accounts.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.IsStaffMember"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "scheduling.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "guitara.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "guitara.schema.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        "login": env.str("LOGIN_THROTTLE_RATE", default="10/min"),
    },
    "DATETIME_FORMAT": "iso-8601",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

SPECTACULAR_SETTINGS = {
    "TITLE": "Royal Care Scheduling API",
    "DESCRIPTION": "Bookings, therapist assignment and the response-deadline workflow.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "AppointmentStatusEnum": "scheduling.models.Appointment.Status",
        "RejectionReasonCodeEnum": "scheduling.models.AppointmentRejection.ReasonCode",
    },
}

# --- Channels --------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # channels_redis's Redis pub/sub layer (see notifications/layer.py): a
            # group message is published once and each server process with members
            # receives it once; a closed socket or a dead process leaves nothing in Redis.
            "BACKEND": "notifications.layer.ChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": 15, "socket_connect_timeout": 2}],
                "prefix": env.str("CHANNEL_LAYER_PREFIX", default="guitara"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# Seconds a publish may take before it is abandoned (logged, never raised).
PUBLISH_TIMEOUT_SECONDS = env_float("PUBLISH_TIMEOUT_SECONDS", 1.0, minimum=0.01)

# The default cache holds the failed-sign-in counts (see LOGIN_FAILURE_LIMIT).
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # Deployments (and test runs) sharing one Redis keep apart, like the channel layer.
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default=env.str("CHANNEL_LAYER_PREFIX", default="guitara")
                                  + "-cache"),
            # A dead Redis must answer fast: the lockout then fails open.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }

# --- The deadline sweep ------------------------------------------------------------
# Seconds between sweeps run inside the server process (0 = off: cron runs the
# sweep). `make run` turns it on: with the in-memory channel layer, only a sweep in
# the server's own process reaches the open dashboards (see scheduling.embedded_sweep).
EMBEDDED_SWEEP_SECONDS = env_int("EMBEDDED_SWEEP_SECONDS", 0)
CRONJOBS = [
    ("* * * * *", "django.core.management.call_command", ["auto_cancel_overdue"]),
]
CRONTAB_LOCK_JOBS = True
# cron starts with an empty environment: load the same .env as the server.
CRONTAB_COMMAND_PREFIX = f'cd "{BASE_DIR}" && set -a && {{ [ ! -f .env ] || . ./.env; }} && set +a &&'
CRONTAB_COMMAND_SUFFIX = f'>> "{BASE_DIR}/sweep.log" 2>&1'
CRONTAB_DJANGO_MANAGE_PATH = str(BASE_DIR / "manage.py")

# --- Logging -------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "stream": sys.stderr}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
    },
}

# --- Reaching the therapist: Web Push, email, receipts ------------------------------
# Web Push with VAPID keys (`python manage.py generate_vapid_keys` prints both lines
# for .env; `make run` adds them when .env has none). Without keys push is off and
# the server says so once at start (notifications.push.log_status).
VAPID_PUBLIC_KEY = env.str("VAPID_PUBLIC_KEY", default="").strip()
VAPID_PRIVATE_KEY = env.str("VAPID_PRIVATE_KEY", default="").strip()
if bool(VAPID_PUBLIC_KEY) != bool(VAPID_PRIVATE_KEY):
    raise ImproperlyConfigured("Set both VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY, or neither (push off).")
if VAPID_PUBLIC_KEY:
    import base64
    import binascii

    def _b64url_length(value: str) -> int:
        try:
            return len(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        except (binascii.Error, ValueError):
            return -1

    if _b64url_length(VAPID_PUBLIC_KEY) != 65 or _b64url_length(VAPID_PRIVATE_KEY) != 32:
        raise ImproperlyConfigured("VAPID_PUBLIC_KEY / VAPID_PRIVATE_KEY are not a P-256 key pair in base64url "
                                   "(run `python manage.py generate_vapid_keys`).")
# Who push services contact about our messages: a mailto: or https: URL.
VAPID_SUBJECT = env.str("VAPID_SUBJECT", default="mailto:admin@localhost")
if not VAPID_SUBJECT.startswith(("mailto:", "https://")):
    raise ImproperlyConfigured(f"VAPID_SUBJECT must be a mailto: or https: URL, got {VAPID_SUBJECT!r}")
# Off: a push endpoint must be https on a public host, so a subscription cannot make
# the server call into its own network. Tests turn it on to play the push service.
PUSH_ALLOW_INSECURE = env.bool("PUSH_ALLOW_INSECURE", default=False)
# Pushes go out on a small pool of background threads, never on the request path.
PUSH_WORKERS = env_int("PUSH_WORKERS", 4, minimum=1)
PUSH_TIMEOUT_SECONDS = env_float("PUSH_TIMEOUT_SECONDS", 10.0, minimum=0.1)
# At most this many devices per account (the oldest subscription gives way).
PUSH_MAX_SUBSCRIPTIONS = env_int("PUSH_MAX_SUBSCRIPTIONS", 10, minimum=1)

# Email (the reminder of an unseen offer). EMAIL_URL as django-environ reads it,
# e.g. smtp+tls://user:password@mail.example.com:587; the console backend when unset.
vars().update({key: value for key, value in env.email_url("EMAIL_URL", default="consolemail://").items()
               if value is not None})
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Royal Care <noreply@localhost>")
# Absolute links in emails and push messages; the first CSRF_TRUSTED_ORIGINS entry when unset.
SITE_URL = env.str("SITE_URL", default=(CSRF_TRUSTED_ORIGINS[0] if CSRF_TRUSTED_ORIGINS
                                        else "http://localhost:8000")).rstrip("/")


def env_minutes_or_off(name: str, default: int) -> int | None:
    """Minutes (0 = at the first sweep after the offer) or `off` (None)."""
    raw = env.str(name, default=str(default)).strip().lower()
    if raw == "off":
        return None
    if not raw.isdigit():
        raise ImproperlyConfigured(f"{name} must be a number of minutes (0 or more) or 'off', got {raw!r}")
    return int(raw)


# The sweep reminds the therapist by email, then tells every operator, while an offer is unseen.
REMIND_AFTER_MINUTES = env_minutes_or_off("REMIND_AFTER_MINUTES", 10)
ESCALATE_AFTER_MINUTES = env_minutes_or_off("ESCALATE_AFTER_MINUTES", 20)
# The receipt kinds and the event kinds are both fields named "kind" in the schema.
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["ReceiptKindEnum"] = [("delivered", "delivered"), ("seen", "seen")]
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["EventKindEnum"] = "scheduling.models.AppointmentEvent.Kind"
