"""LangGraph checkpoints in Redis db 1: the savers and ``create_redis_checkpointer()``.

``create_redis_checkpointer()`` is the seed's entry point: ``AsyncRedisCheckpointer`` on
db 1 of ``REDIS_URL`` (or ``CHECKPOINT_REDIS_URL``), or the ``langgraph-checkpoint-redis``
saver with ``CHECKPOINTER = "official"``. Key guarantee: the web path (``fallback=False``)
never loses a conversation silently: Redis down raises ``CheckpointerUnavailableError``
(503 / 1011); only the CLI (``fallback=True``) falls back, loudly, to ``InMemorySaver``.
It builds a saver per call (the async client is bound to the running loop); callers cache
one per loop. :func:`sync_checkpointer` is the sync saver for the admin and commands.
See the README's "LangGraph checkpoints (db 1)" section.
"""

from __future__ import annotations

import logging
import sys

from django.conf import settings
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from agenticpal import redis_clients
from agenticpal import redis_keys as keys
from agenticpal.config import mask_password, with_db
from chat.checkpoint.aio import AsyncRedisCheckpointer
from chat.checkpoint.base import (
    CheckpointDecodeError,
    CheckpointerUnavailableError,
    ThreadInfo,
    ThreadStats,
)
from chat.checkpoint.sync import RedisCheckpointer

__all__ = [
    "AsyncRedisCheckpointer",
    "CheckpointDecodeError",
    "CheckpointerUnavailableError",
    "RedisCheckpointer",
    "ThreadInfo",
    "ThreadStats",
    "checkpoint_ttl",
    "create_redis_checkpointer",
    "sync_checkpointer",
]

logger = logging.getLogger(__name__)

CHECKPOINTER_CHOICES = ("agenticpal", "official")


def checkpoint_ttl() -> int | None:
    """``CHECKPOINT_TTL_SECONDS``: how long an idle conversation is kept (None: for ever).

    Every write renews the TTL of the thread's keys, so it counts from the last turn.
    """
    return getattr(settings, "CHECKPOINT_TTL_SECONDS", None) or None


def sync_checkpointer() -> RedisCheckpointer:
    """The project's saver on db 1 for sync callers (admin pages, commands)."""
    return RedisCheckpointer(redis_clients.get_client("checkpoints"), ttl=checkpoint_ttl())


async def create_redis_checkpointer(*, fallback: bool = False) -> BaseCheckpointSaver:
    """The checkpointer for the running event loop (see the module docstring)."""
    choice = str(getattr(settings, "CHECKPOINTER", "agenticpal") or "agenticpal").lower()
    if choice not in CHECKPOINTER_CHOICES:
        raise ValueError(
            f"CHECKPOINTER={choice!r} is not known: use 'agenticpal' (core Redis, db 1) "
            "or 'official' (langgraph-checkpoint-redis, Redis 8 / Redis Stack, db 0)."
        )
    url = redis_clients.url_for("checkpoints")
    try:
        if choice == "official":
            return await _official_saver(url)
        client = redis_clients.get_async_client("checkpoints")
        saver = AsyncRedisCheckpointer(client, ttl=checkpoint_ttl())
        await saver.aping()
        return saver
    except CheckpointerUnavailableError as exc:
        if not fallback:
            raise
        _warn_fallback(url if choice != "official" else with_db(url, keys.OFFICIAL_SAVER_DB), exc)
        return InMemorySaver()


async def _official_saver(url: str) -> BaseCheckpointSaver:
    try:
        from langgraph.checkpoint.redis.aio import AsyncRedisSaver
    except ImportError as exc:
        raise ImportError(
            "CHECKPOINTER=official needs langgraph-checkpoint-redis: "
            "pip install 'agenticpal[official-saver]' (and a Redis 8 or Redis Stack server)."
        ) from exc
    url = with_db(url, keys.OFFICIAL_SAVER_DB)
    client = redis_clients.async_client_for_url(url)
    try:
        await client.ping()
    except redis_clients.UNAVAILABLE_ERRORS as exc:
        await client.aclose()
        raise CheckpointerUnavailableError(
            f"The checkpoint store (Redis at {mask_password(url)}, official saver) did not "
            f"answer ({exc}). Start it or fix CHECKPOINT_REDIS_URL / REDIS_URL."
        ) from exc
    saver = AsyncRedisSaver(redis_client=client)
    try:
        await saver.asetup()
    except Exception as exc:
        raise RuntimeError(
            f"The official Redis saver could not set up its indexes on {mask_password(url)} "
            f"({exc}). It needs the RediSearch and RedisJSON modules (Redis 8 or Redis "
            "Stack); on plain Redis leave CHECKPOINTER unset to use the built-in saver."
        ) from exc
    return saver


def _warn_fallback(url: str, exc: BaseException) -> None:
    line = "!" * 78
    message = (
        f"Redis at {mask_password(url)} is not reachable ({exc.__cause__ or exc}).\n"
        "Using an in-memory checkpointer: this conversation will NOT be saved and is lost\n"
        "when the process exits. Start Redis (`make redis`) or set REDIS_URL /\n"
        "CHECKPOINT_REDIS_URL to keep conversations."
    )
    logger.warning("Checkpointer fallback: %s", message.replace("\n", " "))
    print(f"{line}\nWARNING: {message}\n{line}", file=sys.stderr, flush=True)
