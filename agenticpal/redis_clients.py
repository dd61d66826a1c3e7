"""The one place that turns ``settings.REDIS`` into Redis clients.

Sync clients share one connection pool per database for the whole process. Async
clients (``redis.asyncio``) are bound to the event loop that made them, so there is
one pool per database *per running loop*; a loop that closes takes its pool with it.
Changing ``settings.REDIS`` (``override_settings`` in tests) drops every cached pool.

Async connections pack commands with hiredis, as sync ones already do: redis-py's
``redis.asyncio`` packs in pure Python, which made one ``EVALSHA`` about a third
slower than necessary (:class:`HiredisPackingConnection`).

Nothing here runs at import time: clients are built on first use.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import weakref
from collections.abc import Callable
from typing import Any, Literal

import redis
import redis.asyncio as aioredis
import redis.asyncio.retry
import redis.retry
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from redis.backoff import EqualJitterBackoff

from agenticpal.config import mask_password

Purpose = Literal["sessions", "checkpoints"]

# Errors that mean "Redis is not there right now" (as opposed to a bad command).
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
)

_lock = threading.Lock()
_sync: dict[Purpose, redis.Redis] = {}
_async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Purpose, aioredis.Redis]] = (
    weakref.WeakKeyDictionary()
)


def url_for(purpose: Purpose) -> str:
    conf = settings.REDIS
    return conf["SESSIONS_URL"] if purpose == "sessions" else conf["CHECKPOINTS_URL"]


def display_url(purpose: Purpose = "sessions") -> str:
    """The URL with any password masked, for messages a person reads."""
    return mask_password(url_for(purpose))


class HiredisPackingConnection(aioredis.Connection):
    """``redis.asyncio``'s TCP connection with the sync client's hiredis command packer."""

    _packer = redis.connection.HiredisRespSerializer() if redis.utils.HIREDIS_AVAILABLE else None

    def pack_command(self, *args):
        if self._packer is None:
            return super().pack_command(*args)
        return self._packer.pack(*args)


def _async_pool(url: str) -> aioredis.ConnectionPool:
    pool = aioredis.ConnectionPool.from_url(url, **_pool_kwargs(asynchronous=True))
    if pool.connection_class is aioredis.Connection:  # not unix:// or rediss://
        pool.connection_class = HiredisPackingConnection
    return pool


# A pooled connection that Redis dropped (a restart, a failover, a kill) fails on its
# next use; the command is then retried on a fresh connection, with jittered backoff
# while Redis comes back or loads its data; a timed-out command is retried too (redis-py's
# default), so scripts that must not run twice recognise their own repeat (chat.pending).
# A wrong password is not retried.
RETRIES = 4
RETRY_BACKOFF = EqualJitterBackoff(base=0.1, cap=2.0)  # 1.5-3 s in all


def _retryable(error: Exception, also: Callable[[Exception], bool] | None = None) -> bool:
    """A wrong password (redis-py's AuthenticationError is a ConnectionError) fails at once."""
    if isinstance(error, redis.exceptions.AuthenticationError):
        return False
    return also(error) if also is not None else True


class _Retry(redis.retry.Retry):
    def call_with_retry(self, do, fail, is_retryable=None, with_failure_count=False):
        check = functools.partial(_retryable, also=is_retryable)
        return super().call_with_retry(do, fail, check, with_failure_count)


class _AsyncRetry(aioredis.retry.Retry):
    async def call_with_retry(self, do, fail, is_retryable=None, with_failure_count=False):
        check = functools.partial(_retryable, also=is_retryable)
        return await super().call_with_retry(do, fail, check, with_failure_count)


def _pool_kwargs(*, asynchronous: bool = False) -> dict:
    conf = settings.REDIS
    retry = (_AsyncRetry if asynchronous else _Retry)(RETRY_BACKOFF, RETRIES)
    return {
        "socket_timeout": conf.get("SOCKET_TIMEOUT", 5),
        "socket_connect_timeout": conf.get("CONNECT_TIMEOUT", 2),
        "max_connections": conf.get("MAX_CONNECTIONS", 200),
        "health_check_interval": 30,
        "retry": retry,
        "retry_on_error": [redis.exceptions.ConnectionError],
    }


CHANNEL_LAYER_MAX_CONNECTIONS = 50  # per shard and event loop, the subscriber's one included


def channel_layer_pool(host: dict[str, Any]) -> aioredis.BlockingConnectionPool:
    """The shard's pool for an ``{"address": url, ...}`` host.

    Upstream's pool suits one command at a time; publishing concurrently needs a bound
    that makes a burst wait for a free connection instead of failing with
    ``MaxConnectionsError`` (redis-py's plain pool raises past ``max_connections``).
    ``max_connections`` (default 50) and ``timeout`` (how long a publish waits for a
    connection; default the socket timeout, else 5 s) may be set in the host.
    """
    options = dict(host)
    address = options.pop("address")
    options.setdefault("max_connections", CHANNEL_LAYER_MAX_CONNECTIONS)
    options.setdefault("timeout", options.get("socket_timeout") or 5)
    pool = aioredis.BlockingConnectionPool.from_url(address, **options)
    if pool.connection_class is aioredis.Connection:  # TCP: pack commands with hiredis
        pool.connection_class = HiredisPackingConnection
    return pool


def get_client(purpose: Purpose = "sessions") -> redis.Redis:
    """A pooled sync client for db 0 (``"sessions"``) or db 1 (``"checkpoints"``)."""
    client = _sync.get(purpose)
    if client is None:
        with _lock:
            client = _sync.get(purpose)
            if client is None:
                pool = redis.ConnectionPool.from_url(url_for(purpose), **_pool_kwargs())
                client = _sync[purpose] = redis.Redis(connection_pool=pool)
    return client


def get_async_client(purpose: Purpose = "sessions") -> aioredis.Redis:
    """A pooled ``redis.asyncio`` client for the running event loop."""
    loop = asyncio.get_running_loop()
    per_loop = _async.get(loop)
    if per_loop is None:
        per_loop = _async[loop] = {}
    client = per_loop.get(purpose)
    if client is None:
        client = per_loop[purpose] = aioredis.Redis(connection_pool=_async_pool(url_for(purpose)))
    return client


def client_for_url(url: str) -> redis.Redis:
    """A sync client with its own pool for an explicit URL (the caller owns it)."""
    return redis.Redis(connection_pool=redis.ConnectionPool.from_url(url, **_pool_kwargs()))


def async_client_for_url(url: str) -> aioredis.Redis:
    """A ``redis.asyncio`` client with its own pool for an explicit URL.

    For callers that were handed a URL (``SessionManager(redis_url=...)``, the seed's
    API) instead of using the settings; the caller owns it and must ``aclose()`` it.
    """
    return aioredis.Redis(connection_pool=_async_pool(url))


def unavailable_message(exc: BaseException | None = None, purpose: Purpose = "sessions") -> str:
    """One sentence a person can act on when Redis does not answer."""
    reason = f" ({exc})" if exc else ""
    return (
        f"Redis at {display_url(purpose)} did not answer{reason}. Start it with `make redis` "
        "(or `docker compose up -d redis`), or set REDIS_URL to a running server."
    )


def reset() -> None:
    """Forget every cached client (their pools disconnect when collected)."""
    with _lock:
        for client in _sync.values():
            client.connection_pool.disconnect()
        _sync.clear()
        _async.clear()


@receiver(setting_changed)
def _on_setting_changed(setting: str, **kwargs) -> None:
    if setting == "REDIS":
        reset()
