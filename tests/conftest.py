"""Test fixtures: real ``redis-server`` processes on free ports, never 127.0.0.1:6379.

A session-wide server backs every test (db 0 and db 1 are flushed before each test:
the server is ours, started here). Tests that stop or restart Redis take their own
server from ``redis_factory`` and point the settings at it with ``use_redis``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import respx
from django.test import override_settings

from agenticpal import config, redis_clients
from agenticpal.redis_server import RedisClusterServers, RedisServer
from tests.google_bodies import BASE, FakeTokens
from workspace.google import client as google_client
from workspace.google.client import GoogleClient


def redis_settings(url: str, *, cluster: bool = False) -> dict:
    """The settings overrides that point the whole project at the server ``url``."""
    conf = config.redis_settings(url, connect_timeout=1, max_connections=500, cluster=cluster)
    return {"REDIS": conf, "CHANNEL_LAYERS": config.channel_layers(conf)}


@contextlib.contextmanager
def use_redis(server: RedisServer) -> Iterator[RedisServer]:
    """Point settings (and so every client the project builds) at ``server``."""
    with override_settings(**redis_settings(server.url)):
        yield server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis-main"), appendonly=False).start()
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def _project_uses_test_redis(redis_server: RedisServer, django_test_environment) -> Iterator[None]:
    overrides = override_settings(**redis_settings(redis_server.url))
    overrides.enable()
    yield
    overrides.disable()
    redis_clients.reset()


@pytest.fixture(autouse=True)
def _clean_redis(redis_server: RedisServer) -> None:
    """Empty db 0 and db 1 of *our* server before each test."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()


@pytest.fixture
def redis_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Start extra servers (stopped at the end of the test)."""
    started: list[RedisServer] = []

    def start(**kwargs) -> RedisServer:
        server = RedisServer(tmp_path_factory.mktemp("redis-extra"), **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    redis_clients.reset()


@pytest.fixture
def private_redis(redis_factory) -> Iterator[RedisServer]:
    """A server of this test's own, with the project's settings pointing at it."""
    server = redis_factory()
    with use_redis(server):
        yield server


@pytest.fixture(scope="session")
def redis_cluster_servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RedisClusterServers]:
    """A real 3-master Redis Cluster on loopback, started once (about 2 s)."""
    cluster = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_cluster(redis_cluster_servers: RedisClusterServers) -> Iterator[RedisClusterServers]:
    """The project on the Redis Cluster (``REDIS_CLUSTER``), every node emptied first."""
    for node in redis_cluster_servers.nodes:
        node.start()  # a test may have stopped one
        with redis.Redis.from_url(node.url) as client:
            client.flushall()
    with override_settings(**redis_settings(redis_cluster_servers.url, cluster=True)):
        yield redis_cluster_servers
    redis_clients.reset()


@pytest.fixture
def sessions_redis() -> redis.Redis:
    """A raw client on db 0 of the current test server, to look at what was stored."""
    return redis_clients.get_client("sessions")


@pytest.fixture
def checkpoints_redis() -> redis.Redis:
    return redis_clients.get_client("checkpoints")


@pytest.fixture(autouse=True)
async def _finish_chat_runs() -> AsyncIterator[None]:
    """Let the test's background chat runs finish before its event loop closes."""
    yield
    from chat import runner

    await runner.drain()


# --- Google, stubbed at the HTTP layer (bodies in tests/google_bodies.py) -------------------


@pytest.fixture(name="google_api")
def google_api_fixture(settings) -> Iterator[respx.MockRouter]:
    settings.GOOGLE_API_BASE_URL = BASE
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture(name="retry_sleeps")
def retry_sleeps_fixture(monkeypatch) -> list[float]:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(google_client, "sleep", record)
    return waits


@pytest.fixture(name="google_client")
def google_client_fixture(google_api, retry_sleeps) -> GoogleClient:
    return GoogleClient(FakeTokens())
