"""Django settings for AgenticPal, read from the environment and `.env`.

Every variable is documented in `.env.example` and the README's configuration table.
"""

from __future__ import annotations

from pathlib import Path

from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from agenticpal import redis_keys as keys
from agenticpal.config import (
    channel_layers,
    env,
    port,
    positive_int,
    read_dotenv,
    redis_settings,
    redis_url,
    seconds,
    sqlite_directory,
)

BASE_DIR = Path(__file__).resolve().parent.parent
read_dotenv(BASE_DIR)

DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
CSRF_FAILURE_VIEW = "chat.api.csrf_failure"  # JSON 403 for /api/, the usual page elsewhere

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "social_django",
    "sessions_redis",
    "workspace",
    "chat",
    "agenticpal.apps.AgenticPalConfig",  # start-up checks (agenticpal/checks.py), favicon
]

MIDDLEWARE = [
    "agenticpal.middleware.RedisUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "agenticpal.whitenoise_asgi.WhiteNoiseMiddleware",
    "sessions_redis.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Pages load nothing from elsewhere: no external image can carry data out (a reply or an
# email that names one), no inline script runs. Google sign-in is a redirect, not a load.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],  # the admin's style attributes
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],  # the chat websocket and EventSource, same origin
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
    }
}
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

ROOT_URLCONF = "agenticpal.urls"
WSGI_APPLICATION = "agenticpal.wsgi.application"
ASGI_APPLICATION = "agenticpal.asgi.application"

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

VAR_DIR = Path(env.str("AGENTICPAL_VAR_DIR", default=str(BASE_DIR / "var")))
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
sqlite_directory(DATABASES["default"])  # var/ on a fresh clone
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
WHITENOISE_USE_FINDERS = True  # serve app static files without collectstatic in development
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Redis -----------------------------------------------------------------
# One dict, like django-redis: agenticpal.redis_clients turns it into clients.
# Unset REDIS_URL: the embedded server of `make run` / `make redis` (agenticpal/serve.py),
# on 127.0.0.1:EMBEDDED_REDIS_PORT, so every manage.py command reaches the same one.
EMBEDDED_REDIS_PORT = port("EMBEDDED_REDIS_PORT", 6379)
_REDIS_URL = redis_url("REDIS_URL", f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}")
REDIS = redis_settings(
    _REDIS_URL,
    checkpoints_url=redis_url("CHECKPOINT_REDIS_URL", None),
    socket_timeout=positive_int("REDIS_SOCKET_TIMEOUT", 5),
    connect_timeout=positive_int("REDIS_CONNECT_TIMEOUT", 2),
    max_connections=positive_int("REDIS_MAX_CONNECTIONS", 200),
    # REDIS_URL names any node of a Redis Cluster (README: "Redis Cluster").
    cluster=env.bool("REDIS_CLUSTER", default=False),
)

SESSION_TTL_SECONDS = positive_int("SESSION_TTL_SECONDS", keys.SESSION_TTL_SECONDS)
OAUTH_STATE_TTL_SECONDS = positive_int("OAUTH_STATE_TTL_SECONDS", keys.OAUTH_STATE_TTL_SECONDS)

SESSION_ENGINE = "sessions_redis.backend"
SESSION_COOKIE_AGE = SESSION_TTL_SECONDS
SESSION_SERIALIZER = "django.contrib.sessions.serializers.JSONSerializer"
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=SESSION_COOKIE_SECURE)


# --- HTTPS: .env.example's production section passes `manage.py check --deploy` ------
def _hsts_seconds(name: str) -> int:
    raw = env.str(name, default="").strip() or "0"
    if not raw.isdigit():
        raise ImproperlyConfigured(
            f"{name} must be a whole number of seconds (0: off), got {raw!r}."
        )
    return int(raw)


