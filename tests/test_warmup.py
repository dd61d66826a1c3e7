"""chat.warmup: a worker warms up before it takes connections, and starts whatever fails."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging

import redis
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from agenticpal import redis_clients, serve
from agenticpal.serve import DrainRunsAtShutdown
from chat import graph as chat_graph
from chat import warmup
from tests.conftest import redis_settings


def _loaded(client: redis.Redis, sources) -> list[bool]:
    shas = [hashlib.sha1(s if isinstance(s, bytes) else s.encode()).hexdigest() for s in sources]
    return client.script_exists(*shas)


async def test_warm_up_loads_every_script_and_builds_the_graph(sessions_redis):
    sessions_redis.script_flush()
    chat_graph.reset()
    assert await warmup.awarm() is True
    assert all(_loaded(sessions_redis, redis_clients.SCRIPT_SOURCES.values()))
    saver = await chat_graph.get_checkpointer()
    assert saver.script_sources and all(_loaded(sessions_redis, saver.script_sources))
    assert asyncio.get_running_loop() in chat_graph._graphs  # the product graph, built
    assert not list(sessions_redis.scan_iter())  # the graph's practice turn stored nothing


async def test_the_scripts_app_modules_define_are_known():
    from chat import events, pending, threads  # noqa: F401  (their scripts register)
    from sessions_redis import store  # noqa: F401

    sources = b"".join(
        s if isinstance(s, bytes) else s.encode() for s in redis_clients.SCRIPT_SOURCES.values()
    )
    assert b"LPOS" in sources  # pending's finish script
    assert b"XADD" in sources  # events' publish


async def test_redis_down_is_logged_and_the_worker_starts(redis_factory, caplog):
    server = redis_factory()
    url = server.url
    server.stop()
    chat_graph.reset()
    with override_settings(**redis_settings(url)), caplog.at_level(logging.WARNING, "chat.warmup"):
        assert await warmup.awarm(limit_seconds=20) is False
    assert "Redis unavailable" in caplog.text
    chat_graph.reset()


async def test_a_model_that_cannot_load_is_logged_and_the_worker_starts(monkeypatch, caplog):
    async def broken():
        raise ImproperlyConfigured("AGENTICPAL_MODEL names a provider that is not installed")

    monkeypatch.setattr(warmup, "get_graph", broken)
    with caplog.at_level(logging.WARNING, "chat.warmup"):
        assert await warmup.awarm() is False
    assert "Warm-up of the model failed" in caplog.text
    assert "not installed" in caplog.text


async def test_a_slow_warm_up_stops_at_its_timeout(monkeypatch, caplog):
    async def stuck():
        await asyncio.sleep(30)

    monkeypatch.setattr(warmup, "_exercise_graph", stuck)
    with caplog.at_level(logging.WARNING, "chat.warmup"):
        assert await warmup.awarm(limit_seconds=0.2) is False
    assert "stopped after" in caplog.text


async def test_the_lifespan_warms_up_before_startup_and_closes_connections_at_shutdown(monkeypatch):
    order: list[str] = []

    async def fake_warm() -> bool:
        order.append("warm")
        return True

    monkeypatch.setattr(warmup, "awarm", fake_warm)
    monkeypatch.setattr(gc, "freeze", lambda: order.append("freeze"))  # not pytest's heap
    monkeypatch.setattr(gc, "set_threshold", lambda *t: order.append(f"threshold {t[0]}"))
    monkeypatch.setattr(serve.COLLECTOR, "install", lambda: order.append("clock"))
    monkeypatch.setattr(
        "sessions_redis.websocket.close_connections", lambda: order.append("close connections")
    )
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive():
        return next(messages)

    async def send(message):
        order.append(message["type"])

    async def app(scope, receive, send):  # pragma: no cover - not reached for lifespan
        raise AssertionError

    await DrainRunsAtShutdown(app, drain_seconds=0)({"type": "lifespan"}, receive, send)
    assert order == [
        "warm", "freeze", "threshold 20000", "clock", "lifespan.startup.complete",
        "close connections", "lifespan.shutdown.complete",
    ]  # fmt: skip


async def test_the_collector_clock_counts_and_times_collections_and_the_worker_logs_them(caplog):
    clock = serve.CollectorClock()
    clock.install()
    clock.install()  # once only
    try:
        assert gc.callbacks.count(clock) == 1
        gc.collect()
        assert clock.collections == [0, 0, 1] and clock.seconds[2] > 0  # a full collection
    finally:
        gc.callbacks.remove(clock)
    caplog.set_level(logging.INFO, logger="agenticpal.serve")
    await DrainRunsAtShutdown(None, drain_seconds=0).drain()
    assert "garbage collections took" in caplog.text
