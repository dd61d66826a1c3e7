"""A worker's start-up warm-up, so that its first chat message is as fast as the others.

Without it, the first message a worker runs pays for what Python and the libraries do
once per process: compiling the graph and importing the model's provider package,
LangGraph's and LangChain's first run (lazy imports, caches), loading each Lua script
into Redis (``NOSCRIPT``, ``SCRIPT LOAD``, again) and opening the first connections. That
was 100-160 ms more time to first token, for the first message of each worker.

:func:`awarm` does that work before the worker takes connections (the ASGI lifespan's
start-up, :class:`agenticpal.serve.DrainRunsAtShutdown`): one turn of the graph with the
offline model on an in-memory saver (no Redis, no provider call, nothing stored), the
product graph and its checkpointer built for this event loop, and every script loaded.
It is best effort: Redis down or a model that cannot load are logged and the worker
starts all the same (requests then get the 503 page, runs the error event, as before).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from langgraph.checkpoint.memory import InMemorySaver

from agenticpal import redis_clients
from chat.checkpoint import CheckpointerUnavailableError
from chat.graph import build_graph, get_checkpointer, get_graph, run_config, stream_turn
from chat.offline_model import OfflineChatModel

logger = logging.getLogger("chat.warmup")

WARMUP_TIMEOUT_SECONDS = 10.0  # a worker starts after this long whatever is left to do


async def _exercise_graph() -> None:
    """One turn of the graph's code, start to end, touching nothing outside the process."""
    graph = build_graph(OfflineChatModel(word_delay=0), InMemorySaver())
    config = run_config(f"warmup-{uuid.uuid4().hex}")
    async for _kind, _value in stream_turn(graph, config, uuid.uuid4().hex, "Hello"):
        pass


async def _load_scripts() -> None:
    """Every script of the app and of the checkpointer loaded; each pool has a connection."""
    await redis_clients.aload_scripts(redis_clients.get_async_client("sessions"))
    saver = await get_checkpointer()
    load = getattr(saver, "aload_scripts", None)  # CHECKPOINTER=official: its own scripts
    if load is not None:
        await load()


async def awarm(limit_seconds: float = WARMUP_TIMEOUT_SECONDS) -> bool:
    """Warm this worker for the running event loop; True when every step succeeded."""
    started = time.perf_counter()
    ok = True
    steps = (("the graph", _exercise_graph), ("the model", get_graph), ("Redis", _load_scripts))
    try:
        async with asyncio.timeout(limit_seconds):
            for name, step in steps:
                try:
                    await step()
                except (*redis_clients.UNAVAILABLE_ERRORS, CheckpointerUnavailableError) as exc:
                    ok = False
                    logger.warning("Warm-up: Redis unavailable (%s); serving all the same", exc)
                    break  # the later steps need Redis too
                except Exception:
                    ok = False
                    logger.warning(
                        "Warm-up of %s failed; serving all the same", name, exc_info=True
                    )
    except TimeoutError:
        logger.warning("Warm-up stopped after %.0f s; serving all the same", limit_seconds)
        return False
    logger.info("Worker warmed up in %.0f ms", (time.perf_counter() - started) * 1000)
    return ok