def _proxy_ssl_header(name: str) -> tuple[str, str] | None:
    raw = env.str(name, default="").strip()
    if not raw:
        return None
    header, _, value = (part.strip() for part in raw.partition(","))
    if not header.startswith("HTTP_") or not value or "," in value:
        raise ImproperlyConfigured(
            f"{name} must be 'HTTP_<HEADER>,<value>', e.g. HTTP_X_FORWARDED_PROTO,https; got {raw!r}."
        )
    return header, value


SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # a load balancer's plain-HTTP health check
SECURE_HSTS_SECONDS = _hsts_seconds("SECURE_HSTS_SECONDS")
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Behind a proxy that terminates TLS: the header (and value) it sets on https requests.
SECURE_PROXY_SSL_HEADER = _proxy_ssl_header("SECURE_PROXY_SSL_HEADER")

# channels-redis's pub/sub layer, publishing without its per-process lock (see
# agenticpal/channel_layer.py); a Redis that stops answering fails a publish in time.
CHANNEL_LAYERS = channel_layers(REDIS)

# --- Assistant -------------------------------------------------------------
AGENTICPAL_MODEL = env.str("AGENTICPAL_MODEL", default="")
# The offline demo model's pause between words (visible streaming); 0 for none.
AGENTICPAL_OFFLINE_WORD_DELAY = seconds("AGENTICPAL_OFFLINE_WORD_DELAY", 0.08)
# "agenticpal" (core Redis, db 1) or "official" (langgraph-checkpoint-redis; needs
# Redis 8 / Redis Stack modules and db 0).
CHECKPOINTER = env.str("CHECKPOINTER", default="agenticpal")
# Conversations idle this long are dropped by Redis (unset: kept until pruned, the seed's
# "persistent"); every turn renews it.
CHECKPOINT_TTL_SECONDS = positive_int("CHECKPOINT_TTL_SECONDS", 0) or None
# How many checkpoints (the time-travel history) each conversation keeps: the end of a
# turn and prune_checkpoints trim the older ones (chat/retention.py); unset: all.
CHECKPOINT_KEEP_LATEST = positive_int("CHECKPOINT_KEEP_LATEST", 0) or None
# A reply streams as one "token" event at most this often (words that arrive meanwhile
# go out together): fewer Redis publishes and websocket frames per reply; the first
# words go out at once.
CHAT_TOKEN_WINDOW_SECONDS = seconds("CHAT_TOKEN_WINDOW_SECONDS", 0.1)
# ... and one server process publishes at most about this many token events a second
# over all its replies: with more replies streaming at once, each one's window widens.
CHAT_TOKEN_EVENTS_PER_SECOND = positive_int("CHAT_TOKEN_EVENTS_PER_SECOND", 200)
# A server worker collects the garbage collector's youngest generation after this many
# new container objects (Python's default: 700; agenticpal.serve.freeze_heap, and the
# README's "Where the server's CPU goes" for what it changes).
GC_THRESHOLD = positive_int("GC_THRESHOLD", 20_000)
# What one user may queue: nobody fills Redis for everyone else.
CHAT_MAX_QUEUED_MESSAGES = positive_int("CHAT_MAX_QUEUED_MESSAGES", keys.MAX_QUEUED_MESSAGES)
CHAT_MESSAGES_PER_MINUTE = positive_int("CHAT_MESSAGES_PER_MINUTE", keys.MESSAGES_PER_MINUTE)
CHAT_MAX_THREADS_PER_USER = positive_int("CHAT_MAX_THREADS_PER_USER", keys.MAX_THREADS_PER_USER)
SIGN_IN_ATTEMPTS_PER_MINUTE = positive_int(
    "SIGN_IN_ATTEMPTS_PER_MINUTE", keys.SIGN_IN_ATTEMPTS_PER_MINUTE
)

# --- Google sign-in ----------------------------------------------------------
SOCIAL_AUTH_GOOGLE_OAUTH2_KEY = env.str("GOOGLE_OAUTH2_KEY", default="")
SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET = env.str("GOOGLE_OAUTH2_SECRET", default="")
CREDENTIALS_ENCRYPTION_KEYS = env.list("CREDENTIALS_ENCRYPTION_KEY", default=[])

