"""Reading settings from the environment and `.env`, with errors a person can act on.

django-environ reads `.env` and casts values; this module only adds validation so
that a bad value stops start-up with one line naming the variable, instead of a
traceback deep inside a Redis client or a worker.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import environ
from django.core.exceptions import ImproperlyConfigured

REDIS_SCHEMES = ("redis", "rediss", "unix")

env = environ.Env()


def read_dotenv(base_dir: Path) -> None:
    """Load `.env` from the project root (environment variables win)."""
    path = Path(os.environ.get("AGENTICPAL_ENV_FILE", base_dir / ".env"))
    if path.is_file():
        environ.Env.read_env(str(path), overwrite=False)


def positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}.") from None
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be greater than 0, got {value}.")
    return value


def port(name: str, default: int) -> int:
    """A TCP port number (1-65535)."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip()
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ImproperlyConfigured(f"{name} must be a port number (1-65535), got {raw!r}.")
    return int(value)


def sqlite_directory(database: dict) -> None:
    """Create the directory of a SQLite database file (``var/``) before Django opens it."""
    name = str(database.get("NAME") or "")
    if "sqlite" not in database.get("ENGINE", "") or not name or name.startswith(":memory:"):
        return
    if name.startswith("file:"):  # a URI filename
        return
    with contextlib.suppress(OSError):  # SQLite's own error, when it opens the file, says more
        Path(name).parent.mkdir(parents=True, exist_ok=True)


def seconds(name: str, default: float) -> float:
    """A duration in seconds that may be fractional or 0 (e.g. ``0.02``)."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number of seconds, got {raw!r}.") from None
    if not 0 <= value < 3600:
        raise ImproperlyConfigured(f"{name} must be between 0 and 3600 seconds, got {value}.")
    return value


def redis_url(name: str, default: str | None) -> str | None:
    """Validate a Redis URL: scheme, host, port and db must make sense."""
    raw = os.environ.get(name, "").strip() or default
    if raw is None:
        return None
    try:
        parts = urlsplit(raw)
        port = parts.port  # raises ValueError on a non-numeric port
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"{name} is not a valid Redis URL ({exc}): {mask_password(raw)!r}."
        ) from None
    if parts.scheme not in REDIS_SCHEMES:
        raise ImproperlyConfigured(
            f"{name} must start with redis://, rediss:// or unix://, got {mask_password(raw)!r}."
        )
    if parts.scheme != "unix" and not parts.hostname:
        raise ImproperlyConfigured(f"{name} has no host: {mask_password(raw)!r}.")
    if port is not None and not 0 < port < 65536:
        raise ImproperlyConfigured(f"{name} has an invalid port: {mask_password(raw)!r}.")
    path = parts.path.strip("/")
    if parts.scheme != "unix" and path and not path.isdigit():
        raise ImproperlyConfigured(
            f"{name} has a database path that is not a number: {mask_password(raw)!r}."
        )
    return raw


def with_db(url: str, db: int) -> str:
    """The same server URL pointed at database `db`."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = "&".join(q for q in parts.query.split("&") if q and not q.startswith("db="))
        query = f"{query}&db={db}" if query else f"db={db}"
        return f"unix://{parts.netloc}{parts.path}?{query}"
    return urlunsplit(parts._replace(path=f"/{db}"))


def mask_password(url: str) -> str:
    """`redis://:secret@host` -> `redis://:***@host`, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def redis_settings(
    url: str,
    *,
    checkpoints_url: str | None = None,
    socket_timeout: float = 5,
    connect_timeout: float = 2,
    max_connections: int = 200,
    cluster: bool = False,
) -> dict:
    """``settings.REDIS`` for a server ``url``: what agenticpal.redis_clients reads.

    The one builder of that dict, used by settings, the tests and the benchmarks. The
    databases are the key contract's (agenticpal.redis_keys); checkpoints may live on
    another server (``checkpoints_url``). ``cluster``: ``url`` names a node of a Redis
    Cluster, which has database 0 only, so sessions and checkpoints share it (their
    keys keep apart by prefix).
    """
    from agenticpal import redis_keys

    if cluster:
        if url.startswith("unix:"):
            raise ImproperlyConfigured("REDIS_CLUSTER needs a redis:// or rediss:// REDIS_URL.")
        sessions = checkpoints = with_db(url, 0)
        checkpoints = with_db(checkpoints_url, 0) if checkpoints_url else sessions
    else:
        sessions = with_db(url, redis_keys.SESSIONS_DB)
        checkpoints = checkpoints_url or with_db(url, redis_keys.CHECKPOINTS_DB)
    return {
        "URL": url,
        "CLUSTER": cluster,
        "SESSIONS_URL": sessions,
        "CHECKPOINTS_URL": checkpoints,
        "SOCKET_TIMEOUT": socket_timeout,
        "CONNECT_TIMEOUT": connect_timeout,
        "MAX_CONNECTIONS": max_connections,
    }


def channel_layers(conf: dict) -> dict:
    """``CHANNEL_LAYERS`` on the sessions database of a ``settings.REDIS`` dict."""
    host = {
        "address": conf["SESSIONS_URL"],
        "socket_timeout": conf["SOCKET_TIMEOUT"],
        "socket_connect_timeout": conf["CONNECT_TIMEOUT"],
    }
    return {
        "default": {
            "BACKEND": "agenticpal.channel_layer.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [host]},
        }
    }
