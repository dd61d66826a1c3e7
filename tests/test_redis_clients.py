"""agenticpal.redis_clients: pooled clients heal after Redis restarts, on their next use."""

from __future__ import annotations

import threading
import time

import pytest
from django.test import override_settings

from agenticpal import redis_clients
from agenticpal.redis_server import RedisServer
from tests.conftest import redis_settings, use_redis


def restart_soon(server: RedisServer, after: float = 0.3) -> threading.Thread:
    """Start ``server`` again (same port, same data dir) after ``after`` seconds."""
    thread = threading.Thread(target=lambda: (time.sleep(after), server.start()))
    thread.start()
    return thread


def test_a_sync_client_survives_a_restart(redis_factory):
    server = redis_factory(appendonly=True)
    with use_redis(server):
        client = redis_clients.get_client("sessions")
        client.set("k", "before")  # the pool now holds a connection
        server.stop()
        server.start()
        assert client.get("k") == b"before"  # the stale connection was replaced, no error


async def test_an_async_client_waits_for_redis_to_come_back(redis_factory):
    server = redis_factory(appendonly=True)
    with use_redis(server):
        client = redis_clients.get_async_client("sessions")
        await client.set("k", "before")
        server.stop()
        restarting = restart_soon(server)
        try:
            assert await client.get("k") == b"before"  # retried with backoff meanwhile
        finally:
            restarting.join()


async def test_a_redis_that_stays_down_still_fails_in_seconds(redis_factory):
    server = redis_factory()
    with use_redis(server):
        client = redis_clients.get_async_client("sessions")
        await client.ping()
        server.stop()
        started = time.monotonic()
        with pytest.raises(redis_clients.UNAVAILABLE_ERRORS):
            await client.ping()
        assert time.monotonic() - started < 6


async def test_a_wrong_password_fails_at_once_not_after_the_retries(redis_factory):
    """redis-py's AuthenticationError is a ConnectionError; it must not wait 1.5-3 s of
    retries like a restart does: the fix is the configuration, not time."""
    import redis

    server = redis_factory()
    redis.Redis.from_url(server.url).config_set("requirepass", "right-password")
    wrong = server.url.replace("redis://", "redis://:wrong-password@")
    with override_settings(**redis_settings(wrong)):
        started = time.monotonic()
        with pytest.raises(redis.exceptions.AuthenticationError):
            await redis_clients.get_async_client("sessions").ping()
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis_clients.get_client("sessions").ping()
        assert time.monotonic() - started < 1.0
