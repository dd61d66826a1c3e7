"""A worker's start-up warm-up, so that its first chat message is as fast as the others.

Without it, the first message a worker runs pays for what Python and the libraries do
once per process: compiling the graph and importing the model's provider package,
LangGraph's and LangChain's first run (lazy imports, caches), loading each Lua script
into Redis (``NOSCRIPT``, ``SCRIPT LOAD``, again) and opening the first connections. That
was 100-160 ms more time to first token, for the first message of each worker.

:func:`awarm` does that work before the worker serves connections (the ASGI lifespan's
start-up, :class:`agenticpal.serve.DrainRunsAtShutdown`; its listening socket is open
already, so a connection the kernel hands it meanwhile waits for it): one turn of the graph with the
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

# A worker starts after this long whatever is left to do: well inside the 5 s uvicorn's
# supervisor gives a new worker to start (import included), and connections the kernel
# hands the worker meanwhile wait no longer than this.
WARMUP_TIMEOUT_SECONDS = 2.0


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
        logger.warning("Warm-up stopped after %.1f s; serving all the same", limit_seconds)
        return False
    took = (time.perf_counter() - started) * 1000
    if ok:
        logger.info("Worker warmed up in %.0f ms", took)
    else:
        logger.info("Worker started after a partial warm-up (%.0f ms)", took)
    return ok
