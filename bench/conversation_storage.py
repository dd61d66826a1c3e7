"""Redis bytes per turn of the product graph as a conversation grows.

    .venv/bin/python bench/conversation_storage.py [--turns 150]

The product graph (offline model, our checkpointer, its own redis-server) runs
``--turns`` turns of the same size; after each turn the thread's keys are measured
(``MEMORY USAGE ... SAMPLES 0``). Side by side in the same run: the same graph with the
conversation in an ``add_messages`` channel (how it was stored before: the whole list
again in every checkpoint). Target: bytes per turn at turn 150 <= 1.2x those at turn 10.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import django
from django.conf import settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agenticpal.config import redis_settings
from agenticpal.redis_server import RedisServer

TEXT = "Here is what I think about the plan for next week: " + "words " * 40
TARGET = 1.2


def configure(url: str) -> None:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only-secret-key-0123456789-0123456789-0123456789",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "chat"],
        DATABASES={},
        USE_TZ=True,
        REDIS=redis_settings(url),
        CHECKPOINTER="agenticpal",
        AGENTICPAL_MODEL="",
        AGENTICPAL_OFFLINE_WORD_DELAY=0,
    )
    django.setup()


async def per_turn(graph, thread_id: str, turns: int, client) -> list[int]:
    from agenticpal import redis_keys as keys
    from chat.graph import run_config, stream_turn

    config = run_config(thread_id)
    pattern = f"{keys.CHECKPOINT_PREFIX}{keys.checkpoint_hash_tag(thread_id)}*"

    async def used() -> int:
        total = 0
        async for key in client.scan_iter(match=pattern):
            total += await client.memory_usage(key, samples=0) or 0
        return total

    sizes = []
    for turn in range(turns):
        before = await used()
        async for _ in stream_turn(graph, config, f"m{turn}", f"{turn}. {TEXT}"):
            pass
        sizes.append(await used() - before)
    return sizes


def window(sizes: list[int], turn: int, width: int = 5) -> float:
    """Mean bytes per turn over the ``width`` turns ending at ``turn`` (1-based)."""
    part = sizes[max(0, turn - width) : turn]
    return sum(part) / len(part)


async def run(turns: int) -> bool:
    from langgraph.graph import MessagesState

    from agenticpal.redis_clients import get_async_client
    from chat import graph as chat_graph
    from chat.graph import build_graph, get_checkpointer
    from chat.offline_model import OfflineChatModel

    saver = await get_checkpointer()
    client = get_async_client("checkpoints")
    results = {}
    for name, state in (("product (delta)", chat_graph.ConversationState),
                        ("add_messages (before)", MessagesState)):  # fmt: skip
        original = chat_graph.ConversationState
        chat_graph.ConversationState = state
        try:
            graph = build_graph(OfflineChatModel(), saver)
        finally:
            chat_graph.ConversationState = original
        results[name] = await per_turn(graph, f"bench-{len(results)}", turns, client)
    ok = True
    print(f"| graph | KB/turn at turn 10 | at turn {turns} | ratio |")
    print("|---|---:|---:|---:|")
    for name, sizes in results.items():
        early, late = window(sizes, 10), window(sizes, turns)
        print(f"| {name} | {early / 1024:.1f} | {late / 1024:.1f} | {late / early:.2f}x |")
        if name.startswith("product"):
            ok = late / early <= TARGET
            line = (
                f"target: bytes per turn at turn {turns} <= {TARGET}x turn 10: {late / early:.2f}x"
            )
            print(line + (" met" if ok else " MISSED"), file=sys.stderr)
    for name, sizes in results.items():
        key = "product" if name.startswith("product") else "add_messages"
        print(f"graph={key} turns={turns} kb_per_turn_10={window(sizes, 10) / 1024:.2f} "
              f"kb_per_turn_{turns}={window(sizes, turns) / 1024:.2f}")  # fmt: skip
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=150)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp), appendonly=False) as redis:
        configure(redis.url)
        return 0 if asyncio.run(run(args.turns)) else 1


if __name__ == "__main__":
    sys.exit(main())
