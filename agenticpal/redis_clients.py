"""The one place that turns ``settings.REDIS`` into Redis clients.

Sync clients share one connection pool per database for the whole process. Async
clients (``redis.asyncio``) are bound to the event loop that made them, so there is
one pool per database *per running loop*; a loop that closes takes its pool with it.
Changing ``settings.REDIS`` (``override_settings`` in tests) drops every cached pool.

Async connections pack commands with hiredis, as sync ones already do: redis-py's
``redis.asyncio`` packs in pure Python, which made one ``EVALSHA`` about a third
slower than necessary (:class:`HiredisPackingConnection`).

With ``settings.REDIS["CLUSTER"]`` (``REDIS_CLUSTER=true``) every client is a
``RedisCluster`` (sync or asyncio) started from the node the URL names; both purposes
share the cluster's database 0 (the checkpoints keep apart by their key prefix, see
:mod:`agenticpal.redis_keys`).

Nothing here runs at import time: clients are built on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from redis.commands import core as _commands
from redis.driver_info import DriverInfo
from redis.exceptions import NoScriptError

from agenticpal import redis_keys
from agenticpal.config import mask_password

Purpose = Literal["sessions", "checkpoints"]

# Errors that mean "Redis is not there right now" (as opposed to a bad command).
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    # Redis Cluster: the slot's node is down, or no node could be reached at all.
    redis.exceptions.ClusterDownError,
    redis.exceptions.SlotNotCoveredError,
    redis.exceptions.MaxConnectionsError,
    redis.exceptions.RedisClusterException,
)

_lock = threading.Lock()
_sync: dict[Purpose, redis.Redis] = {}
_async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Purpose, aioredis.Redis]] = (
    weakref.WeakKeyDictionary()
)


def url_for(purpose: Purpose) -> str:
    conf = settings.REDIS
    return conf["SESSIONS_URL"] if purpose == "sessions" else conf["CHECKPOINTS_URL"]


def is_cluster() -> bool:
    """``REDIS_CLUSTER``: the URLs name a node of a Redis Cluster."""
    return bool(settings.REDIS.get("CLUSTER"))


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


# What each new connection tells Redis (CLIENT SETINFO), given once: left to redis-py, every
# connection a pool opens looks its own version up in the installed packages' metadata
# (importlib.metadata: about 1% of the server's CPU in a 200-chat burst, while the pools
# grow).
DRIVER_INFO = DriverInfo(lib_version=redis.__version__)


def _pool_kwargs(*, asynchronous: bool = False) -> dict:
    conf = settings.REDIS
    retry = (_AsyncRetry if asynchronous else _Retry)(RETRY_BACKOFF, RETRIES)
    return {
        "driver_info": DRIVER_INFO,
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
    options.setdefault("driver_info", DRIVER_INFO)
    options.setdefault("timeout", options.get("socket_timeout") or 5)
    pool = aioredis.BlockingConnectionPool.from_url(address, **options)
    if pool.connection_class is aioredis.Connection:  # TCP: pack commands with hiredis
        pool.connection_class = HiredisPackingConnection
    return pool


def _cluster_kwargs() -> dict:
    """A ``RedisCluster``'s options: the pools' timeouts and bounds, per node.

    ``require_full_coverage=False``: while one node is down the client keeps serving
    the slots of the others (its own requests fail, and are retried by redis-py's
    cluster retry, which also re-reads the topology).
    """
    kwargs = _pool_kwargs()
    kwargs.pop("retry")
    kwargs.pop("retry_on_error")
    return {**kwargs, "require_full_coverage": False}


def _cluster_client(url: str) -> redis.RedisCluster:
    return redis.RedisCluster.from_url(url, **_cluster_kwargs())


def _async_cluster_client(url: str) -> aioredis.RedisCluster:
    kwargs = _cluster_kwargs()
    kwargs.pop("health_check_interval")
    return aioredis.RedisCluster.from_url(url, **kwargs)


def get_client(purpose: Purpose = "sessions") -> redis.Redis:
    """A pooled sync client for db 0 (``"sessions"``) or db 1 (``"checkpoints"``)."""
    client = _sync.get(purpose)
    if client is None:
        with _lock:
            client = _sync.get(purpose)
            if client is None:
                client = _sync[purpose] = client_for_url(url_for(purpose))
    return client


def get_async_client(purpose: Purpose = "sessions") -> aioredis.Redis:
    """A pooled ``redis.asyncio`` client for the running event loop."""
    loop = asyncio.get_running_loop()
    per_loop = _async.get(loop)
    if per_loop is None:
        per_loop = _async[loop] = {}
    client = per_loop.get(purpose)
    if client is None:
        client = per_loop[purpose] = async_client_for_url(url_for(purpose))
    return client


def client_for_url(url: str) -> redis.Redis:
    """A sync client with its own pool for an explicit URL (the caller owns it)."""
    if is_cluster():
        return _cluster_client(url)
    return redis.Redis(connection_pool=redis.ConnectionPool.from_url(url, **_pool_kwargs()))


def async_client_for_url(url: str) -> aioredis.Redis:
    """A ``redis.asyncio`` client with its own pool for an explicit URL.

    For callers that were handed a URL (``SessionManager(redis_url=...)``, the seed's
    API) instead of using the settings; the caller owns it and must ``aclose()`` it.
    """
    if is_cluster():
        return _async_cluster_client(url)
    return aioredis.Redis(connection_pool=_async_pool(url))


# The source of every script the app defines (:class:`Script`, :class:`AsyncScript`),
# which :func:`aload_scripts` loads into a server before the first request needs them.
SCRIPT_SOURCES: dict[str, bytes | str] = {}


class Script(_commands.Script):
    """redis-py's ``Script`` (``Script(None, source)``, each call naming its client).

    On a Redis Cluster a script the node does not know yet is sent with ``EVAL`` to the
    node of its keys (which caches it): redis-py would ``SCRIPT LOAD`` it on every
    primary first, so one node down would fail the scripts of all the others.
    """

    def __init__(self, registered_client, script) -> None:
        super().__init__(registered_client, script)
        SCRIPT_SOURCES[self.sha] = self.script

    def __call__(self, keys=None, args=None, client=None):
        client = self.registered_client if client is None else client
        if not isinstance(client, redis.RedisCluster):
            return super().__call__(keys, args, client)
        keys, args = list(keys or ()), list(args or ())
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return client.eval(self.script, len(keys), *keys, *args)


class AsyncScript(_commands.AsyncScript):
    """:class:`Script` for ``redis.asyncio`` clients."""

    def __init__(self, registered_client, script) -> None:
        super().__init__(registered_client, script)
        SCRIPT_SOURCES[self.sha] = self.script

    async def __call__(self, keys=None, args=None, client=None):
        client = self.registered_client if client is None else client
        if not isinstance(client, aioredis.RedisCluster):
            return await super().__call__(keys, args, client)
        keys, args = list(keys or ()), list(args or ())
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.script, len(keys), *keys, *args)


async def aload_scripts(client: aioredis.Redis, sources: list[bytes | str] | None = None) -> int:
    """``SCRIPT LOAD`` ``sources`` (default: every script of :data:`SCRIPT_SOURCES`) into
    the client's server, in one round trip; on a cluster, into each primary it can reach
    (a node that is down loads its scripts with ``EVAL`` on first use, as before). The
    first call of each script is then one ``EVALSHA`` instead of three round trips
    (``EVALSHA``, ``NOSCRIPT``, ``SCRIPT LOAD``, ``EVALSHA``). Returns how many were sent.
    """
    sources = list(SCRIPT_SOURCES.values()) if sources is None else sources
    if isinstance(client, aioredis.RedisCluster):
        await client.initialize()  # learns the nodes (once per client)
        for node in client.get_primaries():
            with contextlib.suppress(*UNAVAILABLE_ERRORS):
                for source in sources:
                    await client.execute_command("SCRIPT LOAD", source, target_nodes=node)
        return len(sources)
    async with client.pipeline(transaction=False) as pipe:
        for source in sources:
            pipe.script_load(source)
        await pipe.execute()
    return len(sources)


def mget(client: redis.Redis, names: list[str]) -> list[bytes | None]:
    """``MGET`` of keys that may live in different slots of a cluster (one round trip per
    node there, in parallel; one round trip on a single server)."""
    if isinstance(client, redis.RedisCluster):
        return client.mget_nonatomic(names)
    return client.mget(names)


async def amget(client: aioredis.Redis, names: list[str]) -> list[bytes | None]:
    if isinstance(client, aioredis.RedisCluster):
        return await client.mget_nonatomic(names)
    return await client.mget(names)


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
            if isinstance(client, redis.RedisCluster):
                client.close()
            else:
                client.connection_pool.disconnect()
        _sync.clear()
        _async.clear()


@receiver(setting_changed)
def _on_setting_changed(setting: str, **kwargs) -> None:
    if setting == "REDIS":
        redis_keys.cluster_mode.cache_clear()
        reset()
