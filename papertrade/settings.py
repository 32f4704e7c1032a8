"""Django settings: deployment and secrets from the environment (or ``.env``).

Every variable has a default that runs from a fresh clone on embedded services: SQLite, a
database-table cache shared by every process, and a filesystem Celery broker. Set
``DATABASE_URL`` and ``REDIS_URL`` to run on PostgreSQL and Redis. Behaviour (quota, TTLs,
schedule) lives in ``config.toml``, read by :mod:`papertrade.config`.
"""

import os
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from papertrade.config import ConfigError, get_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(str(BASE_DIR / ".env"))


def _env(name: str, cast, default):
    """Read ``name`` from the environment; a value that does not parse names the variable. An
    empty one (``DATABASE_URL=`` as in .env.example) means the default."""
    if not os.environ.get(name, "").strip():
        os.environ.pop(name, None)
    try:
        return cast(name, default=default)
    except (ValueError, environ.ImproperlyConfigured) as exc:
        raise ImproperlyConfigured(f"Environment variable {name} is invalid: {exc}") from None


TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def _bool(name: str, default: bool) -> bool:
    """A yes/no variable; anything but the usual spellings is an error, not a silent False."""
    raw = env.str(name, default=str(default)).strip().lower()
    if raw not in TRUE | FALSE:
        raise ImproperlyConfigured(
            f"Environment variable {name} is invalid: {raw!r} is not one of true/false/1/0/yes/no"
        )
    return raw in TRUE


DEBUG = _bool("DEBUG", False)
# The fallback key only serves a fresh clone on 127.0.0.1; `check --deploy` flags it.
SECRET_KEY = env.str("SECRET_KEY", default="") or "django-insecure-papertrade-local-only-key"
ALLOWED_HOSTS = _env("ALLOWED_HOSTS", env.list, ["127.0.0.1", "localhost", "[::1]"])
# Serving anything but this machine in production needs a real key, never the fallback.
_PUBLIC_HOSTS = sorted(set(ALLOWED_HOSTS) - {"localhost", "127.0.0.1", "[::1]"})
if not DEBUG and _PUBLIC_HOSTS and not env.str("SECRET_KEY", default=""):
    raise ImproperlyConfigured(
        "Environment variable SECRET_KEY is not set: it is required when DEBUG is false and "
        f"ALLOWED_HOSTS serves {', '.join(_PUBLIC_HOSTS)} (set a long random value)."
    )
CSRF_TRUSTED_ORIGINS = _env("CSRF_TRUSTED_ORIGINS", env.list, [])

try:
    PAPERTRADE = get_config()
except ConfigError as exc:
    raise ImproperlyConfigured(str(exc)) from None

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "django_celery_beat",
    "marketdata",
    "portfolios",
    "accounts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Near the top: a database that stops answering anywhere below is a 503 page, not a 500.
    "papertrade.middleware.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "papertrade.middleware.LoginRequiredMiddleware",  # Django's, cheaper on public pages
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "papertrade.urls"
WSGI_APPLICATION = "papertrade.wsgi.application"

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
                "marketdata.context_processors.market_data",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {
    "default": _env("DATABASE_URL", env.db_url, f"sqlite:///{VAR_DIR / 'papertrade.sqlite3'}")
}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
    # WAL lets the web server, the worker and beat read while one of them writes; the
    # immediate transaction mode takes the write lock up front so concurrent writers queue
    # instead of failing with "database is locked".
    _db.setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    # Every wait on the server has a deadline on our side too (papertrade/postgresql/base.py).
    if _db["ENGINE"] == "django.db.backends.postgresql":
        _db["ENGINE"] = "papertrade.postgresql"
    # Persistent connections with health checks: one connection per worker thread, reused.
    _db.setdefault("CONN_MAX_AGE", 60)
    _db.setdefault("CONN_HEALTH_CHECKS", True)
    # Bounded waits (config.toml [timeouts]): connecting, the longest statement (short in a
    # web process: wsgi.py says it is one; long in commands and tasks), and TCP keepalives and
    # a user timeout, so that a connection into a network partition fails instead of hanging.
    _t = PAPERTRADE.timeouts
    _web = env.str("PAPERTRADE_PROCESS", default="") == "web"
    _statement_ms = int(1000 * (_t.web_statement_seconds if _web else _t.task_statement_seconds))
    _options = _db.setdefault("OPTIONS", {})
    for _key, _value in {
        "connect_timeout": max(2, round(_t.database_connect_seconds)),  # libpq: whole seconds, ≥ 2
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 2,
        "tcp_user_timeout": int(1000 * _t.web_statement_seconds),
        "options": f"-c statement_timeout={_statement_ms}",
    }.items():
        _options.setdefault(_key, _value)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ----------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "papertrade",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                # A Redis outage degrades to cache misses (the database tier answers), never a 500.
                "IGNORE_EXCEPTIONS": True,
                # A partition costs one short timeout, and then nothing for a while: each
                # process skips a Redis that failed repeatedly (papertrade/redis_breaker.py).
                "SOCKET_CONNECT_TIMEOUT": PAPERTRADE.timeouts.cache_seconds,
                "SOCKET_TIMEOUT": PAPERTRADE.timeouts.cache_seconds,
                "REDIS_CLIENT_CLASS": "papertrade.redis_breaker.BreakerRedis",
            },
        }
    }
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
else:
    # A table in the database: shared by the web server, the worker and beat, no server needed.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "papertrade_cache",
            "KEY_PREFIX": "papertrade",
            "OPTIONS": {"MAX_ENTRIES": 50_000},
        }
    }