AUTHENTICATION_BACKENDS = [
    # social-core's Google backend with the OAuth state in Redis (oauth_state:<state>).
    "workspace.oauth_state.GoogleOAuth2",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"

# What the assistant's tools need (openid, email and profile are added by the backend).
SOCIAL_AUTH_GOOGLE_OAUTH2_SCOPE = [
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/gmail.modify",
    "https://www.googleapis.com/auth/tasks",
]
SOCIAL_AUTH_GOOGLE_OAUTH2_AUTH_EXTRA_ARGUMENTS = {
    "access_type": "offline",
    "include_granted_scopes": "true",
}
SOCIAL_AUTH_LOGIN_ERROR_URL = "/login/"
# Behind a TLS-terminating proxy: send Google an https:// redirect URI.
SOCIAL_AUTH_REDIRECT_IS_HTTPS = env.bool("OAUTH_REDIRECT_IS_HTTPS", default=False)
SOCIAL_AUTH_PIPELINE = (
    "social_core.pipeline.social_auth.social_details",
    "social_core.pipeline.social_auth.social_names",
    "social_core.pipeline.social_auth.social_uid",
    "social_core.pipeline.social_auth.auth_allowed",
    "workspace.pipeline.require_offline_access",
    "social_core.pipeline.social_auth.social_user",
    "social_core.pipeline.user.get_username",
    "social_core.pipeline.user.create_user",
    "social_core.pipeline.social_auth.associate_user",
    # Instead of load_extra_data: tokens to Redis (encrypted), never to SQL.
    "workspace.pipeline.store_credentials",
    "social_core.pipeline.user.user_details",
)
LOGIN_TOKEN_TTL_SECONDS = positive_int("LOGIN_TOKEN_TTL_SECONDS", keys.LOGIN_TOKEN_TTL_SECONDS)
# Google's endpoints; point them elsewhere for a proxy (the token and revoke URLs apart).
GOOGLE_API_BASE_URL = env.str("GOOGLE_API_BASE_URL", default="https://www.googleapis.com")
GOOGLE_API_TIMEOUT = seconds("GOOGLE_API_TIMEOUT", 10) or 10  # 0 would fail every call
GOOGLE_OAUTH_TOKEN_URL = env.str("GOOGLE_OAUTH_TOKEN_URL", default="")
GOOGLE_OAUTH_REVOKE_URL = env.str("GOOGLE_OAUTH_REVOKE_URL", default="")
# Whether saving a Gmail draft also waits for the user's approval (sending always does).
WORKSPACE_APPROVE_DRAFTS = env.bool("WORKSPACE_APPROVE_DRAFTS", default=False)
# The demo workspace: a local emulator of Calendar, Gmail and Tasks (sample data, in this
# process) for users signed in locally. On by default in development without Google.
WORKSPACE_DEMO = env.bool(
    "WORKSPACE_DEMO",
    default=DEBUG and not (SOCIAL_AUTH_GOOGLE_OAUTH2_KEY and SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET),
)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (see .env.example).")
    SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Session ids, OAuth codes/states and tokens never reach a log line (uvicorn's own
    # loggers get the same filter from agenticpal.asgi).
    "filters": {"redact": {"()": "agenticpal.log_redaction.RedactingFilter"}},
    "formatters": {
        "plain": {"format": "%(levelname)s %(name)s: %(message)s"},
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]},
        "django.server": {  # runserver's request lines, as Django logs them, redacted
            "class": "logging.StreamHandler",
            "formatter": "django.server",
            "filters": ["redact"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's default handlers for "django" (a second, unfiltered console line in
        # DEBUG; mail to ADMINS, which are not set): every line goes through "console".
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
        "django.security": {"level": "INFO", "propagate": True},
        "httpx": {"level": "WARNING"},  # one line per Google request is noise
    },
}