# --- Celery ---------------------------------------------------------------------------------
_LONGEST_TASK_SECONDS = 15 * 60  # the hard time limit of any task
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or REDIS_URL or "filesystem://"
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = str(VAR_DIR / "broker")
    (VAR_DIR / "broker").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": _broker_dir,
        "data_folder_out": _broker_dir,
        "store_processed": False,
    }
else:
    # A broker that hangs bounds a publish (a page queueing a fetch) and the worker's reads;
    # a task whose worker died is redelivered once the visibility timeout passes: sized to
    # the longest a task may run (the hard time limit below), not kombu's default hour.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "socket_timeout": PAPERTRADE.timeouts.broker_seconds,
        "socket_connect_timeout": PAPERTRADE.timeouts.broker_seconds,
        "visibility_timeout": _LONGEST_TASK_SECONDS + 60,
    }
CELERY_BROKER_CONNECTION_TIMEOUT = PAPERTRADE.timeouts.broker_seconds
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = _LONGEST_TASK_SECONDS
CELERY_TASK_SOFT_TIME_LIMIT = _LONGEST_TASK_SECONDS - 60
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

# --- Market data ----------------------------------------------------------------------------
ALPHA_VANTAGE_API_KEY = env.str("ALPHA_VANTAGE_API_KEY", default="")
ALPHA_VANTAGE_BASE_URL = env.str(
    "ALPHA_VANTAGE_BASE_URL", default="https://www.alphavantage.co/query"
)
# The price port's implementation: a dotted path to the factory ``marketdata.port`` calls, so
# the port (the contract) imports nothing of what implements it.
PAPERTRADE_PRICE_PORT = "marketdata.wiring.get_market_data"
# "Which tickers are held", for the scheduled refresh: a dotted path to a function returning
# a list of tickers, so marketdata never imports portfolios.
PAPERTRADE_HELD_TICKERS = "portfolios.selectors.held_tickers"
PAPERTRADE_WATCHED_TICKERS = "portfolios.selectors.watched_tickers"
PAPERTRADE_ORDER_TICKERS = "portfolios.selectors.order_tickers"

# --- Auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
# Failed log-ins (accounts/throttle.py, counted in the database): an account from one address
# pauses after 5 wrong passwords in a row for 1 minute, doubling with each further one up to 15;
# an account from anywhere pauses past 50 in an hour, an address (any account) past 40 in 15
# minutes. The right password wipes that account's count from that address.
LOGIN_PAUSE_AFTER = 5
LOGIN_PAUSE_FIRST = timedelta(minutes=1)
LOGIN_PAUSE_LONGEST = timedelta(minutes=15)
LOGIN_FAILURES_PER_ACCOUNT = 50
LOGIN_ACCOUNT_WINDOW = timedelta(hours=1)
LOGIN_FAILURES_PER_ADDRESS = 40
LOGIN_FAILURE_WINDOW = timedelta(minutes=15)
# Reverse proxies in front of the app (comma-separated addresses): only a request from one of
# them has its X-Forwarded-For believed. Empty (the default): the peer's address is the client's.
TRUSTED_PROXIES = frozenset(
    a.strip() for a in env.str("TRUSTED_PROXIES", default="").split(",") if a.strip()
)

# --- Internationalization -------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = PAPERTRADE.staleness.market_timezone  # shown in the market's zone; stored in UTC
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
# Served as production expects them: `collectstatic` (make setup, the Dockerfile) writes each
# file under a content-hashed name with .br and .gz beside it, and fails on a reference to a
# file that does not exist; WhiteNoise then serves them compressed with a far-future immutable
# cache header. DEBUG, and the test suite's own servers (PAPERTRADE_PLAIN_STATIC=1), keep the
# plain storage, which needs no collectstatic.
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
PLAIN_STATIC = DEBUG or _bool("PAPERTRADE_PLAIN_STATIC", False)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if PLAIN_STATIC
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = PLAIN_STATIC  # in production only collected files are served
WHITENOISE_ROOT = BASE_DIR / "public"  # /favicon.ico and /robots.txt, at the site's root

# --- Security -------------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# Behind HTTPS in production: set SECURE_COOKIES=true (and HSTS below) in the environment.
SECURE_COOKIES = _bool("SECURE_COOKIES", False)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SECURE_SSL_REDIRECT = _bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = _env("SECURE_HSTS_SECONDS", env.int, 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Content-Security-Policy (django-csp): the pages load only our own scripts, styles, images and
# requests. The figures charts.js draws come as JSON, never as inline script, and no htmx
# trigger holds code (htmx would evaluate it). Styles may be inline: plotly.js and htmx insert
# <style> elements of their own.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- Logging --------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    # With Redis down, django-redis logs each ignored cache error: once per interval is enough.
    "filters": {
        "once_per_interval": {
            "()": "papertrade.logging.OncePerInterval",
            "seconds": PAPERTRADE.cache.error_log_interval_seconds,
        },
        "quiet_database_errors": {"()": "papertrade.logging.QuietDatabaseErrors"},
    },
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django_redis.cache": {"filters": ["once_per_interval"]},
        # A database outage is one WARNING line a request (papertrade/middleware.py), not a
        # traceback of "Internal Server Error" each.
        "django.request": {"filters": ["quiet_database_errors"]},
    },
}
